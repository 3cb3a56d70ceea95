"""Measurement repeatability: each model benched twice in a row; prints the % difference of medians.

    python benchmarks/repeatability.py --device cpu              # the shared 2-core CPU
    python benchmarks/repeatability.py --device cuda --dtype fp16
"""
from __future__ import annotations

import argparse
import statistics

from netfrontier.measure.bench import bench_model
from netfrontier.measure.timing import Budget

MODELS = ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_large", "efficientnet_b0",
          "regnet_y_800mf", "shufflenet_v2_x1_0", "convnext_tiny", "vit_b_16", "swin_t"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--runtime", default="eager")
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--models", default=",".join(MODELS))
    a = ap.parse_args()
    diffs = []
    print(f"{'model':24s} {'first ms':>10s} {'second ms':>10s} {'diff %':>8s}")
    for name in a.models.split(","):
        runs = [bench_model(name, device=a.device, runtime=a.runtime, dtype=a.dtype,
                            budget=Budget(min_time_s=a.min_time)).median_s for _ in range(2)]
        diff = 100 * abs(runs[1] - runs[0]) / runs[0]
        diffs.append(diff)
        print(f"{name:24s} {runs[0] * 1e3:10.3f} {runs[1] * 1e3:10.3f} {diff:8.2f}")
    print(f"median difference {statistics.median(diffs):.2f}%, max {max(diffs):.2f}% "
          f"({a.device}, {a.runtime}, {a.dtype})")


if __name__ == "__main__":
    main()
