"""Hardware-aware channel allocation: how many channels each group loses, for one chip.

The modelled cost of a group at every kept width comes from netfrontier's own cost model on
the pruned shapes (`Pruner.shape_copy`, captured and costed), at multiples of the array's tile
(`quantum`): on a 64-wide array 60 channels cost the cycles of 64. The accuracy price is the
group's sensitivity: KL(unpruned ‖ masked) of the logits on calibration images when the group
alone loses a fraction of its least important channels (measured at a few fractions,
interpolated). Greedy: repeatedly take the step (one quantum of one group) with the largest
modelled saving per unit of sensitivity, until the summed saving reaches the target; then the
whole plan is costed for real and, where the sum overestimated the saving, the greedy goes on
toward the corrected target. `uniform` is the baseline: the same kept fraction everywhere,
bisected to the same modelled cost.

A quantum finer than the tile (e.g. 8, as frameworks round) prices widths between tile
multiples by linear interpolation — what a FLOP-proportional model believes; the verification
shows what that costs on the chip (`round_report`).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from netfrontier.compress.prune import Group, Plan, Pruner, lowest
from netfrontier.cost.analytical import estimate
from netfrontier.errors import InfeasibleError, OptionError
from netfrontier.frontier import OBJECTIVES
from netfrontier.graph.torch_capture import capture_module

SENS_FRACTIONS = (0.125, 0.25, 0.5, 0.75)


def tile_quantum(hw) -> int:
    """The channel multiple the preset's array computes in (1 when it has no tile)."""
    return max(hw.tile["n"], hw.tile["c"], hw.tile_depthwise["g"], 1)


@dataclass
class Costing:
    """Costs a plan on one chip, by capturing its pruned shapes; results are cached."""

    pruner: Pruner
    hw: object
    shape: tuple[int, ...]
    objective: str = "latency"
    wbits: int | None = None
    cache: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise OptionError(f"unknown objective '{self.objective}' "
                              f"(use {', '.join(OBJECTIVES)})")

    def table(self, plan: Plan):
        graph = capture_module(self.pruner.shape_copy(plan), self.shape, model_name="pruned")
        return estimate(graph, self.hw, wbits=self.wbits)

    def cost(self, plan: Plan) -> float:
        key = tuple(sorted((k, len(v)) for k, v in plan.remove.items() if v))
        if key not in self.cache:
            self.cache[key] = float(self.table(plan).totals()[OBJECTIVES[self.objective]])
        return self.cache[key]


def levels(group: Group, quantum: int, min_keep: float) -> list[int]:
    """Kept widths a group may take: full, then multiples of `quantum` down to min_keep."""
    floor = max(quantum, math.ceil(group.channels * min_keep))
    ks = [group.channels] + [k for k in range((group.channels - 1) // quantum * quantum, 0,
                                              -quantum) if k >= floor]
    return sorted(set(ks), reverse=True)


def cost_curves(costing: Costing, groups: list[Group], scores: dict, tile: int,
                min_keep: float, progress: Callable[[str], None] | None = None) -> dict:
    """Per group: {kept width: modelled saving vs. the full network} at tile multiples."""
    base = costing.cost(Plan())
    out = {}
    for g in groups:
        out[g.root] = {g.channels: 0.0}
        floor = max(1, math.ceil(g.channels * min_keep))  # so finer quanta interpolate to it
        for k in sorted(set(levels(g, tile, min_keep)[1:]) | ({floor} if floor < g.channels
                                                               else set()), reverse=True):
            plan = Plan({g.root: lowest(scores[g.root], g.channels - k)})
            out[g.root][k] = base - costing.cost(plan)
        if progress:
            progress(g.root)
    return out


def sensitivity(pruner: Pruner, groups: list[Group], scores: dict, means: dict,
                x: torch.Tensor, progress: Callable[[str], None] | None = None) -> dict:
    """Per group: {fraction removed: KL(unpruned ‖ pruned) of the logits on x}."""
    from netfrontier.compress.mixed import _kl

    with torch.no_grad():
        ref = pruner.model(x)
    out = {}
    for g in groups:
        out[g.root] = {0.0: 0.0}
        for f in SENS_FRACTIONS:
            n = min(int(round(f * g.channels)), g.channels - 1)
            if n < 1:
                continue
            with torch.no_grad(), pruner.masked(Plan({g.root: lowest(scores[g.root], n)}),
                                                means) as m:
                out[g.root][n / g.channels] = _kl(ref, m(x))
        if progress:
            progress(g.root)
    return out


