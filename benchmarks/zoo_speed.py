"""Whole-zoo time cold and warm on one preset, peak memory, and the time to cost one graph.

    .venv/bin/python benchmarks/zoo_speed.py [--hw img-series4-1core]

Cold: an empty store (every model captured). Warm: the same command again (read from the store).
Targets on the 2-core machine: cold <= 30 s, warm <= 2 s, peak memory <= 2 GB, costing <= 1 ms.
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time


def run_zoo(hw: str, store: str, out: str) -> tuple[float, float]:
    env = dict(os.environ, NETFRONTIER_STORE=store)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "from netfrontier.cli import main; main()",
                           "zoo", "--hw", hw, "--out", out], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(proc.stderr)
    return wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def costing_time(hw_names: list[str]) -> list[tuple[str, float]]:
    from netfrontier.cost.analytical import estimate
    from netfrontier.hardware.registry import get_hardware
    from netfrontier.models.registry import capture

    graph = capture("resnet50")
    estimate(graph, get_hardware(hw_names[0]))  # builds the layer table once
    out = []
    for name in hw_names:
        hw = get_hardware(name)
        n = 300
        t0 = time.perf_counter()
        for _ in range(n):
            estimate(graph, hw)
        out.append((name, (time.perf_counter() - t0) / n))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hw", default="img-series4-1core")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store, out = os.path.join(tmp, "store.sqlite"), os.path.join(tmp, "report")
        cold, rss_cold = run_zoo(a.hw, store, out)
        warm, _ = run_zoo(a.hw, store, out)
        warm2, _ = run_zoo(a.hw, store, out)
    print(f"zoo on {a.hw} (114 entries, report included): cold {cold:.1f} s, "
          f"warm {warm:.2f} s and {warm2:.2f} s; peak RSS of one process {rss_cold:.0f} MB "
          f"({os.cpu_count()} cores)")
    from netfrontier.hardware.registry import preset_names

    for name, secs in costing_time(preset_names()):
        print(f"cost resnet50 on {name:24s} {secs * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
