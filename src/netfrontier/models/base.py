"""What a model source is: entries with their reference figures, and how to build or capture one."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from netfrontier.graph.types import OpGraph


@dataclass(frozen=True)
class ModelEntry:
    """One network a user can name: architecture, weights, native resolution and accuracy.

    `top1` is ImageNet-1k top-1 in percent (None when unknown); `top1_source` says where it
    comes from ("reference: torchvision metadata" or "measured: imagenet-sample, N images").
    `ref_macs` is the publisher's MAC count at the native resolution, when it publishes one.
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
