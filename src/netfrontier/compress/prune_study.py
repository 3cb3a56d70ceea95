"""`netfrontier prune`: shrink a network for one chip, measure its top-1, cost it everywhere.

Protocol (as for quantization): the labelled images are split in two fixed halves
(`LabelledImages.split`): importance (Taylor's labels), the consumers' input means used for
folding, the sensitivity measurement and the distillation all use the tune half; top-1 is
measured once per variant on the held-out half, as a paired difference against the unpruned
network on the same images. A pruned network's zoo figure is the parent's published top-1 minus
that drop: "estimated".

Phases, each saved in the output directory as it finishes so an interrupted run resumes:
`sensitivity.json` (chip-independent) and `cost_curves.json`, `allocation.json`, the pruned network
(`pruned.pt` + `pruned.json`), then `recovered.pt` after distillation.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from netfrontier.compress.allocate import (Costing, allocate, cost_curves, reachable, sensitivity,
                                           tile_quantum, uniform)
from netfrontier.compress.prune import IMPORTANCES, Plan, Pruner, lowest, save_pruned
from netfrontier.errors import InfeasibleError, OptionError
from netfrontier.frontier import OBJECTIVES

ALLOCATIONS = ("hardware", "uniform")


@dataclass(frozen=True)
class PruneOptions:
    hw: str = "img-series4-1core"
    objective: str = "latency"
    target: float | None = None  # in the objective's units (s, bytes, J)
    ratio: float | None = None  # of the unpruned network's cost
    importance: str = "l1"
    allocation: str = "hardware"
    round_to_tile: bool = True
    min_keep: float = 0.25
    fold: bool = True
    bn_reestimate: bool = False
    epochs: int = 0
    lr: float = 1e-4
    batch_size: int = 16
    augment: str = "crop"
    wbits: int | None = None  # 8-bit PTQ of the pruned network (and of the parent) when set
    sens_images: int = 64
    data: str | None = None
    limit: int | None = None
    threads: int | None = None

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise OptionError(f"unknown objective '{self.objective}' (use {', '.join(OBJECTIVES)})")
        if (self.target is None) == (self.ratio is None):
            raise OptionError("give one target: --target-latency/--target-dram/--target-energy "
                              "or --ratio")
        if self.target is not None and not self.target > 0:
            raise OptionError(f"the target must be positive, got {self.target:g}")
        if self.ratio is not None and not 0 < self.ratio < 1:
            raise OptionError(f"--ratio must be between 0 and 1 (exclusive), got {self.ratio:g}")
        if self.importance not in IMPORTANCES:
            raise OptionError(f"unknown importance '{self.importance}' "
                              f"(use {', '.join(IMPORTANCES)})")
        if self.allocation not in ALLOCATIONS:
            raise OptionError(f"unknown allocation '{self.allocation}' "
                              f"(use {', '.join(ALLOCATIONS)})")
        if not 0 < self.min_keep <= 1:
            raise OptionError(f"--min-keep must be in (0, 1], got {self.min_keep:g}")
        if self.epochs < 0 or self.sens_images < 1 or self.batch_size < 1:
            raise OptionError("--epochs must be ≥ 0, sensitivity images and batch size ≥ 1")

    def key(self, with_chip: bool = True) -> str:
        """What the analysis depends on: not the target, the allocation or the recovery, so runs
        toward several targets share it. The sensitivity (`with_chip=False`) does not depend on
        the chip or the objective either, so runs for several chips share that too."""
        drop = {"target", "ratio", "allocation", "round_to_tile", "epochs", "lr", "batch_size",
                "augment", "wbits", "bn_reestimate", "threads"}
        if not with_chip:
            drop |= {"hw", "objective"}
        d = {k: v for k, v in asdict(self).items() if k not in drop}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def _load_json(path: Path, key: str):
    if path.is_file():
        d = json.loads(path.read_text())
        if d.get("key") == key:
            return d
    return None


def _dump(path: Path, key: str, d: dict) -> None:
    from netfrontier.report import write_atomic

    write_atomic(path, json.dumps({"key": key, **d}, indent=1))


def layer_changes(before, after) -> list[dict]:
    """Per fused layer (matched by name): output channels and costs before → after."""
    b_rows = {r["name"]: r for r in before.rows()}
    out = []
    for r in after.rows():
        b = b_rows.get(r["name"])
        if b is None:
            continue
        out.append({"layer": r["name"], "op": r["op"], "macs_before": b["macs"],
                    "macs_after": r["macs"], "latency_before_s": b["latency_s"],
                    "latency_after_s": r["latency_s"], "dram_before": b["dram_bytes"],
                    "dram_after": r["dram_bytes"]})
    return out


def run_prune(model_name: str, opts: PruneOptions, out_dir,
              say: Callable[[str], None] = lambda s: None,
              hardware_also: tuple[str, ...] = (), pre=None, images=None) -> dict:
    """Prune `model_name` for `opts.hw`; returns the result (rows per variant, allocation,
    per-layer changes) and writes the pruned network and phase files to `out_dir`."""
    from netfrontier.compress.distill import distill
    from netfrontier.hardware.registry import get_hardware
    from netfrontier.measure.accuracy import evaluate, load_images, paired_difference
    from netfrontier.models.pretrained import load_pretrained

    if opts.threads:
        torch.set_num_threads(opts.threads)
    out = Path(out_dir)
    key = opts.key()
    hw = get_hardware(opts.hw)
    pre = pre or load_pretrained(model_name)
    res = pre.resolution
    shape = (1, 3, res, res)
    data = images if images is not None else load_images(opts.data, pre.preprocess,
                                                         limit=opts.limit)
    if len(data) < 4:
        raise OptionError(f"the data set has {len(data)} images; pruning needs at least 4")
    tune, test = data.split()
    sens_x = torch.cat(list(tune.subset(range(min(opts.sens_images, len(tune)))).batches(64)))
    pruner = Pruner(pre.model, sens_x[:1])
    groups = pruner.groups()
    costing = Costing(pruner, hw, shape, opts.objective)
    tile = tile_quantum(hw)
    quantum = tile if opts.round_to_tile else 8
    base = costing.cost(Plan())
    target = opts.target if opts.target is not None else opts.ratio * base
    t0 = time.time()
    batches = list(tune.batches(32, labels=True))
    scores = pruner.importance(opts.importance, [x for x, _ in batches], [y for _, y in batches])
    low = reachable(costing, groups, scores, tile, opts.min_keep)
    if target < low:
        raise InfeasibleError(f"{OBJECTIVES[opts.objective]} {target:.4g} is below what pruning "
                              f"to {opts.min_keep:.0%} of every group reaches on {hw.name} "
                              f"({low:.4g}; unpruned {base:.4g})")
    if target >= base:
        raise InfeasibleError(f"the target {target:.4g} is not below the unpruned network's "
                              f"{base:.4g}: nothing to prune")
    say(f"{model_name} on {hw.name}: {len(groups)} channel groups, {opts.objective} "
        f"{base:.4g} → target {target:.4g} (reachable {low:.4g})")
    means = pruner.consumer_means(x for x, _ in batches)
    # sensitivity (chip-independent) and cost curves (this chip, this objective), each cached
    sensitivity_file = _load_json(out / "sensitivity.json", opts.key(with_chip=False))
    if sensitivity_file is None:
        sensitivity_file = {"sensitivity": sensitivity(pruner, groups, scores,
                                                       means if opts.fold else None, sens_x)}
        _dump(out / "sensitivity.json", opts.key(with_chip=False), sensitivity_file)
        say(f"  sensitivity: {time.time() - t0:.0f} s")
    curves_file = _load_json(out / "cost_curves.json", key)
    if curves_file is None:
        curves_file = {"savings": cost_curves(costing, groups, scores, tile, opts.min_keep)}
        _dump(out / "cost_curves.json", key, curves_file)
    analysis = {**sensitivity_file, **curves_file}
    sens = {g: {float(f): v for f, v in c.items()} for g, c in analysis["sensitivity"].items()}
    savings = {g: {int(k): v for k, v in c.items()} for g, c in analysis["savings"].items()}
    if opts.allocation == "hardware":
        alloc = allocate(costing, groups, scores, savings, sens, target, quantum, opts.min_keep)
    else:
        alloc = uniform(costing, groups, scores, target, quantum, opts.min_keep)
    plan = alloc.plan(groups, scores)
    say(f"  allocation ({opts.allocation}, multiples of {quantum}): modelled "
        f"{alloc.cost:.4g}, {sum(alloc.kept.values())} of "
        f"{sum(g.channels for g in groups)} channels kept")
    before_table = costing.table(Plan())
    after_table = costing.table(plan)
    fp = evaluate(pre.model, test)
    import copy

    pruned = copy.deepcopy(pre.model)
    Pruner(pruned, sens_x[:1]).apply(plan, means if opts.fold else None)
    if opts.bn_reestimate:
        _reestimate_bn(pruned, tune)
    meta = {"parent": model_name, "resolution": res, "hw": hw.name, "options": asdict(opts)}
    save_pruned(pruned, [plan.to_json()], meta, out)
    rows = [_row("unpruned", pre.model, fp, fp, shape, [hw.name, *hardware_also], pre)]
    acc = evaluate(pruned, test)
    rows.append(_row(f"pruned ({opts.allocation})", pruned, acc, fp, shape,
                     [hw.name, *hardware_also], pre))
    say(f"  unpruned top-1 {fp.top1:.2f}; pruned {acc.top1:.2f} before recovery")
    recovered = pruned
    if opts.epochs:
        t = time.time()
        params = [p for p in recovered.parameters()]
        for p in params:
            p.requires_grad_(True)
        distill(recovered, pre.model, tune, [{"params": params, "lr": opts.lr}],
                epochs=opts.epochs, batch_size=opts.batch_size, augment=opts.augment,
                progress=lambda log: say(f"  distillation epoch {log['epoch']}: KD loss "
                                         f"{log['loss']:.4f} ({log['seconds']:.0f} s)"))
        for p in params:
            p.requires_grad_(False)
        save_pruned(recovered, [plan.to_json()], {**meta, "recovered": True}, out)
        acc = evaluate(recovered, test)
        rows.append(_row(f"pruned ({opts.allocation}) + distillation", recovered, acc, fp, shape,
                         [hw.name, *hardware_also], pre, extra={"epochs": opts.epochs,
                                                                "seconds": time.time() - t}))
        say(f"  after {opts.epochs} epochs of distillation: top-1 {acc.top1:.2f}")
    if opts.wbits:
        from netfrontier.compress.config import QuantConfig
        from netfrontier.compress.ptq import quantize

        calib = list(tune.subset(range(min(128, len(tune)))).batches(32))
        for name, m, ref in (("unpruned", pre.model, fp), ("pruned", recovered, None)):
            q = quantize(m, QuantConfig(wbits=opts.wbits), calib)
            qa = evaluate(q, test)
            rows.append(_row(f"{name} + PTQ W{opts.wbits}A8", m, qa, fp, shape,
                             [hw.name, *hardware_also], pre, wbits=opts.wbits))
    d, se = paired_difference(fp, acc)
    return {"model": model_name, "hw": hw.name, "objective": opts.objective,
            "target": target, "base_cost": base, "rows": rows,
            "allocation": {"kept": alloc.kept, "channels": {g.root: g.channels for g in groups},
                           "modelled_cost": alloc.cost, "quantum": quantum,
                           "rounds": alloc.iterations},
            "layers": layer_changes(before_table, after_table),
            "final_drop": -d, "final_drop_se": se, "options": asdict(opts)}


def _reestimate_bn(model: torch.nn.Module, images) -> None:
    """Batch-norm statistics re-measured on `images` (running averages reset, train mode)."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for x in images.batches(32):
            model(x)
    model.eval()


