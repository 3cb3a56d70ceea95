"""The accuracy predictor: measured top-1 from the architecture and its modelled cost.

Features: the candidate's knob encoding (`space.features`) plus log MACs and log parameters
from the cost rung. Model: an extremely randomised forest (scikit-learn), whose per-tree
spread is the uncertainty the screen uses. It is validated the only honest way: fitted on some
scored candidates, its Spearman rank correlation reported on candidates it never saw.

The screen (`Screen`), the "sampler over predictor × cost": once `after` candidates are
measured, a proposed candidate whose predicted top-1 plus `z` spreads lies below the measured
front at its modelled cost is not measured (the trial is pruned, labelled so); everything
else is measured as usual, so the predictor only saves measurements, never supplies a figure.
"""
from __future__ import annotations

import math

import numpy as np

from netfrontier.search.space import Candidate, features


def feature_row(c: Candidate, cost: dict) -> list[float]:
    return features(c) + [math.log10(max(cost["macs"], 1.0)),
                          math.log10(max(cost["params"], 1.0))]


class Predictor:
    def __init__(self, seed: int = 0, trees: int = 200):
        from sklearn.ensemble import ExtraTreesRegressor

        self.model = ExtraTreesRegressor(n_estimators=trees, min_samples_leaf=2,
                                         random_state=seed, n_jobs=1)

    def fit(self, X, y) -> "Predictor":
        self.model.fit(np.asarray(X, float), np.asarray(y, float))
        return self

    def predict(self, X) -> tuple[np.ndarray, np.ndarray]:
        X = np.asarray(X, float)
        per_tree = np.stack([t.predict(X) for t in self.model.estimators_])
        return per_tree.mean(0), per_tree.std(0)


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def held_out_rank_correlation(X, y, fit_fraction: float = 0.5, seed: int = 0,
                              order: str = "random") -> dict:
    """Fit on a part of the scored candidates, Spearman on the rest.

    order "random": a seeded random split; "first": fitted on the first part in trial order
    (what the screen had at that point), predicting the later ones."""
    X, y = np.asarray(X, float), np.asarray(y, float)
    n = len(y)
    if n < 6:
        return {"spearman": float("nan"), "fitted": n, "held_out": 0}
    idx = np.arange(n) if order == "first" else np.random.default_rng(seed).permutation(n)
    k = max(3, int(round(n * fit_fraction)))
    fit, hold = idx[:k], idx[k:]
    pred, _ = Predictor(seed).fit(X[fit], y[fit]).predict(X[hold])
    return {"spearman": spearman(pred, y[hold]), "fitted": int(len(fit)),
            "held_out": int(len(hold)),
            "mae": float(np.mean(np.abs(pred - y[hold]))) if len(hold) else float("nan")}


def front_top1_at(costs: np.ndarray, top1: np.ndarray, cost: float) -> float:
    """The best measured top-1 among candidates costing at most `cost` (−inf if none)."""
    ok = costs <= cost
    return float(top1[ok].max()) if ok.any() else -math.inf


class Screen:
    """Skip measuring candidates the predictor is confident the front already dominates."""

    def __init__(self, after: int = 12, z: float = 2.0, seed: int = 0):
        self.after, self.z, self.seed = after, z, seed

    def verdict(self, c: Candidate, cost: dict, cost_key: str, measured: list[tuple]) -> dict:
        """`measured`: (candidate, cost dict, top1) of every measured candidate so far.
        Returns {"skip": bool, "predicted": mean, "spread": std, "front": top-1 to beat}."""
        if len(measured) < self.after:
            return {"skip": False}
        X = [feature_row(m, mc) for m, mc, _ in measured]
        y = [t for _, _, t in measured]
        mean, std = Predictor(self.seed).fit(X, y).predict([feature_row(c, cost)])
        costs = np.array([mc[cost_key] for _, mc, _ in measured])
        front = front_top1_at(costs, np.array(y), cost[cost_key])
        skip = bool(mean[0] + self.z * std[0] < front)
        return {"skip": skip, "predicted": float(mean[0]), "spread": float(std[0]),
                "front": front}
