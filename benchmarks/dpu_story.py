"""The DPU story as a sweep: depthwise support off / on (through DRAM, then chained to the
pointwise conv), a faster depthwise engine, more on-chip memory; MobileNet-v2's utilization
against ResNet-50's on one DPUCZDX8G B4096 core (dpu-b4096-zcu104, one image per core).

    python benchmarks/dpu_story.py          # seconds once the two graphs are in the store
    netfrontier sweep --hw dpu-b4096-zcu104 --vary depthwise=none,unfused,fused \\
        --vary tile_depthwise.n=32,8,1 --vary onchip_mb=2.125,8.5,34 \\
        --models mobilenet_v2,resnet50 --out benchmarks/results/dpu-story   # the same, as files

Prints a markdown table (docs/hardware-presets.md, "Design-space sweeps").
"""
from __future__ import annotations

import argparse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", default=None)
    args = ap.parse_args()

    from netfrontier.cost import sweep as sw
    from netfrontier.hardware.registry import get_hardware
    from netfrontier.measure.published import _graph
    from netfrontier.store import Store

    db = Store(args.store)
    base = get_hardware("dpu-b4096-zcu104")
    grid = sw.parse_vary(["depthwise=none,unfused,fused", "tile_depthwise.n=32,8,1",
                          "onchip_mb=2.125,8.5,34"])
    specs, points = sw.grid_specs(base, grid), sw.grid(grid)
    res = {m: sw.sweep_costs(_graph(m, 224, 1, db), specs) for m in ("mobilenet_v2", "resnet50")}
    print("| depthwise | depthwise rate | on-chip MiB (2 cores) | mobilenet_v2 ms | resnet50 ms "
          "| mobilenet_v2 utilization | resnet50 utilization | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    seen = set()
    for k, p in enumerate(points):
        if p["depthwise"] == "none" and p["tile_depthwise.n"] != 32:
            continue  # no depthwise engine: its rate does not matter
        key = tuple(p.values())
        if key in seen:
            continue
        seen.add(key)
        m, r = res["mobilenet_v2"], res["resnet50"]
        rate = "—" if p["depthwise"] == "none" else f"1/{p['tile_depthwise.n']} of the array"
        print(f"| {p['depthwise']} | {rate} | {p['onchip_mb']:g} | {1e3 * m['latency_s'][k]:.2f} "
              f"| {1e3 * r['latency_s'][k]:.2f} | {100 * m['utilization'][k]:.0f}% | "
              f"{100 * r['utilization'][k]:.0f}% | "
              f"{m['utilization'][k] / r['utilization'][k]:.2f} |")


if __name__ == "__main__":
    main()
