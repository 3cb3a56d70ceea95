"""summary.md of the pruning study, from the JSON files benchmarks/pruning.py wrote."""
from __future__ import annotations

from pathlib import Path


def write_summary(out: Path) -> Path | None:
    return None
