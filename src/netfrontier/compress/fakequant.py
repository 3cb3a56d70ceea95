"""Uniform fake quantizers: calibration observers, fixed-scale simulation, and LSQ training.

A quantizer maps x to (clamp(round(x / s + z), qmin, qmax) - z) · s. Weights are symmetric
(z = 0, narrow range ±(2^(b-1) - 1)) with one scale per output channel; activations are
asymmetric unsigned (0 .. 2^b - 1) with one scale and an integer zero point per tensor.

Modes: "observe" records statistics and passes x through; "quant" simulates with fixed scales
(PyTorch's fake_quantize kernels, which export to ONNX QuantizeLinear/DequantizeLinear); with
`learn=True` the scale is a trained parameter, using LSQ (Esser et al., ICLR 2020): round with a
straight-through estimator and the scale's gradient multiplied by 1/sqrt(N · qmax).
"""
from __future__ import annotations

import math

import torch
from torch import nn

SAMPLE_PER_BATCH = 1 << 14
SAMPLE_MAX = 1 << 18


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """round(x) forward, identity backward."""
    return x + (torch.round(x) - x).detach()


def grad_scale(x: torch.Tensor, g: float) -> torch.Tensor:
    """x forward, gradient multiplied by g backward."""
    return x * g + (x - x * g).detach()


def qrange(bits: int, signed: bool) -> tuple[int, int]:
    """Integer range: narrow symmetric when signed (±(2^(b-1)-1)), else 0 .. 2^b-1."""
    if signed:
        m = 2 ** (bits - 1) - 1
        return -m, m
    return 0, 2 ** bits - 1


def _quant(x, scale, zp, qmin, qmax):
    return (torch.clamp(torch.round(x / scale + zp), qmin, qmax) - zp) * scale


