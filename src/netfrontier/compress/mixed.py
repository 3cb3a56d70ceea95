"""Mixed precision: per-layer weight bits that minimise modelled cost under a top-1 budget.

1. Sensitivity: starting from the uniform 8-bit PTQ model, each layer alone is re-quantized to
   the lowest candidate depth and the KL divergence of the logits from FP32's is measured on a
   few calibration images (the increase over the 8-bit model's). Depths in between are
   interpolated by the 4^-bits law of rounding noise power.
2. Savings: netfrontier's own cost model (`estimate(graph, hw, layer_wbits={path: bits})`)
   gives the latency, DRAM bytes or energy each layer saves at each depth on the preset.
3. Allocation: for a sweep of trade-off weights λ, each layer takes the depth minimising
   cost + λ·sensitivity; the distinct allocations form a path from all-8-bit to all-lowest.
4. Budget: a binary search along that path, measuring real top-1 on the tuning images, finds
   the cheapest allocation whose drop from FP32 stays within the budget.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from netfrontier.compress.ptq import bias_correction, set_layer_bits
from netfrontier.errors import InfeasibleError, OptionError

OBJECTIVE_COLUMNS = {"latency": "latency_s", "dram": "dram_bytes", "energy": "energy_j"}


@dataclass
class MixedResult:
    """The chosen allocation with what it was chosen on."""

    layer_wbits: dict[str, int]
    objective: str
    hardware: str
    budget_top1_drop: float
    tune_top1_drop: float
    modelled_cost: float
    base_cost: float
    sensitivity: dict[str, float] = field(default_factory=dict)
    path_evaluated: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        counts: dict[int, int] = {}
        for b in self.layer_wbits.values():
            counts[b] = counts.get(b, 0) + 1
        return {"objective": self.objective, "hardware": self.hardware,
                "budget_top1_drop": self.budget_top1_drop,
                "tune_top1_drop": round(self.tune_top1_drop, 3),
                "modelled_cost": self.modelled_cost, "base_cost": self.base_cost,
                "layers_per_bits": {str(k): v for k, v in sorted(counts.items())},
                "evaluated": self.path_evaluated}


def _kl(ref_logits: torch.Tensor, logits: torch.Tensor) -> float:
    return float(F.kl_div(F.log_softmax(logits, 1), F.softmax(ref_logits, 1),
                          reduction="batchmean"))


@torch.no_grad()
def layer_sensitivity(qmodel, fp_logits: torch.Tensor, x: torch.Tensor, low_bits: int,
                      skip: set[str] = frozenset(),
                      progress: Callable[[str], None] | None = None) -> dict[str, float]:
    """{layer path: KL increase over the uniform model when that layer alone is at low_bits}."""
    base = _kl(fp_logits, qmodel(x))
    out = {}
    for layer in qmodel.quant_layers:
        if layer.path in skip:
            continue
        trial = copy.deepcopy(qmodel)
        set_layer_bits(trial, layer.path, low_bits)
        out[layer.path] = max(_kl(fp_logits, trial(x)) - base, 0.0)
        if progress:
            progress(layer.path)
    return out


def layer_savings(graph, hw, paths: list[str], bits: list[int], objective: str,
                  abits: int = 8, base_bits: int = 8) -> tuple[float, dict[str, dict[int, float]]]:
    """(cost of the uniform model, {path: {bits: modelled cost saved with that layer alone at bits}})."""
    from netfrontier.cost.analytical import estimate

    col = OBJECTIVE_COLUMNS[objective]
    base = estimate(graph, hw, wbits=base_bits, abits=abits)
    base_cost = float(base.columns[col].sum())
    out = {}
    for p in paths:
        out[p] = {b: base_cost - float(estimate(graph, hw, wbits=base_bits, abits=abits,
                                                layer_wbits={p: b}).columns[col].sum())
                  for b in bits}
    return base_cost, out


def allocation_path(sens_low: dict[str, float], savings: dict[str, dict[int, float]],
                    bits: list[int], low_bits: int, base_bits: int = 8) -> list[dict[str, int]]:
    """Distinct allocations from all-`base_bits` to all-lowest (Lagrangian sweep, see doc)."""
    paths = list(sens_low)
    sens = {p: {b: sens_low[p] * 4.0 ** (low_bits - b) if b < base_bits else 0.0
                for b in [base_bits] + bits} for p in paths}
    save = {p: {base_bits: 0.0, **savings[p]} for p in paths}
    ratios = [save[p][b] / max(sens[p][b], 1e-12) for p in paths for b in bits
              if save[p][b] > 0]
    if not ratios:
        return [{p: base_bits for p in paths}]
    lams = np.concatenate([[np.inf], np.geomspace(max(ratios) * 2, min(ratios) / 2, 400), [0.0]])
    seen, out = set(), []
    for lam in lams:
        alloc = {}
        for p in paths:
            choices = [base_bits] + bits
            if np.isinf(lam):
                alloc[p] = base_bits
                continue
            alloc[p] = min(choices, key=lambda b: (-save[p][b] + lam * sens[p][b], -b))
        key = tuple(alloc[p] for p in paths)
        if key not in seen:
            seen.add(key)
            out.append(alloc)
    return out


def search(fp_model, base_q, tune, calib_batches, graph, hw, *, budget_top1_drop: float,
           objective: str = "latency", bits: tuple[int, ...] = (6, 4), sens_images: int = 16,
           select_images: int | None = None, bias_corr: bool = True,
           evaluate_fn=None, progress: Callable[[str], None] | None = None) -> tuple[object, MixedResult]:
    """Cheapest allocation (on `hw`, `objective`) whose top-1 drop vs FP32 on `tune` (first
    `select_images`) stays within `budget_top1_drop` points. `base_q` is the uniform 8-bit PTQ
    model *without* bias correction (it is applied to each candidate). Returns (model, result)."""
    from netfrontier.measure.accuracy import evaluate

    if objective not in OBJECTIVE_COLUMNS:
        raise OptionError(f"objective must be one of {', '.join(OBJECTIVE_COLUMNS)}, "
                          f"got '{objective}'")
    if budget_top1_drop < 0:
        raise OptionError(f"--budget-top1-drop must be zero or more, got {budget_top1_drop}")
    evaluate_fn = evaluate_fn or evaluate
    bits = sorted({int(b) for b in bits if b < 8}, reverse=True)
    if not bits:
        raise OptionError("mixed precision needs at least one candidate below 8 bits")
    low = min(bits)
    sel = tune if not select_images else tune.subset(range(min(select_images, len(tune))))
    x = next(tune.batches(sens_images))
    with torch.no_grad():
        fp_logits = fp_model(x)
    fixed = {q.path for q in base_q.quant_layers if q.wbits != base_q.quant_config.wbits}
    sens = layer_sensitivity(base_q, fp_logits, x, low, skip=fixed, progress=progress)
    base_cost, save = layer_savings(graph, hw, list(sens), bits, objective,
                                    abits=base_q.quant_config.abits)
    unknown = [p for p in sens if all(v == 0 for v in save[p].values())]
    path = allocation_path(sens, save, bits, low)
    fp_acc = evaluate_fn(fp_model, sel)
    cache: dict[int, tuple] = {}

    def build(i):
        m = copy.deepcopy(base_q)
        for p, b in path[i].items():
            if b != 8:
                set_layer_bits(m, p, b)
        if bias_corr:
            bias_correction(m, calib_batches, m.quant_config)
        return m

    def drop(i):
        if i not in cache:
            m = build(i)
            acc = evaluate_fn(m, sel)
            cache[i] = (fp_acc.top1 - acc.top1, m)
            if progress:
                progress(f"allocation {i + 1}/{len(path)}: tune top-1 drop {cache[i][0]:.2f}")
        return cache[i][0]

    if drop(0) > budget_top1_drop:
        raise InfeasibleError(
            f"no bit allocation keeps the top-1 drop within {budget_top1_drop} points: even "
            f"all-8-bit weights drop {drop(0):.2f} points on {sel.name}")
    lo, hi = 0, len(path) - 1  # invariant: path[lo] fits the budget
    if drop(hi) <= budget_top1_drop:
        lo = hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if drop(mid) <= budget_top1_drop:
            lo = mid
        else:
            hi = mid
    from netfrontier.cost.analytical import estimate

    chosen = {p: b for p, b in path[lo].items()}
    full = {q.path: q.wbits for q in base_q.quant_layers} | chosen
    cost = float(estimate(graph, hw, wbits=8, abits=base_q.quant_config.abits,
                          layer_wbits=full).columns[OBJECTIVE_COLUMNS[objective]].sum())
    res = MixedResult(full, objective, hw.name, budget_top1_drop, cache[lo][0], cost, base_cost,
                      sens, [{"index": i, "tune_top1_drop": round(v[0], 3),
                              "layers_below_8": sum(b < 8 for b in path[i].values())}
                             for i, v in sorted(cache.items())])
    if unknown:
        res.path_evaluated.append({"note": f"{len(unknown)} layers not found in the cost graph"})
    return cache[lo][1], res
