"""The report layer: frontier plots (PNG) and one self-contained HTML report.

Nothing here imports matplotlib at import time; the plotting functions load it (Agg backend)
when first called, so `import netfrontier` stays fast.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _umask() -> int:
    """The process umask, read without changing it where the OS allows."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def write_atomic(path, data: bytes | str) -> Path:
    """Write `data` to `path` so readers see either the old file or the whole new one.

    The bytes go to a temporary file in the same directory, are flushed to disk, and the file is
    renamed over `path` (os.replace); on any error the temporary file is removed and `path` is
    left as it was. Text is written as UTF-8. The new file gets ordinary permissions (0666 less
    the umask), not the 0600 of a temporary file.
    """
    path = Path(path)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


from netfrontier.report.html import render_report, write_report  # noqa: E402
from netfrontier.report.plots import (  # noqa: E402
    plot_all,
    plot_frontier,
    plot_relative_bars,
    short_names,
)

__all__ = ["write_atomic", "write_report", "render_report", "plot_frontier",
           "plot_relative_bars", "plot_all", "short_names"]


def write_png(fig, path, dpi: int = 110) -> Path:
    """Save a matplotlib figure as a PNG (tight bounding box) atomically, and close it."""
    import io

    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return write_atomic(path, buf.getvalue())
