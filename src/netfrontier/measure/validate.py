"""How close do a profile's predictions come to measured latency? Per model, in numbers."""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from netfrontier.errors import MeasurementError


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    for v in np.unique(x):  # average ranks of ties
        sel = x == v
        if sel.sum() > 1:
            ranks[sel] = ranks[sel].mean()
    return ranks


def spearman(a, b) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks)."""
    ra, rb = _ranks(np.asarray(a, float)), _ranks(np.asarray(b, float))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def metrics(measured, predicted) -> dict:
    """Spearman, median absolute percentage error, and the share within ±10% and ±20%."""
    m, p = np.asarray(measured, float), np.asarray(predicted, float)
    err = np.abs(p - m) / m
    return {"models": int(len(m)), "spearman": spearman(m, p),
            "mdape_pct": float(100 * np.median(err)) if len(m) else float("nan"),
            "within_10_pct": float(100 * np.mean(err <= 0.10)) if len(m) else float("nan"),
            "within_20_pct": float(100 * np.mean(err <= 0.20)) if len(m) else float("nan")}


def read_jsonl(path: str | Path, what: str, keys: tuple[str, ...],
               timed_keys: tuple[str, ...] = ()) -> list[dict]:
    """The records of a JSONL file, one object a line, each with `keys` (and, unless it
    records an "error", `timed_keys`), and positive, finite times (`median_s`, `min_s`).

    A bad line is one error naming the file and line: the records come from long runs, and a
    truncated or hand-edited file must say where, not end in a traceback or a silent skip."""
    p = Path(path)
    if not p.is_file():
        raise MeasurementError(f"{what} file '{p}' does not exist")
    try:
        lines = p.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise MeasurementError(f"{what} file '{p}' cannot be read ({exc})") from None
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            r = json.loads(line)
        except json.JSONDecodeError as exc:
            raise MeasurementError(f"{p}, line {n}: not JSON ({exc.msg})") from None
        if not isinstance(r, dict):
            raise MeasurementError(f"{p}, line {n}: a record must be a JSON object, got "
                                   f"{type(r).__name__}")
        missing = [k for k in keys + (() if "error" in r else timed_keys) if k not in r]
        if missing:
            raise MeasurementError(f"{p}, line {n}: missing key '{missing[0]}'")
        for key in ("median_s", "min_s"):
            t = r.get(key, 1.0)
            if isinstance(t, bool) or not isinstance(t, (int, float)) or \
                    not math.isfinite(t) or t <= 0:
                raise MeasurementError(f"{p}, line {n}: {key} must be a positive number of "
                                       f"seconds, got {t!r}")
        records.append(r)
    return records


def load_measurements(path: str | Path) -> list[dict]:
    """Zoo measurements (`netfrontier bench` output): model, batch and median_s per line."""
    return read_jsonl(path, "measurement", ("model", "batch", "median_s"))


def validate(hw, measurements: list[dict], batch: int, store=None,
             progress: Callable[[str], None] | None = None,
             on_total: Callable[[int], None] | None = None) -> tuple[list[dict], dict]:
    """Predicted vs measured per model at one batch size; the metrics over all of them.

    `on_total` and `progress` are zoo_rows's: a cold store captures every zoo model first,
    which takes minutes, so the caller can show how far it is."""
    from netfrontier.zoo import zoo_rows

    meas = {m["model"]: m for m in measurements if m["batch"] == batch}
    if not meas:
        raise MeasurementError(f"no measurements at batch {batch}")
    predicted = {r["model"]: r for r in zoo_rows(hw, batch=batch, store=store,
                                                 progress=progress, on_total=on_total,
                                                 models=sorted(meas))}
    rows = []
    for name, m in sorted(meas.items()):
        if name not in predicted:
            continue
        p = predicted[name]["latency_s"]
        rows.append({"model": name, "batch": batch, "measured_s": m["median_s"],
                     "predicted_s": p, "error_pct": 100 * (p - m["median_s"]) / m["median_s"],
                     "macs": predicted[name]["macs"]})
    if not rows:
        raise MeasurementError("none of the measured models is in the zoo")
    stats = metrics([r["measured_s"] for r in rows], [r["predicted_s"] for r in rows])
    stats["spearman_macs"] = spearman([r["measured_s"] for r in rows], [r["macs"] for r in rows])
    stats["batch"] = batch
    stats["hardware"] = hw.name
    return rows, stats


def plot_validation(rows: list[dict], stats: dict, path: str | Path) -> Path:
    """Log-log scatter of predicted against measured, with the diagonal and a ±20% band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from netfrontier.report import write_png

    m = np.array([r["measured_s"] for r in rows]) * 1e3
    p = np.array([r["predicted_s"] for r in rows]) * 1e3
    lo, hi = min(m.min(), p.min()) / 1.5, max(m.max(), p.max()) * 1.5
    fig, ax = plt.subplots(figsize=(6.5, 6))
    xs = np.geomspace(lo, hi, 50)
    ax.fill_between(xs, xs * 0.8, xs * 1.2, color="#cfe8cf", label="±20%")
    ax.plot(xs, xs, color="#2a7a2a", lw=1)
    inside = np.abs(p - m) / m <= 0.2
    ax.scatter(m[inside], p[inside], s=14, color="#1f4e9a", label="within ±20%")
    ax.scatter(m[~inside], p[~inside], s=14, color="#c0392b", label="outside")
    worst = np.argsort(-np.abs(np.log(p / m)))[:6]
    for i in worst:
        ax.annotate(rows[i]["model"].split(".")[0], (m[i], p[i]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi),
           xlabel="measured latency (ms)", ylabel="predicted latency (ms)",
           title=f"{stats['hardware']}, batch {stats['batch']}: Spearman {stats['spearman']:.3f}, "
                 f"{stats['within_20_pct']:.0f}% within ±20%")
    ax.title.set_fontsize(9)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(True, which="both", alpha=0.2)
    return write_png(fig, path, dpi=120)
