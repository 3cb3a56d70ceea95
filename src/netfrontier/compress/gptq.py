"""GPTQ weight rounding: each layer's weights rounded so that its output moves least.

Rounding every weight to its nearest grid point ignores that the errors of one output's weights
add up over correlated inputs. GPTQ (Frantar et al., ICLR 2023; the column-by-column form of
Optimal Brain Quantization) minimises ‖W̃X − WX‖² per layer instead: with H = XXᵀ the inputs'
second moments over the calibration images, it rounds one input column at a time and spreads
each column's rounding error over the columns not yet rounded, weighted by H⁻¹ (through its
Cholesky factor). Layers are done in execution order, and each layer's inputs come from the
quantized model with every earlier layer already rounded. With `to_float` the target is the
float model's output at that layer rather than the layer's float weights applied to those
inputs (`float_target`), so each layer also makes up for the errors before it. Below 8 bits
each channel's scale is chosen too, among clipping ratios of its largest weight, by the output
error of its GPTQ rounding; the result is written back as on-grid weights and scales (the
quantizer reproduces them exactly).

Convolutions are read as matrix products over their unfolded input patches (the input captured
at the conv call itself, so explicit "same" padding layers are included); a grouped or depthwise
conv has one H per group. Conv1d/Conv3d layers keep nearest rounding.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from netfrontier.compress.ptq import _inputs, quantizers
from netfrontier.errors import MeasurementError

_CONV2D = {F.conv2d, torch.conv2d}
_LINEAR = {F.linear, torch._C._nn.linear}


class _Stop(Exception):
    """Raised at the captured call: the rest of the forward pass is not needed."""


class _CaptureCall(TorchFunctionMode):
    """Records the first conv2d/linear call made while `armed` (then stops the forward)."""

    def __init__(self):
        super().__init__()
        self.armed = False
        self.call = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.armed and (func in _CONV2D or func in _LINEAR):
            self.call = (func in _CONV2D, args, kwargs)
            self.armed = False
            raise _Stop
        return func(*args, **kwargs)


def _conv_args(args, kwargs) -> dict:
    names = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
    defaults = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}
    out = dict(defaults)
    out.update(zip(names, args))
    out.update(kwargs)
    return out


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _patches(call) -> torch.Tensor:
    """The columns n×groups×d×L of the layer's input for one captured call."""
    is_conv, args, kwargs = call
    if not is_conv:
        x = args[0] if args else kwargs["input"]
        return x.reshape(-1, x.shape[-1]).T[None, None]  # 1×1×d×L
    a = _conv_args(args, kwargs)
    x, w = a["input"], a["weight"]
    k, dil, stride = w.shape[-2:], _pair(a["dilation"]), _pair(a["stride"])
    pad = a["padding"]
    if isinstance(pad, str):
        if pad == "valid":
            pad = (0, 0)
        else:  # "same": total dilation·(k-1), the extra pixel on the right/bottom
            tot = [dil[i] * (k[i] - 1) for i in range(2)]
            x = F.pad(x, (tot[1] // 2, tot[1] - tot[1] // 2, tot[0] // 2, tot[0] - tot[0] // 2))
            pad = (0, 0)
    cols = F.unfold(x, k, dilation=dil, padding=_pair(pad), stride=stride)  # n×(C·kh·kw)×L
    g = int(a["groups"])
    return cols.reshape(cols.shape[0], g, cols.shape[1] // g, cols.shape[2])


def _layer_cols(model: torch.nn.Module, path: str, x: torch.Tensor,
                mode: "_CaptureCall") -> torch.Tensor:
    """The unfolded input n×groups×d×L of the layer at `path` when `model` runs on x."""
    mode.call = None
    try:
        with mode:
            model(x)
    except _Stop:
        pass
    if mode.call is None:
        raise MeasurementError(f"GPTQ: layer '{path}' made no conv2d/linear call")
    return _patches(mode.call)


class _Armed:
    """Arms a _CaptureCall whenever the module at `path` is called (context manager)."""

    def __init__(self, model: torch.nn.Module, path: str):
        self.mode = _CaptureCall()
        self.module = model.get_submodule(path)

    def __enter__(self):
        def arm(mod, args):
            self.mode.armed = True
        self.handle = self.module.register_forward_pre_hook(arm)
        return self.mode

    def __exit__(self, *exc):
        self.handle.remove()
        self.mode.armed = False


class Moments(NamedTuple):
    """A layer's input statistics over the calibration data (per group g, patch length d)."""

    h: torch.Tensor  # g×d×d: mean x̃ x̃ᵀ, x̃ the quantized model's input patches
    c: torch.Tensor | None  # g×d×d: mean x x̃ᵀ, x the reference model's (None: no reference)
    mean: torch.Tensor  # g×d: mean x̃
    ref_mean: torch.Tensor | None  # g×d: mean x
    samples: int  # patches counted


@torch.no_grad()
def layer_moments(model: torch.nn.Module, path: str, batches: Iterable,
                  reference: torch.nn.Module | None = None) -> Moments:
    """The input statistics (Moments) at the layer's conv/linear call in `model` as it stands,
    and with a `reference` model (the float one) the cross moments with its input at the same
    layer, for the same image and position."""
    acc: dict[str, torch.Tensor] = {}
    count = 0

    def add(key, value):
        acc[key] = value if key not in acc else acc[key] + value

    with _Armed(model, path) as mode, \
            (_Armed(reference, path) if reference is not None else nullcontext()) as ref:
        for batch in batches:
            x = _inputs(batch)
            for i in range(0, len(x), 8):  # a few images at a time: unfolded maps are large
                cols = _layer_cols(model, path, x[i:i + 8], mode)
                add("h", torch.einsum("ngdl,ngel->gde", cols, cols).double())
                add("mean", cols.sum((0, 3)).double())
                if reference is not None:
                    fcols = _layer_cols(reference, path, x[i:i + 8], ref)
                    add("c", torch.einsum("ngdl,ngel->gde", fcols, cols).double())
                    add("ref_mean", fcols.sum((0, 3)).double())
                count += cols.shape[0] * cols.shape[-1]
    n = max(count, 1)
    return Moments(acc["h"] / n, acc["c"] / n if "c" in acc else None, acc["mean"] / n,
                   acc["ref_mean"] / n if "ref_mean" in acc else None, count)


def layer_hessian(model: torch.nn.Module, path: str, batches: Iterable) -> torch.Tensor:
    """groups×d×d: the mean over calibration inputs of x xᵀ at the layer's conv/linear call
    (x an unfolded input patch), the inputs coming from `model` as it stands."""
    return layer_moments(model, path, batches).h


def float_target(w: torch.Tensor, h: torch.Tensor, c: torch.Tensor, damp: float = 0.01
                 ) -> torch.Tensor:
    """G×R×d: the weights W* that best map the quantized model's inputs x̃ to the float
    model's outputs W x, least squares: W* = W C H⁻¹ (C = E[x x̃ᵀ], H = E[x̃ x̃ᵀ]). Since
    ‖W̃x̃ − Wx‖² = ‖(W̃ − W*)x̃‖² + const, rounding W* under H minimises the error against the
    float outputs, so each layer makes up for the errors of the layers before it (the asymmetric
    objective of GPTQv2/GPTAQ, Li et al. 2025). Written W* = W + W (C − H) H⁻¹ and solved with
    H + λI (λ `damp` of H's mean diagonal), the ridge pulls the correction toward zero, never
    the weights: with x = x̃ the target is W itself."""
    h = h.double()
    d = h.shape[-1]
    lam = (damp * torch.diagonal(h, dim1=1, dim2=2).mean(1)).clamp(min=1e-12)  # dead groups
    hd = h + lam[:, None, None] * torch.eye(d, dtype=h.dtype)
    wd = torch.einsum("grd,gde->gre", w.double(), c.double() - h)
    return w.double() + torch.linalg.solve(hd, wd.transpose(1, 2)).transpose(1, 2)  # H sym.


@torch.no_grad()
def gptq_round(w: torch.Tensor, h: torch.Tensor, scale: torch.Tensor, qmin: int, qmax: int,
               damp: float = 0.01, act_order: bool = True) -> torch.Tensor:
    """On-grid weights G×R×d (groups × rows × columns) from w (same shape), each group's
    Hessian h (G×d×d) and each row's scale (G×R): GPTQ's column-by-column rounding with
    error feedback. `damp` adds that fraction of the mean diagonal to H; `act_order` rounds the
    columns with the largest input energy first."""
    w = w.double().clone()
    h = h.double().clone()
    s = scale.double()
    g, r, d = w.shape
    diag = torch.diagonal(h, dim1=1, dim2=2)
    dead = diag == 0
    diag[dead] = 1.0
    w.masked_fill_(dead[:, None, :], 0.0)
    perm = torch.argsort(diag, dim=1, descending=True) if act_order else \
        torch.arange(d).expand(g, d)
    h = h.gather(1, perm[:, :, None].expand(g, d, d)).gather(2, perm[:, None, :].expand(g, d, d))
    w = w.gather(2, perm[:, None, :].expand(g, r, d))
    eye = torch.eye(d, dtype=h.dtype)
    h = h + damp * torch.diagonal(h, dim1=1, dim2=2).mean(1)[:, None, None] * eye
    hinv = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    q = torch.empty_like(w)
    for j in range(d):
        col = w[:, :, j]
        qc = torch.clamp(torch.round(col / s), qmin, qmax) * s
        q[:, :, j] = qc
        err = (col - qc) / hinv[:, j, j][:, None]
        w[:, :, j:] -= err[:, :, None] * hinv[:, None, j, j:]
    out = torch.empty_like(q)
    out.scatter_(2, perm[:, None, :].expand(g, r, d), q)
    return out


def output_error(w: torch.Tensor, q: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """G×R: (q − w)ᵀ H (q − w) per row, the mean squared change of that output."""
    e = (q - w).double()
    return torch.einsum("grd,gde,gre->gr", e, h.double(), e)


@torch.no_grad()
def gptq_search(w: torch.Tensor, h: torch.Tensor, max_scale: torch.Tensor, qmin: int, qmax: int,
                ratios=torch.linspace(0.5, 1.0, 11), damp: float = 0.01,
                act_order: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(on-grid weights, scales G×R): each row's scale chosen among `ratios` × max_scale by the
    output error of its GPTQ rounding (not by the weights' own squared error: a filter whose
    taps nearly cancel on smooth inputs needs the rounding that keeps them cancelling)."""
    g, r, d = w.shape
    k = len(ratios)
    scales = (max_scale.double()[:, None, :] * ratios.double()[None, :, None]).reshape(g, k * r)
    q = gptq_round(w.repeat(1, k, 1), h, scales, qmin, qmax, damp, act_order)
    err = output_error(w.repeat(1, k, 1), q, h).reshape(g, k, r)
    best = err.argmin(1)  # G×R
    pick = best[:, None, :, None].expand(g, 1, r, d)
    q = q.reshape(g, k, r, d).gather(1, pick)[:, 0]
    return q, scales.reshape(g, k, r).gather(1, best[:, None, :])[:, 0]


@torch.no_grad()
def gptq(model: torch.nn.Module, batches: Iterable, damp: float = 0.01, act_order: bool = True,
         search_below: int = 8, progress: Callable[[str], None] | None = None,
         to_float: bool = False, min_samples_per_column: int = 4) -> list[str]:
    """Round the weights of a quantized model's (ptq.quantize) Conv2d/Linear layers with GPTQ,
    in place, in execution order. Per-channel layers below `search_below` bits also choose each
    channel's scale by the output error of its rounding (`gptq_search`). With `to_float`, each
    layer rounds toward the float model's outputs (`float_target`) instead of its own float
    weights' on the same quantized inputs, wherever the calibration data give at least
    `min_samples_per_column` input patches per weight column. Returns the paths."""
    batches = list(batches)
    reference = None
    if to_float:  # the float model: a copy with every quantizer passing values through
        reference = copy.deepcopy(model)
        for _, q in quantizers(reference):
            q.mode = "off"
    done = []
    for layer in model.quant_layers:
        m = model.get_submodule(layer.path)
        if not isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            continue
        wq = m.parametrizations.weight[0]
        mom = layer_moments(model, layer.path, batches, reference)
        h = mom.h
        w = m.parametrizations.weight.original
        groups = h.shape[0]
        rows = w.shape[0] // groups
        shaped = float_w = w.reshape(groups, rows, -1)
        if mom.c is not None and mom.samples >= min_samples_per_column * h.shape[-1]:
            shaped = float_target(shaped, h, mom.c, damp)
        if wq.axis == 0 and wq.bits < search_below:
            top = shaped.abs().amax(2).clamp(min=1e-8) / wq.qmax
            q, scale = gptq_search(shaped, h, top, wq.qmin, wq.qmax, damp=damp,
                                   act_order=act_order)
            wq.scale.copy_(scale.reshape(-1).to(wq.scale.dtype))
        else:
            scale = wq.scale.detach().expand(w.shape[0]).reshape(groups, rows)
            q = gptq_round(shaped, h, scale, wq.qmin, wq.qmax, damp, act_order)
        if mom.ref_mean is not None:  # the bias that matches the float outputs' mean
            shift = torch.einsum("grd,gd->gr", float_w.double(), mom.ref_mean) - \
                torch.einsum("grd,gd->gr", q, mom.mean)
            if m.bias is None:
                m.bias = torch.nn.Parameter(torch.zeros(w.shape[0]), requires_grad=False)
            m.bias.add_(shift.reshape(-1).to(m.bias.dtype))
        w.copy_(q.reshape(w.shape).to(w.dtype))
        done.append(layer.path)
        if progress:
            progress(layer.path)
    return done
