"""Quantization-aware training: LSQ fake quantizers, frozen folded batch norms, distillation.

`qat(qmodel, teacher, images, config)` fine-tunes a model from `ptq.quantize` (batch norms
already folded into the convs, so their statistics are frozen) with learned step sizes (LSQ:
straight-through rounding, scales trained with gradient scaling), against the FP32 teacher's
soft outputs (compress/distill.py: knowledge distillation with flip or crop augmentation), so
unlabelled images suffice. The result is a new model with fixed scales, ready for evaluation
and export. Training runs on `device` (e.g. "cuda"); the returned model is on the CPU.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch

from netfrontier.compress.distill import (AUGMENTS, Taps, distill, distillation_loss,  # noqa: F401
                                          feature_loss, random_resized_crop)
from netfrontier.compress.fakequant import ActQuantizer
from netfrontier.compress.ptq import quantizers
from netfrontier.errors import OptionError


@dataclass(frozen=True)
class QATConfig:
    """Training knobs. `lr` is Adam's for weights and biases, `scale_lr` for the step sizes
    (per unit of scale: each scale's update is relative to its size) and `weight_scale_lr`
    for the weights' step sizes if set apart (0 freezes them: a GPTQ rounding chose them, and
    a new step size re-rounds every weight of its channel to nearest); cosine decay to zero."""

    epochs: int = 3
    batch_size: int = 16
    lr: float = 1e-4
    scale_lr: float = 5e-3
    weight_scale_lr: float | None = None  # None: scale_lr
    temperature: float = 1.0
    flip: bool = True
    augment: str = "flip"  # "flip" | "crop" (random resized crop + flip, teacher run online)
    device: str = "cpu"
    feature_weight: float = 0.0  # > 0: also match the teacher's batch-norm outputs (see qat)
    seed: int = 0
    threads: int | None = None

    def __post_init__(self):
        if self.epochs < 1:
            raise OptionError(f"--epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 1:
            raise OptionError(f"QAT batch size must be at least 1, got {self.batch_size}")
        if self.lr <= 0 or self.scale_lr < 0 or (self.weight_scale_lr or 0) < 0:
            raise OptionError("QAT learning rates must be positive")
        if self.feature_weight < 0:
            raise OptionError(f"QAT feature weight must be zero or more, got "
                              f"{self.feature_weight}")
        if self.augment not in AUGMENTS:
            raise OptionError(f"QAT augmentation must be one of {', '.join(AUGMENTS)}, "
                              f"got '{self.augment}'")


def feature_taps(teacher: torch.nn.Module, example: torch.Tensor) -> list[str]:
    """Module paths whose outputs mean the same in the teacher and the folded student: every
    batch norm that follows a conv (an nn.Identity in the student, which outputs the folded
    conv's result)."""
    from netfrontier.compress.ptq import execution_order

    _, bn_of = execution_order(teacher, example)
    return list(bn_of)


def qat(qmodel: torch.nn.Module, teacher: torch.nn.Module, images, config: QATConfig = QATConfig(),
        progress: Callable[[dict], None] | None = None,
        on_epoch: Callable[[torch.nn.Module, int], dict | None] | None = None) -> torch.nn.Module:
    """Fine-tune a copy of `qmodel` on `images` (a measure.accuracy.LabelledImages; labels are
    not used) by distillation from `teacher`. Returns the trained copy; `model.qat_log` lists
    the mean loss per epoch. `on_epoch(model, epoch)` may evaluate the model in training
    (its quantizers in LSQ mode compute the same values); what it returns joins the log.

    With `feature_weight` > 0 the loss adds that weight times the relative squared error of the
    student's batch-norm outputs against the teacher's (`feature_taps`; the teacher then runs
    on every batch): a dense signal per layer, which a few hundred images go further with."""
    if config.threads:
        torch.set_num_threads(config.threads)
    dev = torch.device(config.device)
    model = copy.deepcopy(qmodel).to(dev).eval()  # eval: dropout/drop-connect off, BN folded
    teacher = (copy.deepcopy(teacher) if dev.type != "cpu" else teacher).to(dev).eval()
    weights, scales = [], []
    for p in model.parameters():
        p.requires_grad_(False)
    for layer in model.quant_layers:
        m = model.get_submodule(layer.path)
        weights.append(m.parametrizations.weight.original)
        if m.bias is not None:
            weights.append(m.bias)
    wscale_lr = config.scale_lr if config.weight_scale_lr is None else config.weight_scale_lr
    rates = []
    for _, q in quantizers(model):
        q.learn = True
        q.mode = "quant"
        rate = config.scale_lr if isinstance(q, ActQuantizer) else wscale_lr
        if rate > 0:
            scales.append(q.scale)
            rates.append(rate)
    for p in weights + scales:
        p.requires_grad_(True)
    # one group per quantizer: Adam's step is in absolute units, so each scale's learning rate
    # is its rate times its size (every step size moves by a similar ratio)
    groups = [{"params": weights, "lr": config.lr}]
    groups += [{"params": [s], "lr": rate * float(s.detach().abs().mean())}
               for s, rate in zip(scales, rates)]
    paths = None
    if config.feature_weight > 0:
        paths = feature_taps(teacher, images.preprocess.normalize(images.images[:1]).to(dev))

    def clamp_scales() -> None:
        for q in scales:
            q.clamp_(min=1e-8)

    log = distill(model, teacher, images, groups, epochs=config.epochs,
                  batch_size=config.batch_size, temperature=config.temperature,
                  flip=config.flip, augment=config.augment, feature_paths=paths,
                  feature_weight=config.feature_weight, seed=config.seed, device=config.device,
                  after_step=clamp_scales, progress=progress, on_epoch=on_epoch)
    for p in model.parameters():
        p.requires_grad_(False)
    for _, q in quantizers(model):
        q.learn = False
    model = model.cpu()
    model.qat_log = log
    return model
