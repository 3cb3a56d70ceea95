"""Model sources beyond torchvision: timm architectures, ONNX files, `package.module:function`."""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
from pathlib import Path

from netfrontier.errors import CaptureError, UnknownModelError, suggest
from netfrontier.models.base import ModelEntry, ModelSource


class TimmSource(ModelSource):
    """timm architectures (random weights), when timm is installed: names `timm/<arch>`."""

    name = "timm"
    prefix = "timm/"

    @staticmethod
    def available() -> bool:
        return importlib.util.find_spec("timm") is not None

    def entries(self) -> list[ModelEntry]:
        if not self.available():
            return []
        import timm

        return [self._entry(a) for a in timm.list_models()]

    def _entry(self, arch: str) -> ModelEntry:
        return ModelEntry(name=self.prefix + arch, arch=arch, source="timm", resolution=224)

    def claims(self, name: str) -> bool:
        return name.startswith(self.prefix)

    def entry(self, name: str) -> ModelEntry:
        if not self.available():
            raise UnknownModelError(f"'{name}' needs timm, which is not installed "
                                    "(pip install timm)")
        import timm

        arch = name[len(self.prefix):]
        known = timm.list_models()
        if arch not in known:
            raise UnknownModelError(f"unknown timm model '{arch}'{suggest(arch, known)}")
        return self._entry(arch)

    def build(self, entry: ModelEntry, materialize: bool = False):
        import timm

        from netfrontier.graph.torch_capture import meta_init

        with contextlib.nullcontext() if materialize else meta_init():
            model = timm.create_model(entry.arch, pretrained=False)
        return model.eval()

    def capture(self, entry: ModelEntry, batch: int = 1, resolution: int | None = None):
        model = self.build(entry)
        size = (getattr(model, "pretrained_cfg", None) or {}).get("input_size", (3, 224, 224))
        from netfrontier.graph.torch_capture import capture_module

        res = resolution or int(size[-1])
        return capture_module(model, (batch, int(size[0]), res, res), model_name=entry.name,
                              source="timm")


class OnnxFileSource(ModelSource):
    """Any `.onnx` file; its input shape fixes resolution and batch."""

    name = "onnx"

    def entries(self) -> list[ModelEntry]:
        return []

    def claims(self, name: str) -> bool:
        return name.lower().endswith(".onnx")

    def entry(self, name: str) -> ModelEntry:
        if not Path(name).is_file():
            raise UnknownModelError(f"ONNX file '{name}' does not exist")
        return ModelEntry(name=Path(name).stem, arch=Path(name).stem, source="onnx",
                          resolution=0, extra={"path": str(Path(name).resolve())})

    def capture(self, entry: ModelEntry, batch: int = 1, resolution: int | None = None):
        from netfrontier.errors import OptionError
        from netfrontier.graph.onnx_capture import capture_onnx

        graph = capture_onnx(entry.extra["path"], model_name=entry.name)
        if (resolution and resolution != graph.resolution) or (batch != 1 and batch != graph.batch):
            raise OptionError(f"{entry.extra['path']} has a fixed input of batch {graph.batch} "
                              f"at {graph.resolution} px; re-export it for other shapes")
        return graph


class FactorySource(ModelSource):
    """`package.module:function` returning an nn.Module (called with no arguments)."""

    name = "factory"

    def entries(self) -> list[ModelEntry]:
        return []

    def claims(self, name: str) -> bool:
        return ":" in name and not name.lower().endswith(".onnx")

    def entry(self, name: str) -> ModelEntry:
        module, _, func = name.partition(":")
        if not module or not func.isidentifier():
            raise UnknownModelError(f"'{name}' is not of the form package.module:function")
        return ModelEntry(name=name, arch=func, source="factory", resolution=224)

    def _factory(self, entry: ModelEntry):
        module, _, func = entry.name.partition(":")
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            raise UnknownModelError(f"cannot import '{module}' for {entry.name}: {exc}") from None
        except SyntaxError as exc:
            raise UnknownModelError(f"'{module}' has a syntax error ({exc.filename}, line "
                                    f"{exc.lineno}: {exc.msg})") from None
        except Exception as exc:  # noqa: BLE001 — the user's module failed while importing
            raise UnknownModelError(f"importing '{module}' failed: {type(exc).__name__}: "
                                    f"{exc}") from None
        fn = getattr(mod, func, None)
        if not callable(fn):
            raise UnknownModelError(f"'{module}' has no callable '{func}'")
        return fn

    def build(self, entry: ModelEntry, materialize: bool = False):
        import torch

        from netfrontier.graph.torch_capture import meta_init

        fn = self._factory(entry)
        try:
            inspect.signature(fn).bind()
        except TypeError as exc:
            raise CaptureError(f"{entry.name} must be callable with no arguments ({exc})") \
                from None
        except ValueError:  # a builtin without a signature: just call it
            pass
        try:
            with contextlib.nullcontext() if materialize else meta_init():
                model = fn()
        except Exception as exc:  # noqa: BLE001 — the user's factory raised
            raise CaptureError(f"{entry.name} raised {type(exc).__name__}: {exc}") from None
        if not isinstance(model, torch.nn.Module):
            raise CaptureError(f"{entry.name} returned {type(model).__name__}, not an nn.Module")
        return model.eval()
