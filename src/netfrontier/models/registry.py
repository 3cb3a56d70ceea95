"""One registry of model sources: resolve a user's model name, list the zoo, capture a graph."""
from __future__ import annotations

import fnmatch

from netfrontier.errors import UnknownModelError, suggest
from netfrontier.graph.types import OpGraph
from netfrontier.models.base import ModelEntry, ModelSource
from netfrontier.models.efficientnet_lite import EfficientNetLiteSource
from netfrontier.models.other_sources import FactorySource, OnnxFileSource, TimmSource
from netfrontier.models.torchvision_tasks import TorchvisionTaskSource
from netfrontier.models.torchvision_zoo import TorchvisionSource

# Order matters: file and factory forms are recognised by shape before catalogue look-ups.
SOURCES: list[ModelSource] = [OnnxFileSource(), FactorySource(), TimmSource(),
                              EfficientNetLiteSource(), TorchvisionSource(),
                              TorchvisionTaskSource()]
# sources whose entries carry a published (or measured) accuracy: ImageNet top-1 for the
# classifiers, COCO mAP / mIoU for the detection and segmentation entries
ZOO_SOURCES = ("torchvision", "efficientnet_lite", "torchvision_tasks")


def resolve(name: str) -> tuple[ModelSource, ModelEntry]:
    """The source and entry for a user-typed model name; UnknownModelError with suggestions."""
    for src in SOURCES:
        if src.claims(name):
            return src, src.entry(name)
    known = [e.name for s in SOURCES if s.name in ZOO_SOURCES for e in s.entries()]
    known += sorted({e.arch for s in SOURCES if s.name in ZOO_SOURCES for e in s.entries()})
    raise UnknownModelError(f"unknown model '{name}'{suggest(name, known)}")


# Bump when a source changes what its entries say (names, figures, labels): the store caches the
# entry list under zoo_signature(), and the code of a source is not part of that key.
ZOO_REVISION = 2  # 2: EfficientNet-Lite at their published (reference) top-1


def zoo_signature() -> str:
    """Changes whenever the zoo's entries may change (sources, revision, data files)."""
    import hashlib
    from pathlib import Path

    h = hashlib.sha256(",".join(ZOO_SOURCES).encode() + f"rev{ZOO_REVISION}".encode())
    for f in sorted((Path(__file__).parent / "data").glob("*.json")):
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


def zoo_entries(pattern: str | None = None, task: str = "classification") -> list[ModelEntry]:
    """Every entry of `task` with its accuracy figure (classification: an ImageNet top-1; see
    models.base.TASKS), optionally filtered by a glob on name or arch. `task="all"`: every
    task's entries."""
    from netfrontier.models.base import TASKS

    if task != "all" and task not in TASKS:
        from netfrontier.errors import OptionError

        raise OptionError(f"unknown task '{task}' (use {', '.join(TASKS)})")
    out = [e for s in SOURCES if s.name in ZOO_SOURCES for e in s.entries()
           if (task == "all" or e.task == task) and e.metric() is not None]
    if pattern:
        out = [e for e in out if fnmatch.fnmatch(e.name, pattern) or fnmatch.fnmatch(e.arch, pattern)]
    return out


def capture(name: str, batch: int = 1, resolution: int | None = None) -> OpGraph:
    """Capture a model named as on the command line."""
    src, entry = resolve(name)
    return src.capture(entry, batch=batch, resolution=resolution)
