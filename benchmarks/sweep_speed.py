"""Sweep speed: (model x configuration) evaluations per second, vectorised against the per-spec
Python loop, side by side in one run, with the peak memory of the vectorised pass.

    python benchmarks/sweep_speed.py                       # ResNet-50 and a few zoo models
    python benchmarks/sweep_speed.py --zoo                 # every zoo model in the store

Pins numpy's BLAS to one thread so that the figures are for one core. The configurations are
the issue's example grid on img-series4-1core: on-chip memory 0.5..64 MiB (8, log), DRAM
6/12/25/50 GB/s, 1/2/4/8 cores, tile.n 16/32/64 (384 configurations).
"""
from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hw", default="img-series4-1core")
    ap.add_argument("--models", default="resnet50,mobilenet_v2,efficientnet_b0,vit_b_16")
    ap.add_argument("--zoo", action="store_true", help="every zoo model in the store")
    ap.add_argument("--loop-configs", type=int, default=48,
                    help="configurations the per-spec loop times (it is slow)")
    ap.add_argument("--store", default=None)
    args = ap.parse_args()

    import numpy as np

    from netfrontier.cost import sweep as sw
    from netfrontier.cost.analytical import estimate
    from netfrontier.hardware.registry import get_hardware
    from netfrontier.measure.published import _graph
    from netfrontier.store import Store

    db = Store(args.store)
    base = get_hardware(args.hw)
    grid = sw.parse_vary(["onchip_mb=0.5..64:log:8", "dram_gbps=6,12,25,50", "cores=1,2,4,8",
                          "tile.n=16,32,64"])
    t0 = time.perf_counter()
    specs = sw.grid_specs(base, grid)
    t_specs = time.perf_counter() - t0
    if args.zoo:
        from netfrontier.zoo import cached_zoo_entries

        entries = cached_zoo_entries(db)
        graphs = {}
        for e in entries:
            g = db.get_graph(Store.graph_key(e.name, e.resolution, 1))
            if g is not None:
                graphs[e.name] = g
        print(f"{len(graphs)} of {len(entries)} zoo graphs in the store")
    else:
        from netfrontier.models.registry import resolve

        graphs = {m: _graph(m, resolve(m)[1].resolution, 1, db) for m in args.models.split(",")}
    print(f"{args.hw}: {len(specs)} configurations (built and validated in {t_specs:.2f} s, "
          "once per sweep); numpy BLAS threads pinned to 1")
    print(f"{'model':28s} {'rows':>5s}  {'vectorised eval/s':>18s}  {'per-spec loop eval/s':>20s}"
          f"  {'speed-up':>8s}  {'peak MiB':>8s}")
    tot_v = tot_loop = n_v = n_loop = 0.0
    for name, g in graphs.items():
        rows = g.layer_table(base.fusion).rows
        sw.sweep_costs(g, specs[:8])  # warm
        reps, t = 0, time.perf_counter()
        while True:
            sw.sweep_costs(g, specs)
            reps += 1
            if time.perf_counter() - t > 1.0:
                break
        dt_v = (time.perf_counter() - t) / reps
        tracemalloc.start()
        sw.sweep_costs(g, specs)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        sub = specs[:: max(len(specs) // args.loop_configs, 1)][:args.loop_configs]
        estimate(g, sub[0])
        t = time.perf_counter()
        for s in sub:
            estimate(g, s)
        dt_l = (time.perf_counter() - t) / len(sub)
        v, lp = len(specs) / dt_v, 1 / dt_l
        tot_v += dt_v
        n_v += len(specs)
        tot_loop += dt_l * len(sub)
        n_loop += len(sub)
        print(f"{name[:28]:28s} {rows:5d}  {v:18,.0f}  {lp:20,.0f}  {v / lp:7.0f}x  {peak:8.1f}")
    if len(graphs) > 1:
        print(f"{'all':28s} {'':5s}  {n_v / tot_v:18,.0f}  {n_loop / tot_loop:20,.0f}  "
              f"{(n_v / tot_v) / (n_loop / tot_loop):7.0f}x")
    print(f"process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    del np


if __name__ == "__main__":
    main()
