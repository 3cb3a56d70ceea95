"""Lottery-ticket results: per-run and summary CSVs, the accuracy-vs-weights plot, and what the
tickets cost on chips with and without sparse-weight support."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np

COLORS = {"winning ticket": "#1d5fa8", "same mask, random init": "#c77700",
          "random mask, random init": "#b8322a", "dense": "#1f2630"}


def plot_tickets(summary: list[dict], path, title: str) -> Path:
    """Test accuracy against the fraction of weights kept (log x), mean ± std over seeds,
    min-max band, one line per condition."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from netfrontier.report import write_png

    dense = next((r for r in summary if r["condition"] == "dense"), None)
    fig, ax = plt.subplots(figsize=(7, 4.4))
    for cond, color in COLORS.items():
        rs = sorted([r for r in summary if r["condition"] == cond], key=lambda r: -r["density"])
        if cond == "dense" or not rs:
            continue
        if dense:
            rs = [dense] + rs
        x = np.array([100 * r["density"] for r in rs])
        m = np.array([r["accuracy_mean"] for r in rs])
        s = np.array([r["accuracy_std"] for r in rs])
        ax.fill_between(x, [r["accuracy_min"] for r in rs], [r["accuracy_max"] for r in rs],
                        color=color, alpha=0.12, lw=0)
        ax.errorbar(x, m, yerr=s, color=color, marker="o", ms=3.5, lw=1.4, capsize=2, label=cond)
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("weights remaining (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="lower left")
    import matplotlib.ticker as mt

    ax.xaxis.set_major_formatter(mt.FuncFormatter(lambda v, _: f"{v:g}"))
    return write_png(fig, path, dpi=130)


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    cols = list(dict.fromkeys(k for r in rows for k in r if not isinstance(r[k], dict)))
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_lottery(rows: list[dict], summary: list[dict], costs: list[dict], meta: dict,
                  out_dir) -> dict[str, Path]:
    from netfrontier.report import write_atomic

    out = Path(out_dir)
    paths = {"runs": write_atomic(out / "runs.csv", _csv(rows)),
             "summary": write_atomic(out / "summary.csv", _csv(summary)),
             "json": write_atomic(out / "results.json", json.dumps(
                 {"meta": meta, "summary": summary, "costs": costs, "runs": rows}, indent=1))}
    if costs:
        paths["costs"] = write_atomic(out / "costs.csv", _csv(costs))
    paths["plot"] = plot_tickets(summary, out / "tickets.png",
                                 f"{meta['model']} on {meta['dataset']}: lottery tickets "
                                 f"({len({r['seed'] for r in rows})} seeds, rewind to "
                                 f"{'init' if not meta['rewind_iter'] else 'iteration ' + str(meta['rewind_iter'])})")
    return paths
