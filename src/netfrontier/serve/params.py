"""Request parameters, checked before any work: names against the registry and the store, numbers
against what the chip or the store has, text length, and no parameter the endpoint does not take.

A hardware name is looked up in the list of shipped presets and user profiles and read from its
registry file: a request never names a path. Every failure is a BadRequest (or a
NetfrontierError) with one line saying what was wrong.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from netfrontier.cost.analytical import check_bits
from netfrontier.errors import UnknownHardwareError, suggest
from netfrontier.frontier import OBJECTIVES
from netfrontier.hardware.registry import PRESET_DIR, get_hardware, hardware_names, profile_dir
from netfrontier.hardware.spec import HardwareSpec

MAX_VALUE_CHARS = 200
ACCURACY = ("reference", "measured")


class BadRequest(Exception):
    """A request the server refuses, with its HTTP status and one clear message."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def clip(text: str, n: int = 60) -> str:
    """A request's text as quoted back in a message: printable and short."""
    text = "".join(c if c.isprintable() else "?" for c in str(text))
    return text if len(text) <= n else text[:n] + "…"


def query(items: Iterable[tuple[str, str]], allowed: Iterable[str]) -> dict[str, str]:
    """The query parameters as a dict: each at most once, known to the endpoint, not too long."""
    allowed = set(allowed)
    out: dict[str, str] = {}
    for key, value in items:
        if key not in allowed:
            raise BadRequest(f"unknown parameter '{clip(key, 40)}' (this page takes "
                             f"{', '.join(sorted(allowed))})")
        if key in out:
            raise BadRequest(f"parameter '{key}' is given twice")
        if len(value) > MAX_VALUE_CHARS:
            raise BadRequest(f"parameter '{key}' is longer than {MAX_VALUE_CHARS} characters")
        out[key] = value
    return out


def integer(name: str, text: str | int | None, default: int | None = None, lo: int = 1,
            hi: int = 1 << 20) -> int | None:
    """A whole number within [lo, hi]; `default` when absent or empty."""
    if text is None or text == "":
        return default
    if isinstance(text, bool):
        raise BadRequest(f"'{name}' must be a whole number, got {text!r}")
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise BadRequest(f"'{name}' must be a whole number, got '{clip(text)}'") from None
    if not lo <= value <= hi:
        raise BadRequest(f"'{name}' = {value} is out of range ({lo} to {hi})")
    return value


def choice(name: str, text: str | None, choices: Iterable[str], default: str) -> str:
    choices = list(choices)
    if text is None or text == "":
        return default
    if text not in choices:
        raise BadRequest(f"'{name}' must be one of {', '.join(choices)}; got "
                         f"'{clip(text)}'{suggest(str(text), choices)}")
    return text


def objective(text: str | None) -> str:
    return choice("objective", text, OBJECTIVES, "latency")


def accuracy(text: str | None) -> str:
    return choice("accuracy", text, ACCURACY, "reference")


def hardware_file(name: str) -> Path:
    """The registry file of a preset or profile name (never a path from the request)."""
    names = hardware_names()
    if name not in names:
        raise UnknownHardwareError(
            f"unknown hardware preset '{clip(name)}'{suggest(str(name), names)}; the server "
            f"knows {len(names)} presets and profiles (see 'netfrontier hw list')")
    for base in (PRESET_DIR, profile_dir()):
        path = base / f"{name}.yaml"
        if path.is_file():
            return path
    raise UnknownHardwareError(f"hardware preset '{name}' has disappeared from the registry")


def hardware(name: str | None, default: str) -> HardwareSpec:
    """A validated spec for a preset or profile name; `default` when the name is absent."""
    return get_hardware(str(hardware_file(name or default)))


def default_hardware(preferred: str = "img-series4-1core") -> str:
    names = hardware_names()
    return preferred if preferred in names else names[0]


def bits(hw: HardwareSpec, wbits: str | int | None, abits: str | int | None) -> tuple[int, int]:
    """Weight and activation bits: the chip's defaults when absent, else ones the chip has."""
    w = integer("wbits", wbits, hw.default_wbits, 1, 32)
    a = integer("abits", abits, hw.default_abits, 1, 32)
    check_bits(hw, w, a)
    return w, a
