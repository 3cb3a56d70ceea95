"""Fit the GPU-runtime model (cost/gpu_runtime.py) from micro-benchmark records, and only those.

What each fitted figure comes from:

peak, bandwidth   best MAC rate of any MAC case; best bytes rate of the largest copy/add cases
                  (measure/calibrate.py).
fixed_s           eager: intercept of time against chain length over `chainK` (K relus in one
                  call); graph: the same intercept over chains long enough to leave the floor.
floor_s           graph: median time of the shortest chains (the host launch of a graph).
host_view_s       eager: slope of time against K over `viewchainK` (K transposes).
device_s[cls]     kernel time per op from the `rep16_*` cases (16 times one op in a call)
                  replayed as CUDA graphs: (time − fixed_s) / 16. Binned medians of (log10
                  roofline time, log10 kernel time), made non-decreasing (running maximum). A
                  class with fewer than 4 points borrows another's curve (gpu_runtime.lookup;
                  "elementwise" pools every streaming element-wise kind). Single-op cases are
                  not used: one call's fixed cost hides a short kernel. An eager profile takes
                  these replays from its own raw file (records with runtime "cudagraph").
host_s[cls]       eager: the median time per op of the class's eager `rep16_*` cases that take
                  over 1.5× the same case's replayed kernel time (there the host is the
                  bottleneck: a repeat costs fixed + 16 · max(host, kernel), roughly).
switch_s          more kernel time each time a kernel follows one of another class: the median
                  over the `block4_` replays (mixed sequences) of their time the curves leave
                  unexplained, per change of class (`fit_switch`). If the switches would then
                  be most of those cases' time, the curves do not explain mixed sequences at
                  all, and measure/calibrate.py refuses the profile.
efficiency[kind]  the device curve restated as (log10 roofline seconds, roofline time / kernel
                  time) for reading; the model itself uses device_s.

Eager records without replays (older files) fall back: host time from the fastest repeats
(within 1.5× of a class's 10th percentile), kernel time only from repeats over 3 × that.
"""
from __future__ import annotations

import math
import statistics
from collections import defaultdict

import numpy as np

from netfrontier.cost.gpu_runtime import class_switches, op_features, runtime_rows
from netfrontier.graph.types import OP_KINDS, OpGraph

REPEAT_PREFIX = "rep16_"
BLOCK_PREFIX = "block4_"
REPEATS = 16
BUSY_FACTOR = 3.0  # eager: a repeat's time per op counts as kernel time beyond 3 × host time
HOST_FACTOR = 1.5  # an eager repeat 1.5× longer than its kernel: its time per op is host time
MIN_POINTS = 4  # fewer kernel-time points: the class borrows another's curve
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


