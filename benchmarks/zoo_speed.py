"""Whole-zoo time cold and warm on one preset, peak memory, and the time to cost one graph.

    .venv/bin/python benchmarks/zoo_speed.py [--hw img-series4-1core] [--task classification,detection]

Cold: an empty store (every model captured). Warm: the same command again (read from the store).
Each task named runs `netfrontier zoo --task TASK` (classification: the default zoo, `make
report`; detection: the 13 COCO detectors with their post-processing).
Targets on the 2-core machine: cold <= 30 s, warm <= 2 s, peak memory <= 2 GB, costing <= 1 ms.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def _tree_rss_mb(root: int) -> float:
    """Resident memory of a process and all its descendants, from /proc (Linux)."""
    parent, rss = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{d}/statm") as f:
                rss[int(d)] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    tree, frontier = {root}, [root]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p and c not in tree]
        tree.update(kids)
        frontier.extend(kids)
    return sum(rss.get(p, 0) for p in tree) / 2**20


def run_zoo(hw: str, store: str, out: str, task: str = "classification") -> tuple[float, float]:
    """Wall time and peak resident memory (all processes of the run together)."""
    env = dict(os.environ, NETFRONTIER_STORE=store)
    t0 = time.perf_counter()
    extra = [] if task == "classification" else ["--task", task]
    proc = subprocess.Popen([sys.executable, "-c", "from netfrontier.cli import main; main()",
                             "zoo", "--hw", hw, "--out", out, *extra], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_mb(proc.pid))
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(proc.stderr.read())
    return wall, peak


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
    ap.add_argument("--task", default="classification,detection",
                    help="comma-separated tasks to time (classification, detection, "
                         "segmentation)")
    a = ap.parse_args()
    for task in a.task.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            store, out = os.path.join(tmp, "store.sqlite"), os.path.join(tmp, "report")
            cold, peak_cold = run_zoo(a.hw, store, out, task)
            warm, _ = run_zoo(a.hw, store, out, task)
            warm2, _ = run_zoo(a.hw, store, out, task)
        what = "every zoo entry" if task == "classification" else f"every {task} entry"
        print(f"zoo --task {task} on {a.hw} ({what}, report included): cold {cold:.1f} s, "
              f"warm {warm:.2f} s and {warm2:.2f} s; peak memory of all its processes together "
              f"{peak_cold:.0f} MB "
              f"({os.cpu_count()} cores)")
    from netfrontier.hardware.registry import preset_names

    for name, secs in costing_time(preset_names()):
        print(f"cost resnet50 on {name:24s} {secs * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
