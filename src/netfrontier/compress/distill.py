"""Knowledge distillation on a few hundred unlabelled images: the loop QAT and pruning share.

The student learns the teacher's soft outputs (KL(teacher ‖ student) at temperature T), so
labels are never used. Augmentation: "flip" (mirror images; the teacher's logits for both views
are computed once) or "crop" (a random resized crop of each centre-cropped image, scale 0.25-1,
aspect 3/4-4/3, plus the flip; the teacher runs on every augmented batch): with a few hundred
images the crop gives the student far more distinct views to match. Optionally the student also
matches the teacher's intermediate outputs at `feature_paths` (relative squared error). Adam
with cosine decay to zero; batch norms stay in eval mode (their statistics frozen).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

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


class Taps:
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


def distill(model: torch.nn.Module, teacher: torch.nn.Module, images, groups: list[dict], *,
            epochs: int, batch_size: int, temperature: float = 1.0, flip: bool = True,
            augment: str = "flip", feature_paths: list[str] | None = None,
            feature_weight: float = 0.0, seed: int = 0, device: str = "cpu",
            after_step: Callable[[], None] | None = None,
            progress: Callable[[dict], None] | None = None,
            on_epoch: Callable[[torch.nn.Module, int], dict | None] | None = None) -> list[dict]:
    """Train `model` in place (eval mode) on `images` (measure.accuracy.LabelledImages) toward
    `teacher`, updating the Adam parameter `groups` (each with its "lr"). Returns the log: mean
    loss and seconds per epoch, plus whatever `on_epoch(model, epoch)` returns."""
    dev = torch.device(device)
    # channels-last: PyTorch's CPU depthwise-conv backward is several times slower in NCHW
    # (EfficientNet-Lite2, 16 images: 16.5 s per step NCHW, 9.7 s channels-last, 2 cores)
    fmt = torch.channels_last
    model.to(dev, memory_format=fmt).eval()
    teacher.to(dev, memory_format=fmt).eval()
    opt = torch.optim.Adam(groups)
    gen = torch.Generator().manual_seed(seed)
    n = len(images)
    online = augment == "crop" or feature_weight > 0
    taps_s = taps_t = None
    if feature_weight > 0:
        taps_s, taps_t = Taps(model, feature_paths or []), Taps(teacher, feature_paths or [])
    cached = {}
    if not online:  # the teacher's logits for every image and its mirror image, once
        with torch.no_grad():
            for flipped in ((False, True) if flip else (False,)):
                outs = []
                for s in range(0, n, 50):
                    x = images.preprocess.normalize(images.images[s:s + 50]).to(dev)
                    outs.append(teacher(x.flip(3) if flipped else x))
                cached[flipped] = torch.cat(outs)
    total = math.ceil(n / batch_size) * epochs
    base = [g["lr"] for g in opt.param_groups]
    step, log = 0, []
    try:
        for epoch in range(epochs):
            perm = torch.randperm(n, generator=gen)
            t0, losses = time.time(), []
            for s in range(0, n, batch_size):
                idx = perm[s:s + batch_size]
                x = images.preprocess.normalize(images.images[idx]).to(dev).contiguous(
                    memory_format=fmt)
                mirror = (torch.rand(len(idx), generator=gen) < 0.5).to(dev)
                if augment == "crop":
                    x = random_resized_crop(x, gen)
                if flip:
                    x = torch.where(mirror[:, None, None, None], x.flip(3), x)
                if online:
                    with torch.no_grad():
                        target = teacher(x)
                else:
                    i = idx.to(dev)
                    target = (torch.where(mirror[:, None], cached[True][i], cached[False][i])
                              if flip else cached[False][i])
                for g, lr in zip(opt.param_groups, base):
                    g["lr"] = lr * 0.5 * (1 + math.cos(math.pi * step / total))
                loss = distillation_loss(model(x), target, temperature)
                if taps_s is not None:
                    loss = loss + feature_weight * feature_loss(taps_s.out, taps_t.out)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if after_step:
                    with torch.no_grad():
                        after_step()
                losses.append(loss.item())
                step += 1
            log.append({"epoch": epoch + 1, "loss": sum(losses) / len(losses),
                        "seconds": time.time() - t0})
            if on_epoch:
                with torch.no_grad():
                    log[-1].update(on_epoch(model, epoch + 1) or {})
            if progress:
                progress(log[-1])
    finally:
        if taps_s is not None:
            taps_s.remove()
            taps_t.remove()
        model.to(memory_format=torch.contiguous_format)
        teacher.to(memory_format=torch.contiguous_format)
    return log
