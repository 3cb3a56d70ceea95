"""torchvision's ImageNet classifiers: every weight entry with its published top-1, MACs and size."""
from __future__ import annotations

from functools import lru_cache

from netfrontier.models.base import CatalogueSource, ModelEntry

REFERENCE = "reference: torchvision weight metadata (ImageNet-1k val)"


def _native_resolution(weights) -> int:
    keywords = getattr(weights.transforms, "keywords", {}) or {}
    crop = keywords.get("crop_size")
    if isinstance(crop, (list, tuple)):
        crop = crop[0]
    return int(crop or weights.meta["min_size"][0])


def _builder_kwargs(arch: str, weights) -> dict:
    """The constructor arguments torchvision's builder would set from the weights."""
    kwargs: dict = {}
    if arch.startswith("vit_"):
        kwargs["image_size"] = weights.meta["min_size"][0]
    if arch.startswith("maxvit"):
        kwargs["input_size"] = weights.meta["min_size"]
    if arch in ("inception_v3", "googlenet"):
        kwargs.update(init_weights=False, aux_logits=False, transform_input=True)
    return kwargs


@lru_cache(maxsize=1)
def _all_entries() -> tuple[ModelEntry, ...]:
    from torchvision import models

    out = []
    for arch in models.list_models(module=models):
        enum = models.get_model_weights(arch)
        default = enum.DEFAULT if hasattr(enum, "DEFAULT") else None
        for w in enum:
            acc = w.meta.get("_metrics", {}).get("ImageNet-1K", {}).get("acc@1")
            if acc is None or acc != acc:  # no ImageNet-1k top-1 (e.g. vgg16 FEATURES)
                continue
            out.append(ModelEntry(
                name=f"{arch}.{w.name}", arch=arch, source="torchvision",
                resolution=_native_resolution(w), weights=w.name, top1=float(acc),
                top1_source=REFERENCE, params=int(w.meta["num_params"]),
                ref_macs=int(round(float(w.meta["_ops"]) * 1e9)),
                extra={"default": w is default},
            ))
    return tuple(out)


class TorchvisionSource(CatalogueSource):
    """Names: `resnet50` (the default weights) or `resnet50.IMAGENET1K_V1`."""

    name = "torchvision"

    def catalogue(self) -> tuple[ModelEntry, ...]:
        return _all_entries()

    def build(self, entry: ModelEntry, materialize: bool = False):
        import contextlib

        from torchvision import models

        from netfrontier.graph.torch_capture import meta_init

        weights = models.get_model_weights(entry.arch)[entry.weights]
        ctx = contextlib.nullcontext() if materialize else meta_init()
        with ctx:
            model = models.get_model(entry.arch, **_builder_kwargs(entry.arch, weights))
        return model.eval()