def knots(points: list[tuple[float, float]], per_bin: int | None = None) -> list[list[float]]:
    """Binned medians of (x, y) = (log10 roofline s, log10 s) points, x strictly increasing,
    y made non-decreasing by a running maximum: more work never takes less time than a
    smaller bin's median. Bins hold `per_bin` points: by default 5, fewer for a class with
    few points (a quarter of them, at least one), so that a short curve still spans its range
    (six attention cases binned by five made one knot, flat below it: a small attention was
    charged a large one's time)."""
    pts = sorted(points)
    n = len(pts)
    if per_bin is None:
        per_bin = max(1, min(5, n // 4))
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


def _per_op(records: list[dict], call: dict, peak: float, bandwidth: float, elem_bytes: float,
            by_batch: bool, cases: dict | None = None,
            bias_kernel: bool = True) -> dict[str, list[tuple[float, float]]]:
    """class -> [(roofline seconds, seconds per op)] over the single-class `rep16_` cases;
    `cases`, if given, also gets case name -> (class, seconds per op)."""
    per_op: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in records:
        if not r["case"].startswith(REPEAT_PREFIX):
            continue
        f = op_features(OpGraph.from_json(r["graph"]), elem_bytes, by_batch=by_batch,
                        bias_kernel=bias_kernel)
        if len(f["cls"]) != REPEATS or len(set(f["cls"])) != 1 or any(f["extra"]):
            continue  # several kernel classes per repeat: not one class's figure
        t_ideal = max(f["macs"][0] / peak, f["bytes"][0] / bandwidth, 1e-12)
        views = f["views"].sum() * call["host_view_s"]  # the case's own views, charged apart
        secs = (r["median_s"] - call["fixed_s"] - views) / REPEATS
        per_op[f["cls"][0]].append((t_ideal, secs))
        if cases is not None:
            cases[r["case"]] = (f["cls"][0], secs)
    return per_op


def _curves(points: dict[str, list[tuple[float, float]]]) -> tuple[dict, dict]:
    """device_s knots per class with enough points, the pooled element-wise curve, and the
    same curves as roofline efficiency (for reading)."""
    device, efficiency = {}, {}
    pooled = [p for cls, pts in points.items() if cls in STREAMING for p in pts]
    for cls, pts in sorted({**points, "elementwise": pooled}.items()):
        if len(pts) >= MIN_POINTS:
            device[cls] = knots([(math.log10(t), math.log10(s)) for t, s in pts if s > 0])
            if cls in OP_KINDS:
                efficiency[cls] = [[x, round(10 ** (x - y), 5)] for x, y in device[cls]]
    for need in ("elementwise", "conv"):
        if need not in device:
            from netfrontier.errors import MeasurementError

            raise MeasurementError(f"no usable repeated-op case of class '{need}': the suite "
                                   "must include the rep16_ cases")
    return device, efficiency


def fit_runtime(records: list[dict], runtime: str, peak: float, bandwidth: float,
                elem_bytes: float, kernel_records: list[dict] | None = None) -> dict:
    """The `calibration` figures of the GPU-runtime model (see the module doc).

    `kernel_records`: for an eager profile, the same device's repeated-op cases replayed as CUDA
    graphs; kernel times then come from them, and host times from the eager repeats that take
    more than 1.5× the same case's kernel time.
    """
    if runtime == "sync":  # a CPU: each repeat's time per op is the op's whole time
        call = call_figures(records, False)
        device, efficiency = _curves(_per_op(records, call, peak, bandwidth, elem_bytes,
                                             by_batch=False, bias_kernel=False))
        return {"runtime": "sync", "below": "flat", "fixed_s": float(f"{call['fixed_s']:.4g}"),
                "floor_s": 0.0, "host_view_s": float(f"{call['host_view_s']:.4g}"),
                "host_s": {}, "device_s": device, "efficiency": efficiency}
    graph_mode = runtime != "eager"
    call = call_figures(records, graph_mode)
    eager_cases: dict = {}
    per_op = _per_op(records, call, peak, bandwidth, elem_bytes, by_batch=not graph_mode,
                     cases=eager_cases)
    host: dict[str, float] = {}
    below = "flat"
    if graph_mode:
        device, efficiency = _curves(per_op)
    elif kernel_records:
        kcall, kernel_cases = call_figures(kernel_records, True), {}
        device, efficiency = _curves(_per_op(kernel_records, kcall, peak, bandwidth, elem_bytes,
                                             by_batch=False, cases=kernel_cases))
        bound: dict[str, list[float]] = defaultdict(list)
        for case, (cls, secs) in eager_cases.items():
            if case in kernel_cases and secs > HOST_FACTOR * kernel_cases[case][1]:
                bound[cls].append(secs)  # the same case's kernel is much shorter: host time
        host = {cls: float(f"{np.median(v):.4g}") for cls, v in sorted(bound.items())}
    else:  # no kernel times: host from the fastest repeats, kernel time where far above it
        points = {}
        for cls, pts in sorted(per_op.items()):
            secs = np.array([s for _, s in pts])
            h = float(np.median(secs[secs <= 1.5 * float(np.percentile(secs, 10))]))
            host[cls] = float(f"{h:.4g}")
            points[cls] = [(t, s - h / REPEATS) for t, s in pts if s > BUSY_FACTOR * h]
        device, efficiency = _curves(points)
        below = "proportional"
    return {"runtime": "graph" if graph_mode else "eager", "below": below,
            "fixed_s": float(f"{call['fixed_s']:.4g}"), "floor_s": float(f"{call['floor_s']:.4g}"),
            "host_view_s": float(f"{call['host_view_s']:.4g}"), "host_s": host,
            "device_s": device, "efficiency": efficiency}


def predicted_s(graph: OpGraph, spec) -> float:
    """The calibrated profile's latency for one call of `graph` (what `estimate` returns for a
    calibrated profile, without the analytical columns it also computes: 30× faster, which
    matters when a fit is checked against thousands of its own cases)."""
    return spec.calibration.fixed_s + float(runtime_rows(graph, spec)[2].sum())


def fit_switch(records: list[dict], spec) -> tuple[float, float]:
    """Graph runtime: more time per change of kernel class, from the `block4_` cases.

    Repeated-op cases run one kernel class over and over; a network (or a block) alternates
    convolutions, norms and element-wise kernels. The median over the block cases of (time -
    predicted time without it) / (changes of class) is that cost, never below zero.
    Returns (switch_s, share): `share` is the median fraction of the block cases' measured
    time the switches then stand for, which a sane fit keeps small (see calibrate.check_fit).
    """
    per_switch, count, measured = [], [], []
    for r in records:
        if not r["case"].startswith(BLOCK_PREFIX):
            continue
        graph = OpGraph.from_json(r["graph"])
        switches = class_switches(op_features(
            graph, spec.default_abits / 8.0,
            bias_kernel=spec.calibration.runtime != "sync")).sum()
        if switches:
            per_switch.append((r["median_s"] - predicted_s(graph, spec)) / switches)
            count.append(switches)
            measured.append(r["median_s"])
    if not per_switch:
        return 0.0, 0.0
    switch = max(float(np.median(per_switch)), 0.0)
    return switch, float(np.median(switch * np.array(count) / np.array(measured)))


def self_check(records: list[dict], spec) -> tuple[float, int]:
    """(median error factor − 1, cases): how far the profile's predictions are from its own
    micro-benchmarks, every case that runs an op (metadata-only chains have no row to cost).

    The error of a case is |log(predicted / measured)|, so being 3× low counts as much as
    being 3× high (a percentage of the measured time saturates at 100% for predictions far
    too low, which is what starved or disturbed fits produce)."""
    errors = []
    for r in records:
        graph = OpGraph.from_json(r["graph"])
        if graph.layer_table("none").rows:
            errors.append(abs(math.log(max(predicted_s(graph, spec), 1e-12) / r["median_s"])))
    return (math.expm1(statistics.median(errors)) if errors else 0.0), len(errors)