def _interp(curve: dict, x: float) -> float:
    xs = sorted(curve)
    return float(np.interp(x, xs, [curve[k] for k in xs]))


@dataclass(frozen=True)
class Allocation:
    kept: dict  # group root -> kept width
    cost: float  # modelled, of the whole plan
    base_cost: float
    predicted_sensitivity: float
    iterations: int

    def plan(self, groups: list[Group], scores: dict) -> Plan:
        return Plan({g.root: lowest(scores[g.root], g.channels - self.kept[g.root])
                     for g in groups if self.kept[g.root] < g.channels})


def allocate(costing: Costing, groups: list[Group], scores: dict, savings: dict, sens: dict,
             target: float, quantum: int, min_keep: float = 0.25,
             max_rounds: int = 40) -> Allocation:
    """Greedy saving-per-sensitivity allocation that meets `target` on the cost model."""
    base = costing.cost(Plan())
    kept = {g.root: g.channels for g in groups}
    by_root = {g.root: g for g in groups}
    need = base - target
    steps = {g.root: [k for k in levels(g, quantum, min_keep)] for g in groups}

    def saving(root, k):
        return _interp(savings[root], k)

    def sens_at(root, k):
        return _interp(sens[root], 1 - k / by_root[root].channels)

    for rounds in range(1, max_rounds + 1):
        moved = False
        while sum(saving(r, k) for r, k in kept.items()) < need:
            best, best_ratio = None, -1.0
            for r, k in kept.items():
                lower = [x for x in steps[r] if x < k]
                if not lower:
                    continue
                nk = lower[0]
                gain = saving(r, nk) - saving(r, k)
                if gain <= 0:  # no modelled saving yet: look further down for this group
                    further = [x for x in lower if saving(r, x) > saving(r, k)]
                    if not further:
                        continue
                    nk = further[0]
                    gain = saving(r, nk) - saving(r, k)
                ratio = gain / max(sens_at(r, nk) - sens_at(r, k), 1e-9)
                if ratio > best_ratio:
                    best, best_ratio = (r, nk), ratio
            if best is None:
                break
            kept[best[0]] = best[1]
            moved = True
        alloc = Allocation(dict(kept), 0.0, base, 0.0, rounds)
        actual = costing.cost(alloc.plan(groups, scores))
        if actual <= target * (1 + 1e-9):
            return Allocation(dict(kept), actual, base,
                              sum(sens_at(r, k) for r, k in kept.items()), rounds)
        if not moved and rounds > 1:
            break  # nothing left that the model says saves anything
        # the sum overestimated the saving: ask for the difference, and at least one more step
        total = sum(saving(r, k) for r, k in kept.items())
        need = max(need + actual - target, total * (1 + 1e-9) + 1e-15)
    closest = costing.cost(Allocation(kept, 0, base, 0, 0).plan(groups, scores))
    raise InfeasibleError(f"no allocation reaches {OBJECTIVES[costing.objective]} "
                          f"{target:.4g} keeping at least {min_keep:.0%} of every group: the "
                          f"closest is {closest:.4g} (unpruned {base:.4g})")


def reachable(costing: Costing, groups: list[Group], scores: dict, quantum: int,
              min_keep: float) -> float:
    """The lowest modelled cost any allocation can reach (every group at its narrowest)."""
    kept = {g.root: levels(g, quantum, min_keep)[-1] for g in groups}
    return costing.cost(Allocation(kept, 0, 0, 0, 0).plan(groups, scores))


def uniform(costing: Costing, groups: list[Group], scores: dict, target: float, quantum: int,
            min_keep: float = 0.25) -> Allocation:
    """The same kept fraction for every group (rounded to `quantum`), bisected to `target`."""
    base = costing.cost(Plan())

    def at(frac):
        kept = {g.root: min(g.channels, max(quantum, int(round(frac * g.channels / quantum))
                                            * quantum)) for g in groups}
        a = Allocation(kept, 0.0, base, 0.0, 0)
        return a, costing.cost(a.plan(groups, scores))

    lo, hi = min_keep, 1.0
    best, cost = at(lo)
    if cost > target:
        raise InfeasibleError(f"uniform pruning to {min_keep:.0%} of every group still costs "
                              f"{cost:.4g} > target {target:.4g}")
    for _ in range(20):
        mid = (lo + hi) / 2
        a, c = at(mid)
        if c <= target:
            lo, best, cost = mid, a, c
        else:
            hi = mid
    return Allocation(best.kept, cost, base, 0.0, 0)
