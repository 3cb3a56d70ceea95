"""What a model source is: entries with their reference figures, and how to build or capture one."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from netfrontier.graph.types import OpGraph


# What a zoo entry is for, and the published accuracy each task is judged by. The first metric of
# a task is its default; each is a percentage, higher is better.
TASKS = ("classification", "detection", "segmentation")
METRICS = {
    "classification": ("top1",),
    "detection": ("box_map", "mask_map", "kp_map"),
    "segmentation": ("miou", "pixel_acc"),
}
METRIC_LABELS = {
    "top1": "ImageNet top-1 (%)",
    "box_map": "COCO box mAP",
    "mask_map": "COCO mask mAP",
    "kp_map": "COCO keypoint mAP",
    "miou": "mIoU (%, COCO val2017, VOC classes)",
    "pixel_acc": "pixel accuracy (%, COCO val2017, VOC classes)",
}
METRIC_SHORT = {"top1": "top-1", "box_map": "box mAP", "mask_map": "mask mAP",
                "kp_map": "keypoint mAP", "miou": "mIoU", "pixel_acc": "pixel accuracy"}


@dataclass(frozen=True)
class ModelEntry:
    """One network a user can name: architecture, weights, native resolution and accuracy.

    `top1` is ImageNet-1k top-1 in percent (None when unknown); `top1_source` says where it
    comes from ("reference: torchvision metadata" or "measured: imagenet-sample, N images").
    `ref_macs` is the publisher's MAC count at the native resolution, when it publishes one.
    `task` is one of TASKS; `metrics` holds the task's published figures (METRICS, e.g.
    {"box_map": 37.0, "mask_map": 34.6}) with `metrics_source` saying where they come from;
    classification entries carry theirs in `top1` (and `metrics` = {"top1": top1}).
    """

    name: str
    arch: str
    source: str
    resolution: int
    weights: str | None = None
    top1: float | None = None
    top1_source: str = ""
    params: int | None = None
    ref_macs: int | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)
    task: str = "classification"
    metrics: dict = field(default_factory=dict, compare=False, hash=False)
    metrics_source: str = ""

    def metric(self, name: str | None = None) -> float | None:
        """The published figure for `name` (default: the task's first metric), or None."""
        name = name or METRICS[self.task][0]
        if name == "top1" and self.task == "classification":
            return self.top1
        return self.metrics.get(name)


class ModelSource(ABC):
    """A family of models (torchvision, timm, ONNX files, factories).

    Contract: `entries()` lists what the source offers without building anything heavy;
    `claims(name)` says whether a user-typed name belongs to this source; `entry(name)` resolves
    it (raising UnknownModelError with suggestions); `build(entry)` returns an eval-mode
    `nn.Module` whose parameters live on the meta device unless `materialize=True`;
    `capture(entry, batch, resolution)` returns the OpGraph.
    """

    name: str = "source"

    @abstractmethod
    def entries(self) -> list[ModelEntry]: ...

    @abstractmethod
    def claims(self, name: str) -> bool: ...

    @abstractmethod
    def entry(self, name: str) -> ModelEntry: ...

    def build(self, entry: ModelEntry, materialize: bool = False) -> "torch.nn.Module":
        raise NotImplementedError(f"{self.name} models are graphs only, not PyTorch modules")

    def capture(self, entry: ModelEntry, batch: int = 1, resolution: int | None = None) -> "OpGraph":
        from netfrontier.graph.torch_capture import capture_module

        res = resolution or entry.resolution
        model = self.build(entry)
        return capture_module(model, (batch, 3, res, res), model_name=entry.name,
                              source=entry.source,
                              meta={"top1": entry.top1, "weights": entry.weights})


class CatalogueSource(ModelSource):
    """A source whose entries are a fixed catalogue of weight entries (torchvision's): a name
    is an entry's full name (`arch.WEIGHTS`) or, for its default weights, the bare `arch`."""

    label = "torchvision"  # how an unknown name is reported

    @abstractmethod
    def catalogue(self) -> tuple[ModelEntry, ...]: ...

    def entries(self) -> list[ModelEntry]:
        return list(self.catalogue())

    def _by_name(self) -> dict[str, ModelEntry]:
        table = {e.name: e for e in self.catalogue()}
        for e in self.catalogue():
            if e.extra.get("default"):
                table.setdefault(e.arch, e)
        return table

    def claims(self, name: str) -> bool:
        return name in self._by_name()

    def entry(self, name: str) -> ModelEntry:
        from netfrontier.errors import UnknownModelError, suggest

        table = self._by_name()
        if name not in table:
            raise UnknownModelError(f"unknown {self.label} model '{name}'{suggest(name, table)}")
        return table[name]
