"""The accuracy-vs-cost frontier, the trade-off line through it, and recommendations.

Pure data: nothing here draws. Costs are minimised, top-1 maximised; a point is on the frontier
when no other point is at least as good on both and strictly better on one. The trade-off line
is top-1 = a + b·log10(cost), fitted by least squares through the frontier points (costs span
orders of magnitude, as on the plots), and each model's distance below it is reported.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netfrontier.errors import InfeasibleError, OptionError

OBJECTIVES = {"latency": "latency_s", "dram": "dram_bytes", "energy": "energy_j"}


def pareto_front(cost: np.ndarray, top1: np.ndarray) -> np.ndarray:
    """Boolean mask of frontier points (strict dominance; of identical points only the first)."""
    cost = np.asarray(cost, float)
    top1 = np.asarray(top1, float)
    valid = np.isfinite(cost) & np.isfinite(top1)
    mask = np.zeros(len(cost), bool)
    best = -np.inf
    # sweep by cost ascending, then top-1 descending: a point is on the front if it beats all
    # cheaper-or-equal points on top-1
    order = np.lexsort((-top1, cost))
    for i in order:
        if valid[i] and top1[i] > best:
            mask[i] = True
            best = top1[i]
    return mask


@dataclass(frozen=True)
class TradeoffLine:
    """top1 = intercept + slope · log10(cost), fitted through the frontier."""

    objective: str
    slope: float
    intercept: float
    points: int

    def top1_at(self, cost) -> np.ndarray:
        return self.intercept + self.slope * np.log10(np.asarray(cost, float))

    def below(self, cost, top1) -> np.ndarray:
        """Points of top-1 each model lies below the line (negative: above it)."""
        return self.top1_at(cost) - np.asarray(top1, float)


def fit_tradeoff_line(cost, top1, on_front, objective: str = "") -> TradeoffLine | None:
    """Least-squares line through the frontier points; None with fewer than two of them."""
    cost = np.asarray(cost, float)[on_front]
    top1 = np.asarray(top1, float)[on_front]
    if len(cost) < 2 or np.ptp(np.log10(cost)) == 0:
        return None
    slope, intercept = np.polyfit(np.log10(cost), top1, 1)
    return TradeoffLine(objective, float(slope), float(intercept), int(len(cost)))


ON_IMAGENET_SCALE = ("reference", "estimated")


def check_one_task(rows: list[dict]) -> None:
    """Each task's frontier is drawn against its own metric: rows of several tasks (a top-1
    beside a box mAP) are never put on one frontier."""
    tasks = {r.get("task", "classification") for r in rows}
    if len(tasks) > 1:
        raise OptionError(f"rows of several tasks ({', '.join(sorted(tasks))}): each task's "
                          "frontier takes only its own rows")


def comparable_top1(rows: list[dict], metric: str = "top1") -> np.ndarray:
    """Top-1 (or the `metric` column, e.g. "accuracy": a detection or segmentation task's
    figure, with its source in `<metric>_source`) per row, NaN where it is not comparable
    with the rest.

    Published ImageNet-1k validation figures ("reference: ...") and accuracies measured on
    another image set (e.g. the 1,000-image sample, which scores higher) are different scales:
    when reference figures exist, only they take part in frontiers and recommendations, with
    the "estimated" figures of compressed networks (a parent's published top-1 minus the drop
    measured on held-out images), which are on the same scale.
    """
    src = f"{metric}_source"

    def on_scale(r):
        return str(r.get(src, "")).startswith(ON_IMAGENET_SCALE)

    has_ref = any(on_scale(r) for r in rows)
    return np.array([r[metric] if r.get(metric) is not None and (not has_ref or on_scale(r))
                     else np.nan for r in rows], float)


def annotate(rows: list[dict], metric: str = "top1"
             ) -> tuple[list[dict], dict[str, TradeoffLine | None]]:
    """Add on_frontier_<obj> and below_line_<obj> to each row (those with a top-1, or a figure
    in the `metric` column) per objective. The rows must be of one task (check_one_task)."""
    check_one_task(rows)
    top1 = comparable_top1(rows, metric)
    lines = {}
    out = [dict(r) for r in rows]
    for obj, col in OBJECTIVES.items():
        cost = np.array([r[col] for r in rows], float)
        front = pareto_front(cost, top1)
        line = fit_tradeoff_line(cost, top1, front, obj)
        lines[obj] = line
        below = line.below(cost, top1) if line else np.full(len(rows), np.nan)
        for r, f, b in zip(out, front, below):
            r[f"on_frontier_{obj}"] = bool(f)
            r[f"below_line_{obj}"] = None if not np.isfinite(b) else round(float(b), 3)
    return out, lines


def recommend(rows: list[dict], min_top1: float, objective: str = "latency",
              max_params: float | None = None, allow_fallback: bool = True,
              metric: str = "top1", label: str = "top-1") -> dict:
    """The cheapest row (by objective) with top-1 (or the `metric` column, named `label` in
    messages) ≥ min_top1 and params ≤ max_params."""
    if objective not in OBJECTIVES:
        raise OptionError(f"unknown objective '{objective}' (use {', '.join(OBJECTIVES)})")
    check_one_task(rows)
    col = OBJECTIVES[objective]
    top1 = comparable_top1(rows, metric)
    rows = [r for r, t in zip(rows, top1) if np.isfinite(t)]
    ok = [r for r in rows if r.get(metric) is not None and r[metric] >= min_top1
          and (max_params is None or r["params"] <= max_params)
          and (allow_fallback or not r.get("unsupported_layers"))]
    pct = "%" if metric == "top1" else ""
    if not ok:
        best = max((r[metric] for r in rows if r.get(metric) is not None), default=None)
        extra = f" under {max_params:,.0f} parameters" if max_params is not None else ""
        raise InfeasibleError(
            f"no model reaches {label} ≥ {min_top1}{pct}{extra}"
            + (f" (the best in this set reaches {best:.2f}{pct})" if best is not None else ""))
    return min(ok, key=lambda r: (r[col], -r[metric]))