def _row(variant, model, acc, fp, shape, hardware, pre, wbits=None, extra=None) -> dict:
    from netfrontier.cost.analytical import estimate
    from netfrontier.graph.torch_capture import capture_module
    from netfrontier.hardware.registry import get_hardware
    from netfrontier.measure.accuracy import paired_difference

    graph = capture_module(model, shape, model_name=variant)
    d, se = paired_difference(fp, acc) if acc is not fp else (0.0, 0.0)
    ref = pre.entry.top1 if pre.entry is not None and str(pre.entry.top1_source).startswith(
        "reference") else None
    cost = {}
    for h in hardware:
        spec = get_hardware(h)
        bits = wbits or spec.default_wbits
        t = estimate(graph, spec, wbits=bits if bits in spec.weight_bits else None).totals()
        cost[h] = {k: t[k] for k in ("latency_s", "dram_bytes", "energy_j")}
    return {"variant": variant, "macs": graph.macs, "params": graph.params,
            "top1": acc.top1, "top1_se": acc.top1_se, "images": acc.n, "dataset": acc.dataset,
            "correct1": "".join("1" if c else "0" for c in acc.correct1),
            "top1_drop": -d, "top1_drop_se": se,
            "estimated_top1": None if ref is None else ref + d,
            "reference_top1": ref, "cost": cost, **(extra or {})}
