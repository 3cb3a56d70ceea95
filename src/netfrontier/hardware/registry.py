"""Hardware presets shipped as YAML beside this file, the user's calibrated profiles, and user
files wherever a name is accepted.

User profiles live in one directory (`profile_dir`) so that `netfrontier calibrate --name X`
followed by `--hw X` anywhere just works; they are looked up after the shipped presets, and
`calibrate` refuses a name that a shipped preset already has, so a name always means one thing.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from netfrontier.errors import UnknownHardwareError, suggest
from netfrontier.hardware.spec import HardwareSpec, load_spec

PRESET_DIR = Path(__file__).parent / "presets"


def profile_dir() -> Path:
    """Where user profiles live: $NETFRONTIER_PROFILES, else
    $XDG_CONFIG_HOME/netfrontier/profiles, else ~/.config/netfrontier/profiles."""
    if os.environ.get("NETFRONTIER_PROFILES"):
        return Path(os.environ["NETFRONTIER_PROFILES"]).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(config) / "netfrontier" / "profiles"


def preset_names() -> list[str]:
    """Names of every shipped preset (analytical and calibrated), sorted."""
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def profile_names() -> list[str]:
    """Names of the user's profiles in `profile_dir()` that no shipped preset hides, sorted."""
    shipped = set(preset_names())
    return sorted(p.stem for p in profile_dir().glob("*.yaml") if p.stem not in shipped)


def hardware_names() -> list[str]:
    """Every name `get_hardware` accepts without a path: shipped presets, then user profiles."""
    return preset_names() + profile_names()


@lru_cache(maxsize=64)
def _load_cached(path: str, mtime: float) -> HardwareSpec:
    return load_spec(path)


def _load(path: Path) -> HardwareSpec:
    return _load_cached(str(path.resolve()), path.stat().st_mtime)


def get_hardware(name_or_path: str) -> HardwareSpec:
    """A shipped preset by name, else a user profile by name, or a user's YAML file by path."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists():
        if not p.exists():
            raise UnknownHardwareError(f"hardware file '{name_or_path}' does not exist")
        return _load(p)
    for found in (PRESET_DIR / f"{name_or_path}.yaml", profile_dir() / f"{name_or_path}.yaml"):
        if p.name == name_or_path and found.is_file():
            return _load(found)
    raise UnknownHardwareError(
        f"unknown hardware preset '{name_or_path}'{suggest(name_or_path, hardware_names())}; "
        "see 'netfrontier hw list', or pass a YAML file")


def get_hardware_list(names: str | list[str]) -> list[HardwareSpec]:
    """Comma-separated names (or a list) to specs, in order."""
    items = names.split(",") if isinstance(names, str) else names
    return [get_hardware(n.strip()) for n in items if n.strip()]
