"""GPTQ rounding: the Hessian it reads from a model, the rounding itself, and its use in PTQ."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from _tiny import blob_images, randomize_bn, tiny_cnn
from netfrontier.compress.config import QuantConfig
from netfrontier.compress.gptq import gptq_round, layer_hessian
from netfrontier.compress.ptq import quantize
from netfrontier.errors import OptionError


def _nearest(w, s, qmax):
    return torch.clamp(torch.round(w / s), -qmax, qmax) * s


@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_round_is_on_grid_and_moves_the_output_less_than_nearest(act_order):
    g = torch.Generator().manual_seed(0)
    d, rows, n = 48, 20, 3000
    x = torch.randn(d, d, generator=g) @ torch.randn(d, n, generator=g)  # correlated inputs
    w = torch.randn(rows, d, generator=g)
    s = w.abs().amax(1, keepdim=True) / 7
    q = gptq_round(w[None], (x @ x.T / n)[None], s.T, -7, 7, act_order=act_order)[0].float()
    k = q / s
    assert torch.allclose(k, torch.round(k), atol=1e-4) and k.abs().max() <= 7 + 1e-4
    near = _nearest(w, s, 7)
    assert ((q - w) @ x).pow(2).mean() < 0.7 * ((near - w) @ x).pow(2).mean()


def test_layer_hessian_reads_the_padded_grouped_conv_input():
    torch.manual_seed(0)

    class Padded(nn.Conv2d):  # explicit padding inside forward, as "same"-padding ports do
        def forward(self, x):
            return F.conv2d(F.pad(x, (0, 1, 0, 1)), self.weight, self.bias, self.stride, 0,
                            self.dilation, self.groups)

    model = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), Padded(4, 6, 3, stride=2, groups=2))
    x = torch.randn(5, 4, 9, 9)
    h = layer_hessian(model, "1", [x])
    inp = F.pad(model[0](x), (0, 1, 0, 1))
    cols = F.unfold(inp, 3, stride=2).reshape(5, 2, 18, -1)  # two groups of 2 channels · 3 · 3
    ref = torch.einsum("ngdl,ngel->gde", cols, cols) / (5 * cols.shape[-1])
    assert h.shape == (2, 18, 18)
    assert torch.allclose(h.float(), ref, rtol=1e-4, atol=1e-5)


def _tiny_calibrated():
    """(model, calibration batches, their images, the model's logits on them)."""
    torch.manual_seed(0)
    model = randomize_bn(tiny_cnn())
    calib = list(blob_images(64, size=12, seed=2).batches(32))
    x = torch.cat(calib)
    return model, calib, x, model(x)


def test_gptq_ptq_moves_the_logits_less_than_nearest_rounding():
    model, calib, x, ref = _tiny_calibrated()
    err = {}
    for rounding in ("nearest", "gptq"):
        q = quantize(model, QuantConfig(wbits=3, abits=8, first_last_bits=None,
                                        rounding=rounding), calib)
        err[rounding] = (q(x) - ref).pow(2).mean().item()
    assert err["gptq"] < 0.8 * err["nearest"]


def test_unknown_rounding_is_rejected():
    with pytest.raises(OptionError, match="rounding"):
        QuantConfig(rounding="adaround")


def test_gptq_search_keeps_each_rows_best_scale_and_its_rounding():
    from netfrontier.compress.gptq import gptq_search, output_error

    g = torch.Generator().manual_seed(1)
    d, rows, n = 9, 12, 2000
    smooth = torch.randn(1, n, generator=g) + 0.05 * torch.randn(d, n, generator=g)
    h = (smooth @ smooth.T / n)[None]  # nearly constant inputs: cancelling taps matter
    w = torch.randn(1, rows, d, generator=g)
    w[0, :, -1] = -w[0, :, :-1].sum(1)  # every row sums to zero: output ≈ 0 on smooth input
    top = w.abs().amax(2) / 7
    q, s = gptq_search(w, h, top, -7, 7)
    same = gptq_round(w, h, s, -7, 7)  # the kept rounding is the one for the kept scale
    assert torch.allclose(q, same, atol=1e-9)
    assert ((s / top) >= 0.5 - 1e-9).all() and ((s / top) <= 1 + 1e-9).all()
    at_max = output_error(w, gptq_round(w, h, top, -7, 7), h)
    err = output_error(w, q, h)
    assert (err <= at_max + 1e-12).all() and err.sum() < 0.9 * at_max.sum()


def test_float_target_is_the_float_weights_when_inputs_agree_and_refits_otherwise():
    from netfrontier.compress.gptq import float_target

    g = torch.Generator().manual_seed(3)
    d, rows, n = 16, 5, 4000
    x = torch.randn(d, n, generator=g) + 0.5
    w = torch.randn(1, rows, d, generator=g)
    h = (x @ x.T / n)[None]
    assert torch.allclose(float_target(w, h, h), w.double(), atol=1e-12)
    xq = 0.8 * x + 0.2 * x.roll(1, 0) + 0.05 * torch.randn(d, n, generator=g)  # earlier errors
    hq, c = (xq @ xq.T / n)[None], (x @ xq.T / n)[None]
    t = float_target(w, hq, c, damp=0.0).float()
    y = w[0] @ x
    assert (t[0] @ xq - y).pow(2).mean() < 0.2 * (w[0] @ xq - y).pow(2).mean()


def test_gptq_toward_the_float_model_moves_the_logits_less():
    from netfrontier.compress.gptq import gptq
    from netfrontier.compress.ptq import calibrate

    model, calib, x, ref = _tiny_calibrated()
    cfg = QuantConfig(wbits=4, abits=4, first_last_bits=None)
    err = {}
    for to_float in (False, True):
        q = quantize(model, cfg, calib)
        gptq(q, calib, to_float=to_float)
        calibrate(q, calib, cfg)
        err[to_float] = (q(x) - ref).pow(2).mean().item()
    assert err[True] < 0.9 * err[False]
