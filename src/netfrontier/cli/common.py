"""What every command shares: consoles, tables that stay whole in pipes, option checks.

On a terminal, tables are rich tables; when stdout is a pipe or a file they are plain aligned
rows, one per line, never wrapped or truncated (so `hw list | grep -c NAME` counts rows).
Option checks raise OptionError naming the option, before any long job starts, so a bad
`--out` never leaves half-written results behind.
"""
from __future__ import annotations

import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.text import Text

from netfrontier.errors import OptionError

console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def is_terminal() -> bool:
    return sys.stdout.isatty()


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]],
                right: Sequence[str] = ()) -> None:
    """A table of text cells (rich markup allowed): rich on a terminal, plain rows otherwise."""
    if is_terminal():
        from rich.table import Table

        t = Table(title=title)
        for c in columns:
            t.add_column(c, overflow="fold", justify="right" if c in right else "left")
        for r in rows:
            t.add_row(*r)
        console.print(t)
        return
    plain = [[Text.from_markup(str(c)).plain for c in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in plain]) for i, c in enumerate(columns)]

    def line(cells):
        return "  ".join(c.rjust(w) if col in right else c.ljust(w)
                         for c, w, col in zip(cells, widths, columns)).rstrip()

    out = [f"# {title}", line(columns)] + [line(r) for r in plain]
    sys.stdout.write("\n".join(out) + "\n")


def si(x: float, unit: str) -> str:
    """3 significant digits with an SI prefix: 1.5e9 Hz -> '1.5 GHz'."""
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""), (1e-3, "m"),
                          (1e-6, "µ"), (1e-9, "n")):
        if abs(x) >= scale:
            return f"{x / scale:.3g} {prefix}{unit}"
    return f"{x:.3g} {unit}"


def check_positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise OptionError(f"--{name} must be at least 1, got {value}")


def check_number(name: str, value: float | None, lo: float | None = None,
                 hi: float | None = None, lo_open: bool = False) -> None:
    """A finite number within [lo, hi] (lo excluded when `lo_open`), or None."""
    if value is None:
        return
    if not math.isfinite(value):
        raise OptionError(f"--{name} must be a finite number, got {value}")
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise OptionError(f"--{name} must be {'above' if lo_open else 'at least'} {lo:g}, "
                          f"got {value:g}")
    if hi is not None and value > hi:
        raise OptionError(f"--{name} must be at most {hi:g}, got {value:g}")


def check_out_dir(path: Path | None, option: str = "--out") -> Path | None:
    """Make sure `path` is (or can become) a writable directory; create it. Before any work."""
    if path is None:
        return None
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OptionError(f"{option} '{p}' is a file, not a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OptionError(f"{option} '{p}' cannot be created ({exc.strerror})") from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise OptionError(f"{option} '{p}' is not writable")
    return p


class Progress:
    """Progress of a long job on stderr: a transient rich bar on a terminal; elsewhere (a pipe,
    a log file), where that bar shows nothing, a plain line at every tenth of the work, so
    that a run of minutes is never silent. `update(item, done, total)` after each item."""

    def __init__(self, label: str):
        self.label, self.done, self.total, self.shown = label, 0, None, -1
        self.bar = None
        if err.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.bar = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.description}"), console=err,
                                transient=True)

    def __enter__(self):
        if self.bar:
            self.bar.__enter__()
            self.task = self.bar.add_task("", total=None)
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc) if self.bar else False

    def set_total(self, total: int) -> None:
        self.total = total

    def update(self, item: str, done: int | None = None, total: int | None = None) -> None:
        self.done = self.done + 1 if done is None else done
        self.total = total or self.total
        if self.bar:
            self.bar.update(self.task, completed=self.done, total=self.total, description=item)
            return
        tenth = 10 * self.done // self.total if self.total else self.done
        if tenth > self.shown:
            self.shown = tenth
            tail = f" {item}" if item else ""
            err.print(f"{self.label}: {self.done}/{self.total or '?'}{tail}",
                             markup=False, highlight=False)
