"""ImageNet track: searches over EfficientNet-Lite0/1/2 for three chips, baselines, chip matters.

1. img-series4-1core: multi-objective TPE and random search, `--trials1` measured trials each;
   the Pareto set, the Lite baselines (native and two other resolutions, uniformly pruned) and
   the zoo at 8-bit (published top-1), all on the test images once; the Pareto set's members
   also with 6-bit weights in stages 2-5 (mixed bits, labelled).
2. img-series4-8core: TPE, `--trials2`.
3. nvidia-t4 (the GPU-like preset, at 8-bit): TPE, `--trials2`; baselines and zoo again.
Measured scores and test-image results are shared through one cache (they do not depend on
the chip), so a network is measured once whichever study proposes it.
4. The chip matters: each chip's searched Pareto set costed on the other Series4 chip, and
   the hypervolume (select top-1 × decades of latency) of both sets on each chip.

    nice -n 10 .venv/bin/python benchmarks/search_imagenet.py \\
        --out benchmarks/results/search/imagenet
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/search/imagenet")
    ap.add_argument("--data", default=None)
    ap.add_argument("--trials1", type=int, default=14)
    ap.add_argument("--trials2", type=int, default=8)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mixed", type=int, default=2, help="Pareto members also at mixed bits")
    ap.add_argument("--random", action="store_true", help="random search on 1-core too")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    import optuna

    from netfrontier.cli.search_cmds import run_search
    from netfrontier.hardware.registry import get_hardware
    from netfrontier.measure.accuracy import default_data_dir
    from netfrontier.search import run as R
    from netfrontier.search.ladder import Evaluator
    from netfrontier.search.report import final_eval, _finals_cache
    from netfrontier.search.space import Candidate, SearchSpace, describe

    t0 = time.time()
    out = Path(args.out)
    data = args.data or str(default_data_dir())
    cache = out / "cache"
    common = dict(data=data, objectives="top1,latency", constraints=None, flags={},
                  seed=0, storage=None, study=None, workers=args.workers, space_path=None,
                  limit=args.limit, screen=False, recovery_epochs=0, halving=False,
                  threads=args.threads, cache_dir=cache)
    chips = {"img-series4-1core": dict(trials=args.trials1, compare_random=args.random,
                                       also_hw=["img-series4-8core", "nvidia-t4"],
                                       baselines=True, zoo=True),
             "img-series4-8core": dict(trials=args.trials2, compare_random=False,
                                       also_hw=["img-series4-1core"], baselines=False,
                                       zoo=False),
             "nvidia-t4": dict(trials=args.trials2, compare_random=False, also_hw=[],
                               baselines=True, zoo=True)}
    results = {}
    for hw, kw in chips.items():
        results[hw] = run_search(hw=hw, sampler="tpe", out=out / hw, **common, **kw)

    # mixed bits: the 1-core Pareto's most accurate members with 6-bit weights in stages 2-6,
    # and with 4-bit weights in stages 5-6 (whose layers are weight-bound on img-series4-1core)
    hw1 = get_hardware("img-series4-1core")
    space = SearchSpace().for_chip(hw1)
    ev = Evaluator(space, hw1, data, limit=args.limit, threads=args.threads, cache_dir=cache)
    finals = _finals_cache(ev, out)
    mixed = []
    variants = {6: (2, 3, 4, 5, 6), 4: (5, 6)}
    best = sorted(results["img-series4-1core"]["pareto"], key=lambda r: -r["top1"])
    for r in best[:args.mixed]:  # the most accurate members
        c = Candidate.from_json(r["candidate"])
        for bits, stages in variants.items():
            cm = Candidate.of(c.family, {**c.p, **{f"b{s}": bits for s in stages
                                                  if f"b{s}" in c.p}})
            f = final_eval(ev, cm, finals, out)
            cost = ev.cost(cm)
            mixed.append({"candidate_id": cm.id, "from": c.id, "description": describe(cm),
                          "bits": f["bits"], "estimated_top1": f["estimated_top1"],
                          "drop_se": f["drop_se"], "test_top1": f["test_top1"],
                          "latency_ms": cost["latency_ms"], "latency_ms_w8": r["latency_ms"],
                          "estimated_top1_w8": r["top1"]})

    # the chip matters: each Series4 chip's Pareto set (select top-1) costed on the other
    def pareto_select(hw):
        return [(Candidate.from_json(r["candidate"]), r["select_top1"])
                for r in results[hw]["pareto"]]

    chip_matters = {}
    sets = {h: pareto_select(h) for h in ("img-series4-1core", "img-series4-8core")}
    for on in sets:
        spec = get_hardware(on)
        e = Evaluator(SearchSpace().for_chip(spec), spec, data, limit=args.limit,
                      cache_dir=cache)
        ref = 1.1 * e.cost(SearchSpace().for_chip(spec).extreme(small=False))["latency_ms"]
        row = {}
        for found_for, members in sets.items():
            pts = []
            for c, top1 in members:
                lat = e.cost(c)["latency_ms"]
                pts.append({"candidate_id": c.id, "select_top1": top1, "latency_ms": lat})
            import math

            import numpy as np

            hv = R.hypervolume(np.array([[-p["select_top1"], math.log10(p["latency_ms"] / ref)]
                                         for p in pts]).reshape(-1, 2))
            row[f"found for {found_for}"] = {"hypervolume": hv, "members": pts}
        chip_matters[f"costed on {on}"] = row

    ru = resource.getrusage(resource.RUSAGE_SELF)
    rc = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = {"command": " ".join(["nice -n 10 .venv/bin/python"] + sys.argv),
               "budget": {h: {"trials": k["trials"], "random_too": k["compare_random"]}
                          for h, k in chips.items()},
               "data": data, "limit": args.limit,
               "beats_zoo": {h: results[h]["beats_zoo"] for h in results},
               "beats_baselines": {h: results[h]["beats_baselines"] for h in results},
               "hypervolume": {h: results[h]["hypervolume"] for h in results},
               "pareto": {h: [{k: r[k] for k in ("candidate_id", "description", "top1",
                                                 "top1_se", "select_top1", "test_top1",
                                                 "latency_ms", "bits", "other_hw")}
                              for r in results[h]["pareto"]] for h in results},
               "baselines": {h: [{k: b[k] for k in ("label", "top1", "top1_se", "test_top1",
                                                    "latency_ms")}
                                 for b in results[h]["baselines"]] for h in results},
               "mixed_bits": mixed, "chip_matters": chip_matters,
               "wall_s": time.time() - t0,
               "cpu_s": ru.ru_utime + ru.ru_stime + rc.ru_utime + rc.ru_stime}
    R.write_json(out / "summary.json", summary)
    print(json.dumps({k: summary[k] for k in ("beats_zoo", "beats_baselines", "hypervolume",
                                            "wall_s", "cpu_s")},
                     indent=1, default=float))


if __name__ == "__main__":
    main()
