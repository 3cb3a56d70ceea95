"""Field checks for hardware YAML: numbers in range, knot curves, names, and strict YAML itself.

Each check raises SpecError naming the file and the key (`fallback.ops_per_s`,
`calibration.device_s.conv[2]`), so one bad figure is one clear line, never a crash or a
silent nonsense result (negative latency, infinite time, negative energy).
"""
from __future__ import annotations

import math
import re

import yaml

from netfrontier.errors import SpecError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


def fail(path: str, msg: str) -> SpecError:
    return SpecError(f"{path}: {msg}")


def number(path: str, key: str, value, typ=float, lo: float | None = None,
           hi: float | None = None, lo_open: bool = False):
    """`value` as `typ`, finite, within [lo, hi] (lo excluded when `lo_open`)."""
    if isinstance(value, str):  # YAML 1.1 reads 1.5e9 (no sign in the exponent) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise fail(path, f"'{key}' must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise fail(path, f"'{key}' must be finite, got {value!r}")
    if typ is int and float(value) != int(value):
        raise fail(path, f"'{key}' must be a whole number, got {value!r}")
    value = typ(value)
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise fail(path, f"'{key}' = {value:g} is implausible (must be "
                         f"{'above' if lo_open else 'at least'} {lo:g})")
    if hi is not None and value > hi:
        raise fail(path, f"'{key}' = {value:g} is implausible (must be at most {hi:g})")
    return value


def mapping(path: str, key: str, value) -> dict:
    if not isinstance(value, dict):
        raise fail(path, f"'{key}' must be a mapping, got {type(value).__name__}")
    bad = [k for k in value if not isinstance(k, str)]
    if bad:
        raise fail(path, f"'{key}' has a key that is not text: {bad[0]!r}")
    return value


def text(path: str, key: str, value, empty_ok: bool = True) -> str:
    if not isinstance(value, str):
        raise fail(path, f"'{key}' must be text, got {type(value).__name__}")
    if not empty_ok and not value.strip():
        raise fail(path, f"'{key}' must not be empty")
    return value


def name(path: str, value) -> str:
    """A preset name: also a file name (profiles and reports are written under it)."""
    value = text(path, "name", value, empty_ok=False)
    if not NAME_RE.match(value):
        raise fail(path, f"'name' = {value!r} must be 1-64 letters, digits, '.', '_', '+' or "
                         "'-', starting with a letter or digit")
    return value


def knots(path: str, key: str, value, x_range: tuple[float, float],
          y_range: tuple[float, float], y_lo_open: bool = False) -> list[list[float]]:
    """A curve of [x, y] knots with strictly increasing x, every figure finite and in range."""
    if not isinstance(value, list) or not value:
        raise fail(path, f"'{key}' must be a non-empty list of [x, y] knots")
    out = []
    for i, k in enumerate(value):
        if not isinstance(k, list) or len(k) != 2:
            raise fail(path, f"'{key}[{i}]' must be an [x, y] pair, got {k!r}")
        out.append([number(path, f"{key}[{i}].x", k[0], float, *x_range),
                    number(path, f"{key}[{i}].y", k[1], float, *y_range, lo_open=y_lo_open)])
    xs = [k[0] for k in out]
    if any(b <= a for a, b in zip(xs, xs[1:])):
        raise fail(path, f"'{key}' knots must have strictly increasing x")
    return out


class StrictLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                dup = key in seen
            except TypeError:  # unhashable key: SafeLoader reports it
                break
            if dup:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def parse_yaml(text_: str, path: str):
    """Parse YAML strictly (no duplicate keys); SpecError with the line on any problem."""
    try:
        return yaml.load(text_, Loader=StrictLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise fail(path, f"malformed YAML{where}: {getattr(exc, 'problem', None) or exc}") \
            from None
    except (RecursionError, ValueError, OverflowError) as exc:  # e.g. deeply nested input
        raise fail(path, f"malformed YAML: {type(exc).__name__}") from None
