"""One exception family per kind of bad input; the CLI turns each into one line and exit code 2."""
from __future__ import annotations

import difflib
from collections.abc import Iterable


class NetfrontierError(Exception):
    """Base of every error the tool raises on purpose (bad input, impossible request)."""


class UnknownModelError(NetfrontierError):
    """A model name that no registered source knows."""


class UnknownHardwareError(NetfrontierError):
    """A hardware preset name that is neither shipped nor a readable YAML file."""


class SpecError(NetfrontierError):
    """A hardware YAML file that is malformed, incomplete or implausible."""


class GraphImportError(NetfrontierError):
    """A model file (ONNX, checkpoint) that cannot be read into an OpGraph."""


class CaptureError(NetfrontierError):
    """A PyTorch model whose forward pass cannot be traced on meta tensors."""


class OptionError(NetfrontierError):
    """An option value outside what the tool or the chosen hardware supports."""


class InfeasibleError(NetfrontierError):
    """A constraint no candidate satisfies (e.g. no model reaches the requested top-1)."""


class StoreError(NetfrontierError):
    """A store path that is not a readable, writable SQLite database."""


class MeasurementError(NetfrontierError):
    """A timing or calibration run that could not be carried out on the requested device."""


def suggest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """' (did you mean a, b?)' for close matches of `name` among `choices`, else ''."""
    close = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""
