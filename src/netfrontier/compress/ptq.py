"""Post-training quantization: fold batch norms, attach fake quantizers, calibrate, correct bias.

`quantize(model, config, calib_loader)` returns a new model (the input is not modified) in which
every Conv/Linear layer's weight is fake-quantized through a parametrization (a
`WeightQuantizer` at `module.parametrizations.weight[0]`) and its input through an
`ActQuantizer` at `module.input_quantizer`, applied by a forward pre-hook. Module paths stay
those of the original model, so they match the cost model's layer names.
"""
from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from netfrontier.compress.config import QuantConfig
from netfrontier.compress.fakequant import ActQuantizer, WeightQuantizer
from netfrontier.errors import MeasurementError, OptionError

QUANT_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


@dataclass(frozen=True)
class QuantLayer:
    """One quantized layer: module path, weight bits, and kind."""

    path: str
    wbits: int
    kind: str  # "conv", "depthwise", "linear"
    params: int


def _inputs(batch):
    """The input tensor of a loader item: a tensor, or the first element of a tuple/list."""
    return batch[0] if isinstance(batch, (tuple, list)) else batch


def _set_module(model: nn.Module, path: str, new: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, name, new)


def _quantize_input(module: nn.Module, args):
    return (module.input_quantizer(args[0]),) + tuple(args[1:])


def execution_order(model: nn.Module, example: torch.Tensor) -> tuple[list[str], dict[str, str]]:
    """(paths of Conv/Linear layers in the order they run, {bn path: conv path} for every batch
    norm whose input is exactly a conv's output)."""
    names = {id(m): n for n, m in model.named_modules()}
    order, produced, bn_of = [], {}, {}
    hooks = []

    def layer_hook(mod, args, out):
        order.append(names[id(mod)])
        produced[id(out)] = names[id(mod)]

    def bn_hook(mod, args, out):
        src = produced.get(id(args[0]))
        if src is not None:
            bn_of[names[id(mod)]] = src

    for m in model.modules():
        if isinstance(m, QUANT_TYPES):
            hooks.append(m.register_forward_hook(layer_hook))
        elif isinstance(m, BN_TYPES):
            hooks.append(m.register_forward_hook(bn_hook))
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
    seen, uniq = set(), []
    for p in order:
        if p not in seen:
            seen.add(p)
            uniq.append(p)
    return uniq, bn_of


@torch.no_grad()
def fold_batchnorm(model: nn.Module, example: torch.Tensor) -> list[str]:
    """Fold each eval-mode batch norm into the conv that feeds it (in place); the BN becomes
    nn.Identity. Returns the folded BN paths. A conv feeding two BNs is left alone."""
    _, bn_of = execution_order(model, example)
    convs = list(bn_of.values())
    folded = []
    for bn_path, conv_path in bn_of.items():
        if convs.count(conv_path) != 1:
            continue
        bn = model.get_submodule(bn_path)
        conv = model.get_submodule(conv_path)
        if isinstance(conv, nn.Linear) or bn.running_mean is None:
            continue
        std = torch.sqrt(bn.running_var + bn.eps)
        gamma = bn.weight if bn.weight is not None else torch.ones_like(std)
        beta = bn.bias if bn.bias is not None else torch.zeros_like(std)
        k = gamma / std
        w = conv.weight
        conv.weight.data = w * k.view([-1] + [1] * (w.dim() - 1))
        b = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        conv.bias = nn.Parameter((b - bn.running_mean) * k + beta)
        _set_module(model, bn_path, nn.Identity())
        folded.append(bn_path)
    return folded


def _kind(m: nn.Module) -> str:
    if isinstance(m, nn.Linear):
        return "linear"
    if m.groups > 1 and m.groups == m.in_channels and m.groups == m.out_channels:
        return "depthwise"
    return "conv"


def attach_quantizers(model: nn.Module, config: QuantConfig, example: torch.Tensor
                      ) -> list[QuantLayer]:
    """Add weight and input quantizers to every Conv/Linear (in place); returns the layers."""
    order, _ = execution_order(model, example)
    if not order:
        raise OptionError("the model has no Conv or Linear layer to quantize")
    layers = []
    for i, path in enumerate(order):
        m = model.get_submodule(path)
        bits = config.bits_for(path, i == 0 or i == len(order) - 1)
        wq = WeightQuantizer(bits, m.weight, config.per_channel, config.weight_clip)
        parametrize.register_parametrization(m, "weight", wq)
        m.input_quantizer = ActQuantizer(config.abits)
        m.register_forward_pre_hook(_quantize_input)
        layers.append(QuantLayer(path, bits, _kind(m), int(m.weight.numel())))
    model.quant_layers = layers
    model.quant_config = config
    return layers


