"""Quantization-aware training: LSQ fake quantizers, frozen folded batch norms, distillation.

`qat(qmodel, teacher, images, config)` fine-tunes a model from `ptq.quantize` (batch norms
already folded into the convs, so their statistics are frozen) with learned step sizes (LSQ:
straight-through rounding, scales trained with gradient scaling), against the FP32 teacher's
soft outputs (knowledge distillation: KL(teacher ‖ student) at temperature T), so unlabelled
images suffice. The result is a new model with fixed scales, ready for evaluation and export.

Augmentation: "flip" (mirror images; the teacher's logits for both views are computed once) or
"crop" (a random resized crop of each centre-cropped image, scale 0.25-1, aspect 3/4-4/3, plus
the flip; the teacher runs on every augmented batch). With a few hundred images the crop gives
the student far more distinct views to match. Training runs on `device` (e.g. "cuda"); the
returned model is on the CPU.
"""
from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

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


AUGMENTS = ("flip", "crop")


def random_resized_crop(x: torch.Tensor, gen: torch.Generator, scale=(0.25, 1.0),
                        ratio=(3 / 4, 4 / 3)) -> torch.Tensor:
    """One random crop per image (area `scale` of the image, aspect `ratio`), resized back to
    the image size with bilinear sampling (torchvision.ops.roi_align, all images at once)."""
    from torchvision.ops import roi_align

    n, _, h, w = x.shape
    area = torch.empty(n).uniform_(*scale, generator=gen) * h * w
    logr = torch.empty(n).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=gen)
    ar = torch.exp(logr)
    cw = torch.sqrt(area * ar).clamp(max=w)
    ch = torch.sqrt(area / ar).clamp(max=h)
    x0 = torch.rand(n, generator=gen) * (w - cw)
    y0 = torch.rand(n, generator=gen) * (h - ch)
    boxes = torch.stack([torch.arange(n, dtype=torch.float32), x0, y0, x0 + cw, y0 + ch], 1)
    return roi_align(x, boxes.to(x.device, x.dtype), output_size=(h, w), spatial_scale=1.0,
                     sampling_ratio=2, aligned=True)


def distillation_loss(student_logits, teacher_logits, temperature: float = 1.0):
    t = temperature
    return F.kl_div(F.log_softmax(student_logits / t, dim=1), F.softmax(teacher_logits / t, dim=1),
                    reduction="batchmean") * t * t


def feature_taps(teacher: torch.nn.Module, example: torch.Tensor) -> list[str]:
    """Module paths whose outputs mean the same in the teacher and the folded student: every
    batch norm that follows a conv (an nn.Identity in the student, which outputs the folded
    conv's result)."""
    from netfrontier.compress.ptq import execution_order

    _, bn_of = execution_order(teacher, example)
    return list(bn_of)


class _Taps:
    """Records the outputs of the modules at `paths` during a forward pass."""

    def __init__(self, model: torch.nn.Module, paths: list[str]):
        self.out: dict[str, torch.Tensor] = {}
        self.handles = [model.get_submodule(p).register_forward_hook(self._hook(p)) for p in paths]

    def _hook(self, path):
        def hook(mod, args, out):
            self.out[path] = out
        return hook

    def remove(self):
        for h in self.handles:
            h.remove()


def feature_loss(student: dict, teacher: dict) -> torch.Tensor:
    """Mean over taps of the squared error relative to the teacher feature's mean square."""
    terms = [(student[p] - t).pow(2).mean() / t.pow(2).mean().clamp(min=1e-8)
             for p, t in teacher.items()]
    return torch.stack(terms).mean()


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
    opt = torch.optim.Adam(groups)
    gen = torch.Generator().manual_seed(config.seed)
    n = len(images)
    # flip only: the teacher's logits for every image and its mirror image, once (exact, and
    # saves a teacher pass per step); crop: the teacher runs on each augmented batch
    online = config.augment == "crop" or config.feature_weight > 0
    taps_s = taps_t = None
    if config.feature_weight > 0:
        paths = feature_taps(teacher, images.preprocess.normalize(images.images[:1]).to(dev))
        taps_s, taps_t = _Taps(model, paths), _Taps(teacher, paths)
    cached = {}
    if not online:
        with torch.no_grad():
            for flip in ((False, True) if config.flip else (False,)):
                outs = []
                for s in range(0, n, 50):
                    x = images.preprocess.normalize(images.images[s:s + 50]).to(dev)
                    outs.append(teacher(x.flip(3) if flip else x))
                cached[flip] = torch.cat(outs)
    steps_per_epoch = math.ceil(n / config.batch_size)
    total = steps_per_epoch * config.epochs
    base = [g["lr"] for g in opt.param_groups]
    step = 0
    log = []
    for epoch in range(config.epochs):
        perm = torch.randperm(n, generator=gen)
        t0, losses = time.time(), []
        for s in range(0, n, config.batch_size):
            idx = perm[s:s + config.batch_size]
            x = images.preprocess.normalize(images.images[idx]).to(dev)
            flip = (torch.rand(len(idx), generator=gen) < 0.5).to(dev)
            if config.augment == "crop":
                x = random_resized_crop(x, gen)
            if config.flip:
                x = torch.where(flip[:, None, None, None], x.flip(3), x)
            if online:
                with torch.no_grad():
                    target = teacher(x)
            else:
                i = idx.to(dev)
                target = (torch.where(flip[:, None], cached[True][i], cached[False][i])
                          if config.flip else cached[False][i])
            for g, lr in zip(opt.param_groups, base):
                g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
            loss = distillation_loss(model(x), target, config.temperature)
            if taps_s is not None:
                loss = loss + config.feature_weight * feature_loss(taps_s.out, taps_t.out)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                for q in scales:
                    q.clamp_(min=1e-8)
            losses.append(loss.item())
            step += 1
        log.append({"epoch": epoch + 1, "loss": sum(losses) / len(losses),
                    "seconds": time.time() - t0})
        if on_epoch:
            with torch.no_grad():
                log[-1].update(on_epoch(model, epoch + 1) or {})
        if progress:
            progress(log[-1])
    if taps_s is not None:
        taps_s.remove()
        taps_t.remove()
    for p in model.parameters():
        p.requires_grad_(False)
    for _, q in quantizers(model):
        q.learn = False
    model = model.cpu()
    model.qat_log = log
    return model
