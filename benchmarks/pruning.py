"""Pruning study: EfficientNet-Lite2 pruned for a chip against the smaller compound-scaled Lite
models, hardware-aware allocation against uniform pruning, the folding pitfall, and lottery
tickets on Fashion-MNIST. Results (JSON, CSV, plots, summary.md) in benchmarks/results/pruning/.

    .venv/bin/python benchmarks/pruning.py --stages lite,pitfall,lottery [--epochs 5]

Stages:
  lite     Lite2 → Lite1's and Lite0's modelled latency on img-series4-1core (hardware-aware,
           distilled), uniform pruning at the Lite1 point, every variant costed on
           img-series4-8core and jetson-xavier-nx too, the Lite1-point allocation redone for
           those chips, and 8-bit PTQ of the pruned network and of Lite1/Lite0.
  rounding the Lite1-point allocation in multiples of 8 instead of the tile (after lite).
  pitfall  Lite0 losing 5% of every expanded group's channels: no folding, folding, folding +
           batch-norm re-estimation (held-out top-1, paired).
  lottery  LeNet-300-100 (full training set) and Conv-2 (the first --conv-train images) on
           Fashion-MNIST, 3 seeds, winning tickets vs re-initialised and random masks.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from netfrontier.report import write_atomic  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "pruning"
LIMIT = None  # --limit: a quick check of the whole flow on the first N images


def log(s: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {s}", flush=True)


def modelled(name: str, hw: str, wbits: int | None = None) -> float:
    from netfrontier.cost.analytical import estimate
    from netfrontier.hardware.registry import get_hardware
    from netfrontier.models.registry import capture

    return estimate(capture(name), get_hardware(hw), wbits=wbits).latency_s


HW, ALSO = "img-series4-1core", ("img-series4-8core", "jetson-xavier-nx")


def _lite2():
    from netfrontier.measure.accuracy import load_images
    from netfrontier.models.pretrained import load_pretrained

    pre = load_pretrained("efficientnet_lite2")
    return pre, load_images(None, pre.preprocess, limit=LIMIT)


def _run(args, results, tag, target_of, chip, pre, images, zoo=None, allocation="hardware",
         epochs=None, share=None, round_to_tile=True) -> dict:
    """One run_prune of Lite2 toward a small network's modelled latency on `chip`, kept in
    results["runs"][tag] and lite.json."""
    from netfrontier.compress.prune_report import write_prune_report
    from netfrontier.compress.prune_study import PruneOptions, run_prune

    if share is not None:  # the sensitivity (and, on the same chip, the cost curves)
        import shutil

        (OUT / "runs" / tag).mkdir(parents=True, exist_ok=True)
        for f in ("sensitivity.json", "cost_curves.json"):
            if (OUT / "runs" / share / f).is_file():
                shutil.copy(OUT / "runs" / share / f, OUT / "runs" / tag)
    opts = PruneOptions(hw=chip, target=results["targets"][target_of][chip],
                        allocation=allocation, epochs=args.epochs if epochs is None else epochs,
                        wbits=8, sens_images=args.sens_images, threads=2,
                        round_to_tile=round_to_tile)
    t = time.time()
    r = run_prune("efficientnet_lite2", opts, OUT / "runs" / tag, say=log,
                  hardware_also=tuple(h for h in (HW, *ALSO) if h != chip), pre=pre,
                  images=images)
    r["seconds"] = time.time() - t
    results["runs"][tag] = r
    if zoo is not None:
        write_prune_report(r, OUT / "runs" / tag, {"command": " ".join(sys.argv)}, zoo)
    write_atomic(OUT / "lite.json", json.dumps(results, indent=1, default=str))
    return r


def stage_lite(args) -> dict:
    from netfrontier.measure.accuracy import evaluate, load_images
    from netfrontier.models.pretrained import load_pretrained
    from netfrontier.zoo import zoo_rows

    hw, also = HW, ALSO
    pre, images = _lite2()
    results = {"targets": {}, "runs": {}}
    for small in ("efficientnet_lite1", "efficientnet_lite0"):
        results["targets"][small] = {h: modelled(small, h) for h in (hw, *also)}
    zoo = zoo_rows(hw)

    def run(tag, target_of, chip, **kw):
        return _run(args, results, tag, target_of, chip, pre, images,
                    zoo=zoo if chip == hw else None, **kw)

    run("lite2_to_lite1_hardware", "efficientnet_lite1", hw)
    run("lite2_to_lite1_uniform", "efficientnet_lite1", hw, allocation="uniform",
        share="lite2_to_lite1_hardware")
    run("lite2_to_lite0_hardware", "efficientnet_lite0", hw, share="lite2_to_lite1_hardware")
    for chip in also:  # the allocation for another chip, no recovery: does it differ?
        run(f"lite2_to_lite1_for_{chip}", "efficientnet_lite1", chip, epochs=0,
            share="lite2_to_lite1_hardware")
    # the small compound-scaled networks on the same held-out images, FP32 and 8-bit PTQ
    from netfrontier.compress.config import QuantConfig
    from netfrontier.compress.ptq import quantize

    for small in ("efficientnet_lite1", "efficientnet_lite0"):
        p = load_pretrained(small)
        tune, test = load_images(None, p.preprocess, limit=LIMIT).split()
        fp = evaluate(p.model, test)
        calib = list(tune.subset(range(min(128, len(tune)))).batches(32))
        q = quantize(p.model, QuantConfig(wbits=8), calib)
        qa = evaluate(q, test)
        results.setdefault("small", {})[small] = {
            "published_top1": p.entry.top1, "top1": fp.top1, "top1_se": fp.top1_se,
            "ptq8_top1": qa.top1, "ptq8_top1_se": qa.top1_se, "images": fp.n,
            "correct1": "".join("1" if c else "0" for c in fp.correct1),
            "ptq8_correct1": "".join("1" if c else "0" for c in qa.correct1),
            "latency_s": {h: modelled(small, h) for h in (hw, *also)},
            "ptq8_latency_s": {h: modelled(small, h, 8) for h in (hw, *also)}}
        log(f"{small}: FP32 {fp.top1:.2f}, PTQ W8 {qa.top1:.2f}")
    write_atomic(OUT / "lite.json", json.dumps(results, indent=1, default=str))
    return results


def stage_rounding(args) -> dict:
    """The Lite1-point allocation in multiples of 8 (what frameworks round to) instead of the
    tile's 64, no recovery: verified modelled latency and held-out top-1 against the rounded
    plan (needs the lite stage's results)."""
    results = json.loads((OUT / "lite.json").read_text())
    pre, images = _lite2()
    return _run(args, results, "lite2_to_lite1_multiples_of_8", "efficientnet_lite1", HW, pre,
                images, epochs=0, share="lite2_to_lite1_hardware", round_to_tile=False)


def stage_pitfall(args) -> dict:
    from netfrontier.compress.prune import Plan, Pruner, lowest
    from netfrontier.compress.prune_study import _reestimate_bn
    from netfrontier.measure.accuracy import evaluate, load_images, paired_difference
    from netfrontier.models.pretrained import load_pretrained

    pre = load_pretrained("efficientnet_lite0")
    tune, test = load_images(None, pre.preprocess, limit=LIMIT).split()
    x = torch.cat(list(tune.subset(range(64)).batches(64)))
    pr = Pruner(copy.deepcopy(pre.model), x[:1])
    scores = pr.importance("l1")
    expanded = [g for g in pr.groups() if g.root.endswith("_depthwise_conv") and
                "_expand_conv" in " ".join(g.modules)]
    plan = Plan({g.root: lowest(scores[g.root], max(1, round(0.05 * g.channels)))
                 for g in expanded})
    means = pr.consumer_means(tune.batches(32))
    fp = evaluate(pre.model, test)
    out = {"removed": {g.root: len(plan.remove[g.root]) for g in expanded}, "fp32": fp.top1}
    for tag, fold, bn in (("no folding", False, False), ("folding", True, False),
                          ("folding + BN re-estimation", True, True)):
        m = copy.deepcopy(pre.model)
        Pruner(m, x[:1]).apply(plan, means if fold else None)
        if bn:
            _reestimate_bn(m, tune)
        acc = evaluate(m, test)
        d, se = paired_difference(fp, acc)
        out[tag] = {"top1": acc.top1, "drop": -d, "drop_se": se}
        log(f"pitfall {tag}: top-1 {acc.top1:.2f} ({-d:+.2f} ± {se:.2f})")
    write_atomic(OUT / "pitfall.json", json.dumps(out, indent=1))
    return out


def stage_lottery(args) -> dict:
    from netfrontier.compress.lottery import LotteryConfig, run_lottery, summary
    from netfrontier.compress.lottery_report import write_lottery
    from netfrontier.compress.ticket_cost import ticket_costs
    from netfrontier.hardware.registry import get_hardware

    torch.set_num_threads(2)
    specs = [get_hardware(h) for h in ("img-series4-1core", "tpu-v1")]
    out = {}
    # Conv-2 at a higher rate per round (fewer, costlier rounds), both down to ≤ 5% of weights
    for model, limit, rate, rounds in (("lenet300", args.lenet_train, 0.3, 9),
                                       ("conv2", args.conv_train, args.conv_rate,
                                        args.conv_rounds)):
        cfg = LotteryConfig(model=model, dataset="fashion-mnist", rounds=rounds, rate=rate,
                            epochs=args.lt_epochs, seeds=(0, 1, 2), limit_train=limit)
        t = time.time()
        rows = run_lottery(cfg, progress=log)
        table = summary(rows)
        meta = {"model": model, "dataset": "fashion-mnist", "rewind_iter": 0,
                "config": cfg.__dict__, "command": " ".join(sys.argv),
                "seconds": time.time() - t}
        write_lottery(rows, table, ticket_costs(cfg, rows, specs), meta, OUT / f"lottery_{model}")
        out[model] = table
    return out


def main() -> None:
    global OUT, LIMIT
    ap = argparse.ArgumentParser()
    ap.add_argument("--stages", default="pitfall,lite,lottery")
    ap.add_argument("--epochs", type=int, default=5, help="distillation epochs (lite)")
    ap.add_argument("--sens-images", type=int, default=64)
    ap.add_argument("--lt-epochs", type=int, default=3, help="lottery training epochs")
    ap.add_argument("--lenet-train", type=int, default=None, help="LeNet training images")
    ap.add_argument("--conv-train", type=int, default=20000, help="Conv-2 training images")
    ap.add_argument("--conv-rate", type=float, default=0.3, help="Conv-2 pruning rate per round")
    ap.add_argument("--conv-rounds", type=int, default=9, help="Conv-2 pruning rounds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    OUT, LIMIT = Path(args.out) if args.out else OUT, args.limit
    torch.set_num_threads(args.threads)
    OUT.mkdir(parents=True, exist_ok=True)
    for stage in args.stages.split(","):
        {"lite": stage_lite, "rounding": stage_rounding, "pitfall": stage_pitfall,
         "lottery": stage_lottery}[stage](args)
    from pruning_summary import write_summary  # beside this file

    write_summary(OUT)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