class FakeQuantize(nn.Module):
    """One quantizer (see module doc). `axis` 0 means per output channel (weights)."""

    def __init__(self, bits: int, signed: bool, channels: int = 1, axis: int | None = None):
        super().__init__()
        self.bits = int(bits)
        self.signed = signed
        self.axis = axis
        self.qmin, self.qmax = qrange(self.bits, signed)
        self.scale = nn.Parameter(torch.ones(channels), requires_grad=False)
        self.register_buffer("zero_point", torch.zeros(channels))
        self.mode = "quant"
        self.learn = False
        self._lo = self._hi = None
        self._sample: list[torch.Tensor] = []

    def extra_repr(self) -> str:
        kind = "per-channel" if self.axis is not None else "per-tensor"
        return f"bits={self.bits}, {'signed' if self.signed else 'unsigned'}, {kind}, " \
               f"mode={self.mode}{', LSQ' if self.learn else ''}"

    def _view(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.axis is None:
            return t
        shape = [1] * x.dim()
        shape[self.axis] = -1
        return t.view(shape)

    # ---- calibration -------------------------------------------------------------------
    def observe(self, x: torch.Tensor) -> None:
        x = x.detach()
        lo, hi = x.min(), x.max()
        self._lo = lo if self._lo is None else torch.minimum(self._lo, lo)
        self._hi = hi if self._hi is None else torch.maximum(self._hi, hi)
        if sum(len(s) for s in self._sample) < SAMPLE_MAX:
            flat = x.flatten()
            if flat.numel() > SAMPLE_PER_BATCH:
                idx = torch.randint(0, flat.numel(), (SAMPLE_PER_BATCH,),
                                    generator=torch.Generator().manual_seed(len(self._sample)))
                flat = flat[idx]
            self._sample.append(flat.float().cpu())

    def finish_calibration(self, method: str = "minmax", percentile: float = 99.99) -> None:
        """Set scale / zero point from what `observe` saw (activations, per tensor)."""
        if self._lo is None:  # never reached by the calibration data: keep a unit range
            lo, hi = torch.tensor(0.0), torch.tensor(1.0)
        else:
            lo, hi = self._lo.float(), self._hi.float()
        sample = torch.cat(self._sample) if self._sample else torch.zeros(1)
        if method == "percentile":
            q = torch.quantile(sample, torch.tensor([1 - percentile / 100, percentile / 100]))
            lo, hi = q[0], q[1]
        lo, hi = torch.clamp(lo, max=0.0), torch.clamp(hi, min=0.0)
        if method == "mse":
            best = None
            for a in torch.linspace(0.3, 1.0, 36):
                s, z = self._params_for(lo * a, hi * a)
                err = (_quant(sample, s, z, self.qmin, self.qmax) - sample).pow(2).mean()
                if best is None or err < best[0]:
                    best = (err, s, z)
            s, z = best[1], best[2]
        else:
            s, z = self._params_for(lo, hi)
        with torch.no_grad():
            self.scale.fill_(float(s))
            self.zero_point.fill_(float(z))
        self._lo = self._hi = None
        self._sample = []
        self.mode = "quant"

    def _params_for(self, lo, hi):
        if self.signed:
            s = torch.maximum(hi.abs(), lo.abs()) / self.qmax
            return torch.clamp(s, min=1e-8), torch.tensor(0.0)
        s = torch.clamp((hi - lo) / (self.qmax - self.qmin), min=1e-8)
        z = torch.clamp(torch.round(self.qmin - lo / s), self.qmin, self.qmax)
        return s, z

    @torch.no_grad()
    def init_from_weight(self, w: torch.Tensor, method: str = "mse") -> None:
        """Per-channel symmetric scales from the weight tensor: max |w|, or the clipping ratio
        (searched over 0.5-1.0 of max |w|) that minimises each channel's squared error."""
        flat = w.detach().reshape(w.shape[0], -1) if self.axis == 0 else w.detach().reshape(1, -1)
        m = flat.abs().amax(dim=1).clamp(min=1e-8)
        if method == "mse":
            best_err = torch.full_like(m, float("inf"))
            best_s = m / self.qmax
            for a in torch.linspace(0.5, 1.0, 51):
                s = (m * a / self.qmax)[:, None]
                err = (_quant(flat, s, 0.0, self.qmin, self.qmax) - flat).pow(2).sum(dim=1)
                better = err < best_err
                best_err = torch.where(better, err, best_err)
                best_s = torch.where(better, s[:, 0], best_s)
            s = best_s
        else:
            s = m / self.qmax
        self.scale.copy_(s.reshape(self.scale.shape))
        self.zero_point.zero_()

    # ---- forward -------------------------------------------------------------------------
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "off":
            return x
        if self.mode == "observe":
            self.observe(x)
            return x
        if self.learn:
            n = x.numel() // (x.shape[self.axis] if self.axis is not None else 1)
            g = 1.0 / math.sqrt(max(n, 1) * self.qmax)
            s = self._view(grad_scale(self.scale, g), x)
            z = self._view(self.zero_point, x)
            return (torch.clamp(round_ste(x / s + z), self.qmin, self.qmax) - z) * s
        zp = torch.round(self.zero_point).to(torch.int32)
        if self.axis is not None:
            return torch.fake_quantize_per_channel_affine(x, self.scale.detach(), zp, self.axis,
                                                          self.qmin, self.qmax)
        return torch.fake_quantize_per_tensor_affine(x, self.scale.detach(), zp, self.qmin,
                                                     self.qmax)


class WeightQuantizer(FakeQuantize):
    """Per-output-channel symmetric weight quantizer, used as a parametrization of `weight`."""

    def __init__(self, bits: int, weight: torch.Tensor, per_channel: bool = True,
                 method: str = "mse"):
        super().__init__(bits, signed=True, channels=weight.shape[0] if per_channel else 1,
                         axis=0 if per_channel else None)
        self.init_from_weight(weight, method)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.axis is None and self.mode == "quant" and not self.learn:
            zp = torch.zeros(1, dtype=torch.int32)
            return torch.fake_quantize_per_tensor_affine(x, self.scale.detach(), zp, self.qmin,
                                                         self.qmax)
        return super().forward(x)


class ActQuantizer(FakeQuantize):
    """Per-tensor asymmetric activation quantizer (calibrate, then simulate)."""

    def __init__(self, bits: int):
        super().__init__(bits, signed=False, channels=1, axis=None)
        self.mode = "observe"