def quantizers(model: nn.Module, kind: str | None = None):
    """(path, quantizer) pairs: kind "weight", "act" or None for both."""
    for path, m in model.named_modules():
        if kind in (None, "act") and isinstance(m, ActQuantizer):
            yield path, m
        if kind in (None, "weight") and isinstance(m, WeightQuantizer):
            yield path, m


@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable, config: QuantConfig) -> int:
    """Run calibration batches through the model in observe mode; set activation ranges."""
    acts = [q for _, q in quantizers(model, "act")]
    for q in acts:
        q.mode = "observe"
    n = 0
    for i, batch in enumerate(batches):
        if config.calib_batches is not None and i >= config.calib_batches:
            break
        model(_inputs(batch))
        n += 1
    if n == 0:
        raise MeasurementError("calibration needs at least one batch of images")
    for q in acts:
        q.finish_calibration(config.act_observer, config.percentile)
    return n


@torch.no_grad()
def bias_correction(model: nn.Module, batches: Iterable, config: QuantConfig) -> None:
    """Empirical bias correction: for each layer, the mean over the calibration data of
    (output with quantized weights - output with float weights), on the same quantized input,
    per output channel, is subtracted from the bias."""
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}
    names = {id(m): n for n, m in model.named_modules()}
    hooks = []

    def hook(mod, args, out):
        wq = mod.parametrizations.weight[0]
        wq.mode = "off"
        ref = mod.forward(*args)
        wq.mode = "quant"
        d = (out - ref).transpose(0, 1).reshape(out.shape[1], -1)
        p = names[id(mod)]
        sums[p] = sums.get(p, 0) + d.sum(dim=1)
        counts[p] = counts.get(p, 0) + d.shape[1]

    layers = [model.get_submodule(q.path) for q in model.quant_layers]
    for m in layers:
        hooks.append(m.register_forward_hook(hook))
    try:
        for i, batch in enumerate(batches):
            if config.calib_batches is not None and i >= config.calib_batches:
                break
            model(_inputs(batch))
    finally:
        for h in hooks:
            h.remove()
    for m in layers:
        p = names[id(m)]
        if p not in sums:
            continue
        corr = sums[p] / counts[p]
        if m.bias is None:
            m.bias = nn.Parameter(torch.zeros_like(corr))
        m.bias.data -= corr


def quantize(model: nn.Module, config: QuantConfig, calib_loader: Iterable,
             example: torch.Tensor | None = None) -> nn.Module:
    """A fake-quantized copy of `model`, calibrated on `calib_loader` (tensors or (x, y))."""
    batches = list(calib_loader)
    if not batches:
        raise MeasurementError("calibration needs at least one batch of images")
    if example is None:
        example = _inputs(batches[0])[:1]
    q = copy.deepcopy(model).eval()
    for p in q.parameters():
        p.requires_grad_(False)
    if config.fold_bn:
        fold_batchnorm(q, example)
    attach_quantizers(q, config, example)
    calibrate(q, batches, config)
    if config.rounding.startswith("gptq"):
        from netfrontier.compress.gptq import gptq

        gptq(q, batches, to_float=config.rounding == "gptq-float")
        calibrate(q, batches, config)  # the ranges the rounded weights produce
    if config.bias_correction:
        bias_correction(q, batches, config)
    return q


def layer_bits(model: nn.Module) -> dict[str, int]:
    """{module path: weight bits} of a quantized model."""
    return {q.path: q.wbits for q in getattr(model, "quant_layers", [])}


@torch.no_grad()
def set_layer_bits(model: nn.Module, path: str, bits: int, method: str = "mse") -> None:
    """Re-quantize one layer's weights at `bits` (in place), keeping everything else."""
    m = model.get_submodule(path)
    old = m.parametrizations.weight[0]
    w = m.parametrizations.weight.original
    m.parametrizations.weight[0] = WeightQuantizer(bits, w, old.axis is not None, method)
    model.quant_layers = [QuantLayer(q.path, bits if q.path == path else q.wbits, q.kind,
                                     q.params) for q in model.quant_layers]
