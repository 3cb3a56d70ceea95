"""From-scratch track: multi-objective TPE against random search on Fashion-MNIST, 3 seeds.

Each seed runs `netfrontier search --data fashion-mnist --hw HW --trials N --compare-random
--workers W --threads 1` (the same library call): the conv-net space of docs/search.md, each
candidate trained from scratch (the space's `train_images` images, `epochs` epochs), scored on
10,000 held-out training images, costed at 8-bit on HW at 112 px; the Pareto set measured
once on the 10,000 test images. Then: final hypervolume per sampler (mean, std, min, max over
seeds), the hypervolume-vs-trials curves of every seed, and the accuracy predictor's rank
correlation on candidates it was not fitted on (all measured candidates of every study,
a seeded random half to fit; and, per study, fitted on its first half in trial order).

    nice -n 10 .venv/bin/python benchmarks/search_scratch.py --out benchmarks/results/search/scratch
    nice -n 10 .venv/bin/python benchmarks/search_scratch.py --trials 16 \\
        --space benchmarks/results/search/space-scratch-8k.yaml \\
        --out benchmarks/results/search/scratch-8k
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/search/scratch")
    ap.add_argument("--hw", default="img-series4-1core")
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--space", default=None, help="a convnet space YAML (default: the "
                    "built-in space, 2 epochs of 2,000 images)")
    args = ap.parse_args()

    import optuna

    from netfrontier.cli.search_cmds import run_search
    from netfrontier.search import run as R
    from netfrontier.search.predictor import feature_row, held_out_rank_correlation
    from netfrontier.search.report import plot_hypervolume
    from netfrontier.search.space import Candidate

    t0 = time.time()
    out = Path(args.out)
    seeds = [int(s) for s in args.seeds.split(",")]
    finals = {"tpe": [], "random": []}
    curves = {}
    X, y, order_rows = [], [], []
    seen = set()
    per_seed = []
    for seed in seeds:
        d = out / f"seed{seed}"
        res = run_search(hw=args.hw, data=args.data, objectives="top1,latency", constraints=None,
                         flags={}, trials=args.trials, sampler="tpe", compare_random=True,
                         seed=seed, storage=None, study=None, workers=args.workers,
                         space_path=args.space, limit=None, screen=False, recovery_epochs=0,
                         halving=False, also_hw=[], baselines=False, zoo=False, threads=1,
                         out=d)
        hv = list(res["hypervolume"].values())
        finals["tpe"].append(hv[0])
        finals["random"].append(hv[1])
        for k, v in res["hypervolume_curves"].items():
            curves[f"seed {seed}: {k.split(' ')[0]}"] = v
        per_seed.append({"seed": seed, "hypervolume_tpe": hv[0], "hypervolume_random": hv[1],
                         "pareto": [{k: r[k] for k in ("candidate_id", "description", "top1",
                                                       "top1_se", "select_top1", "latency_ms")}
                                    for r in res["pareto"]]})
        st = R.open_storage(f"sqlite:///{(d / 'study.sqlite3').resolve()}")
        for s in optuna.get_all_study_summaries(st):
            study = optuna.load_study(study_name=s.study_name, storage=st)
            xs, ys = [], []
            for t in sorted(R.measured_trials(study), key=lambda t: t.number):
                c = Candidate.from_json(t.user_attrs["candidate"])
                row = feature_row(c, t.user_attrs["cost"])
                xs.append(row)
                ys.append(t.user_attrs["select_top1"])
                if c.id not in seen:
                    seen.add(c.id)
                    X.append(row)
                    y.append(t.user_attrs["select_top1"])
            order_rows.append({"study": s.study_name,
                               **held_out_rank_correlation(xs, ys, order="first")})
    pooled = [held_out_rank_correlation(X, y, seed=k) for k in range(5)]

    def stats(v):
        v = np.asarray(v, float)
        return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0,
                "min": float(v.min()), "max": float(v.max()), "values": v.tolist()}

    ru = resource.getrusage(resource.RUSAGE_SELF)
    rc = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = {
        "command": " ".join(["nice -n 10 .venv/bin/python"] + sys.argv),
        "hardware": args.hw, "trials_per_study": args.trials, "seeds": seeds,
        "space": args.space,
        "hypervolume": {k: stats(v) for k, v in finals.items()},
        "tpe_minus_random": stats(np.array(finals["tpe"]) - np.array(finals["random"])),
        "predictor": {"pooled_random_halves": pooled,
                      "pooled_spearman_mean": float(np.nanmean([p["spearman"] for p in pooled])),
                      "candidates": len(y), "per_study_first_half": order_rows},
        "per_seed": per_seed, "wall_s": time.time() - t0,
        "cpu_s": ru.ru_utime + ru.ru_stime + rc.ru_utime + rc.ru_stime,
    }
    R.write_json(out / "summary.json", summary)
    plot_hypervolume(curves, out / "hypervolume_seeds.png",
                     f"Fashion-MNIST conv nets on {args.hw}: TPE vs random, {len(seeds)} seeds")
    h = summary["hypervolume"]
    print(f"hypervolume after {args.trials} measured trials: TPE {h['tpe']['mean']:.3f} ± "
          f"{h['tpe']['std']:.3f}, random {h['random']['mean']:.3f} ± {h['random']['std']:.3f}"
          f"; predictor Spearman {summary['predictor']['pooled_spearman_mean']:.3f} on "
          f"held-out halves of {len(y)} candidates; {summary['cpu_s']:.0f} CPU s")
    print(json.dumps(summary["tpe_minus_random"]))


if __name__ == "__main__":
    main()
