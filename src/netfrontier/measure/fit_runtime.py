"""Fit the GPU-runtime model (cost/gpu_runtime.py) from micro-benchmark records, and only those.

What each fitted figure comes from:

peak, bandwidth   best MAC rate of any MAC case; best bytes rate of the largest copy/add cases.
fixed_s           eager: intercept of time against chain length over `chainK` (K relus in one
                  call); graph: the same intercept over chains long enough to leave the floor.
floor_s           graph: median time of the shortest chains (the host launch of a graph).
host_view_s       eager: slope of time against K over `viewchainK` (K transposes).
host_s[cls]       eager: per-op time of `rep16_*` cases (16 times one op in a call) where the
                  host is the bottleneck: the median of the cases within 1.5× of the class's
                  10th percentile. A rep case costs fixed + 16 · max(host, kernel) (+ the
                  shorter one once), so its time per op is the host time when kernels are short.
device_s[cls]     kernel time per op from the same `rep16_*` cases: (time − fixed_s) / 16 under
                  graphs; under eager only where that exceeds 3 × host_s (clearly the kernel is
                  the bottleneck: near the host time, host jitter between sessions would pass for
                  kernel time). A class with fewer than 4 such points borrows its kind's curve
                  (or the convolution one, or "elementwise": the points of every streaming
                  element-wise kind pooled; gpu_runtime.lookup). Binned medians
                  of (log10 roofline time, log10 kernel time), made non-decreasing. Single-op cases
                  are not used for the curves: one call's fixed cost hides a short kernel.
efficiency[kind]  the device curve restated as (log10 roofline seconds, roofline time / kernel
                  time) for reading; the model itself uses device_s.
"""
from __future__ import annotations

import math
import statistics
from collections import defaultdict

import numpy as np

from netfrontier.cost.gpu_runtime import op_features
from netfrontier.graph.types import OP_KINDS, OpGraph

REPEAT_PREFIX = "rep16_"
REPEATS = 16
BUSY_FACTOR = 3.0  # eager: a repeat's time per op counts as kernel time beyond 3 × host time
MIN_POINTS = 4  # fewer kernel-time points: the class borrows its kind's (or add/conv's) curve
# element-wise streaming kinds, pooled into the "elementwise" curve other vector kinds fall back to
STREAMING = ("relu", "hardswish", "hardsigmoid", "sigmoid", "silu", "gelu", "tanh", "add", "mul")


def _chain_len(case: str, prefix: str) -> int | None:
    head = case.split("_")[0]
    if head.startswith(prefix) and head[len(prefix):].isdigit():
        return int(head[len(prefix):])
    return None


def _intercept_slope(points: list[tuple[int, float]]) -> tuple[float, float]:
    if len(points) < 2:
        return 0.0, 0.0
    k, t = np.array(points, float).T
    slope, icpt = np.polyfit(k, t, 1)
    return float(icpt), float(slope)


def call_figures(records: list[dict], graph_mode: bool) -> dict:
    """fixed_s, floor_s and host_view_s from the chain and view-chain cases."""
    chains = [(k, r["median_s"]) for r in records
              if (k := _chain_len(r["case"], "chain")) is not None]
    if graph_mode:
        floor = statistics.median(t for k, t in chains if k <= 4) if chains else 0.0
        fixed, _ = _intercept_slope([(k, t) for k, t in chains if k >= 16])
        return {"fixed_s": max(fixed, 0.0), "floor_s": floor, "host_view_s": 0.0}
    fixed, _ = _intercept_slope(chains)
    views = [(k, r["median_s"]) for r in records
             if (k := _chain_len(r["case"], "viewchain")) is not None]
    _, view_s = _intercept_slope(views)
    return {"fixed_s": max(fixed, 0.0), "floor_s": 0.0, "host_view_s": max(view_s, 0.0)}


def knots(points: list[tuple[float, float]], per_bin: int = 5) -> list[list[float]]:
    """Binned medians of (x, y) points, x strictly increasing, y non-decreasing."""
    pts = sorted(points)
    n = len(pts)
    edges = np.linspace(0, n, max(1, round(n / per_bin)) + 1).astype(int)
    out: list[list[float]] = []
    for a, b in zip(edges[:-1], edges[1:]):
        if b <= a:
            continue
        x = statistics.median(p[0] for p in pts[a:b])
        y = statistics.median(p[1] for p in pts[a:b])
        if out and x <= out[-1][0] + 1e-6:
            out[-1][1] = max(out[-1][1], y)
            continue
        out.append([x, max(y, out[-1][1]) if out else y])
    return [[round(x, 4), round(y, 4)] for x, y in out]


def fit_runtime(records: list[dict], runtime: str, peak: float, bandwidth: float,
                elem_bytes: float) -> dict:
    """The `calibration` figures of the GPU-runtime model (see the module doc)."""
    graph_mode = runtime != "eager"
    call = call_figures(records, graph_mode)
    per_op: dict[str, list[tuple[float, float]]] = defaultdict(list)  # cls -> (t_ideal, s/op)
    for r in records:
        if not r["case"].startswith(REPEAT_PREFIX):
            continue
        f = op_features(OpGraph.from_json(r["graph"]), elem_bytes)
        if len(f["cls"]) != REPEATS or len(set(f["cls"])) != 1 or any(f["extra"]):
            continue  # several kernel classes per repeat: not one class's figure
        t_ideal = max(f["macs"][0] / peak, f["bytes"][0] / bandwidth, 1e-12)
        views = f["views"].sum() * call["host_view_s"]  # the case's own views, charged apart
        per_op[f["cls"][0]].append((t_ideal, (r["median_s"] - call["fixed_s"] - views) / REPEATS))
    host, device, efficiency = {}, {}, {}
    pooled: list[tuple[float, float]] = []  # every streaming element-wise kernel's points
    for cls, pts in sorted(per_op.items()):
        secs = np.array([s for _, s in pts])
        if graph_mode:
            h, busy = 0.0, [(t, s) for t, s in pts if s > 0]
        else:
            q10 = float(np.percentile(secs, 10))
            h = float(np.median(secs[secs <= 1.5 * q10]))
            host[cls] = float(f"{h:.4g}")
            busy = [(t, s - h / REPEATS) for t, s in pts if s > BUSY_FACTOR * h]
        if cls in STREAMING:
            pooled += busy
        if len(busy) >= MIN_POINTS:
            device[cls] = knots([(math.log10(t), math.log10(s)) for t, s in busy])
            if cls in OP_KINDS:  # the same curve as a fraction of the roofline, for reading
                efficiency[cls] = [[x, round(10 ** (x - y), 5)] for x, y in device[cls]]
    if len(pooled) >= MIN_POINTS:
        device["elementwise"] = knots([(math.log10(t), math.log10(s)) for t, s in pooled])
    for need in ("elementwise", "conv"):
        if need not in device:
            from netfrontier.errors import MeasurementError

            raise MeasurementError(f"no usable repeated-op case of class '{need}': the suite "
                                   "must include the rep16_ cases")
    return {"runtime": "eager" if not graph_mode else "graph",
            "below": "flat" if graph_mode else "proportional",
            "fixed_s": float(f"{call['fixed_s']:.4g}"), "floor_s": float(f"{call['floor_s']:.4g}"),
            "host_view_s": float(f"{call['host_view_s']:.4g}"), "host_s": host,
            "device_s": device, "efficiency": efficiency}
