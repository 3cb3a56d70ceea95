"""Hardware presets shipped as YAML beside this file, and user files wherever a name is accepted."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from netfrontier.errors import UnknownHardwareError, suggest
from netfrontier.hardware.spec import HardwareSpec, load_spec

PRESET_DIR = Path(__file__).parent / "presets"


def preset_names() -> list[str]:
    """Names of every shipped preset (analytical and calibrated), sorted."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


@lru_cache(maxsize=64)
def _load_cached(path: str, mtime: float) -> HardwareSpec:
    return load_spec(path)


def get_hardware(name_or_path: str) -> HardwareSpec:
    """A shipped preset by name, or a user's YAML file by path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise UnknownHardwareError(f"hardware file '{name_or_path}' does not exist")
        return _load_cached(str(p.resolve()), p.stat().st_mtime)
    preset = PRESET_DIR / f"{name_or_path}.yaml"
    if not preset.exists():
        raise UnknownHardwareError(
            f"unknown hardware preset '{name_or_path}'{suggest(name_or_path, preset_names())}; "
            "see 'netfrontier hw list', or pass a YAML file")
    return _load_cached(str(preset), preset.stat().st_mtime)


def get_hardware_list(names: str | list[str]) -> list[HardwareSpec]:
    """Comma-separated names (or a list) to specs, in order."""
    items = names.split(",") if isinstance(names, str) else names
    return [get_hardware(n.strip()) for n in items if n.strip()]
