"""Pareto frontier, trade-off line and recommendation: pure data."""
from __future__ import annotations

import numpy as np
import pytest

from netfrontier.errors import InfeasibleError, OptionError
from netfrontier.frontier import annotate, fit_tradeoff_line, pareto_front, recommend


def test_strict_dominance_and_duplicates():
    cost = np.array([1.0, 2.0, 2.0, 3.0, 3.0, 0.5, 4.0])
    top1 = np.array([70., 75., 75., 74., 80., 60., 80.])
    mask = pareto_front(cost, top1)
    # (2,75) twice: only one kept; (3,74) dominated by (2,75); (4,80) dominated by (3,80)
    assert mask.tolist() == [True, True, False, False, True, True, False]


def test_nan_top1_never_on_front():
    assert not pareto_front([1.0, 2.0], [np.nan, 70.0])[0]


def test_tradeoff_line_through_front_and_distance_below():
    cost = np.array([1.0, 10.0, 100.0, 10.0])
    top1 = np.array([70.0, 75.0, 80.0, 60.0])
    line = fit_tradeoff_line(cost, top1, pareto_front(cost, top1))
    assert line.slope == pytest.approx(5.0) and line.intercept == pytest.approx(70.0)
    assert line.below(cost, top1)[3] == pytest.approx(15.0)


def _rows():
    return [{"model": m, "top1": t, "latency_s": l, "dram_bytes": d, "energy_j": e, "params": p,
             "unsupported_layers": u}
            for m, t, l, d, e, p, u in [("a", 70, 1.0, 5, 1, 3e6, 0), ("b", 76, 2.0, 9, 2, 25e6, 0),
                                        ("c", 80, 8.0, 50, 9, 80e6, 1), ("d", 74, 3.0, 2, 3, 5e6, 0)]]


def test_annotate_per_objective():
    rows, lines = annotate(_rows())
    by = {r["model"]: r for r in rows}
    assert by["d"]["on_frontier_dram"] and not by["d"]["on_frontier_latency"]
    assert set(lines) == {"latency", "dram", "energy"}


def test_recommend_cheapest_that_qualifies():
    assert recommend(_rows(), 75)["model"] == "b"
    assert recommend(_rows(), 73, objective="dram")["model"] == "d"
    assert recommend(_rows(), 75, max_params=30e6)["model"] == "b"
    with pytest.raises(InfeasibleError, match="best in this set reaches 80.00"):
        recommend(_rows(), 79, allow_fallback=False)
    with pytest.raises(InfeasibleError):
        recommend(_rows(), 90)
    with pytest.raises(OptionError, match="objective"):
        recommend(_rows(), 70, objective="speed")


def test_accuracies_on_another_image_set_do_not_mix_with_reference_figures():
    rows = [dict(r, top1_source="reference: torchvision") for r in _rows()]
    rows.append({"model": "sample-only", "top1": 99.0, "top1_source": "measured: imagenet-sample",
                 "latency_s": 0.1, "dram_bytes": 1, "energy_j": 0.1, "params": 1e6,
                 "unsupported_layers": 0})
    annotated, _ = annotate(rows)
    assert not annotated[-1]["on_frontier_latency"]
    assert recommend(rows, 75)["model"] == "b"
    assert recommend(rows[-1:], 90)["model"] == "sample-only"  # alone, it is its own scale
