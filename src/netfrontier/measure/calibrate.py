"""Fit a device profile (a hardware preset with a calibration block) from micro-benchmarks.

1. `run_suite` times every micro-benchmark case on the device and keeps, per case, its captured
   graph: the raw data a profile is fitted from (and committed beside it).
2. `fit_profile` measures the peak MAC rate and the DRAM bandwidth (`dram_bandwidth`), never
   taken from a datasheet, then fits the runtime model of cost/gpu_runtime.py from the
   repeated-op cases (measure/fit_runtime.py: per-class time curves, host time per op,
   per-call costs): ops pipelined behind the host (GPU eager), replayed at once (CUDA
   graphs) or run one after another (CPU, `sync`).
3. `check_fit` refuses a profile whose figures make no physical sense or that does not
   reproduce its own micro-benchmarks: a profile is trusted by every later command, so a
   disturbed run must fail loudly here rather than be written.
4. Anchors: a profile records the times of a few reference micro-benchmarks of its suite
   (`ANCHORS`: two host-bound repeated tiny ops, two device-bound repeated convolutions) as
   `calibration.anchors`. A shared machine's speed moves by tens of percent from day to day;
   `reanchor` re-times the anchors (seconds), takes the host factor f_h and the device factor
   f_d (geometric means of now / then) and rescales the profile: host figures (`host_s`,
   `host_view_s`, `fixed_s`, `floor_s`, `switch_s`, `overhead_s`) by f_h, each time knot of
   `device_s` by f_h^(1-w) f_d^w where w runs from 0 at the host anchors' per-op time to 1 at
   the device anchors' (log scale, clipped), fitted efficiencies by 1 / f_d. `anchor_drift`
   re-times them on the machine at hand so that `validate` can say when a profile has drifted.
The zoo is never used here: it is the held-out test (`validate`).
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from netfrontier.errors import MeasurementError
from netfrontier.graph.types import MAC_KINDS, OP_KINDS, OpGraph
from netfrontier.hardware.spec import spec_from_dict
from netfrontier.measure.fit_runtime import (REPEAT_PREFIX, call_figures, fit_runtime, fit_switch,
                                             self_check)
from netfrontier.measure.validate import read_jsonl

BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
PRECISION = {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16"}
KERNEL_CASES = (REPEAT_PREFIX, "chain", "block4_")  # also replayed as CUDA graphs under eager
STALL_FACTOR = 100.0  # a threaded op this much slower than a one-thread op waited for a core
SPREAD = 2.0  # a case whose median run is over twice its fastest was disturbed (sound: <1%)
ATTEMPTS = 3  # timings of a case while other work holds the cores, before it is marked stalled
MAX_STALLED = 0.1  # more stalled cases than this share: the run describes the other work
# check_fit's limits, with a wide margin over sound fits (see its docstring)
MAX_SELF_ERROR = 0.5
MAX_SWITCH_SHARE = 0.5
RECORD_KEYS = ("case", "runtime")
# Reference micro-benchmarks of the suite a profile records and re-times (see the module doc):
# host-bound (16 tiny element-wise ops: dispatch) and device-bound (16 mid-size convolutions).
ANCHORS = {"host": ("rep16_relu_32@8_b1", "rep16_add_32@8_b1"),
           "device": ("rep16_conv3x3_s1_256x256@14_b1", "rep16_conv1x1_s1_256x1024@14_b1")}
DRIFT_LIMIT = 0.10  # |factor - 1| above this: validate says the profile has drifted
TIMED_KEYS = ("median_s", "min_s", "batch", "device", "dtype", "env", "graph")


def cores_busy() -> bool:
    """Whether other work holds the CPU cores PyTorch's threads need, right now.

    PyTorch splits an op of more than ~32k elements over its threads and waits for all of
    them. On a shared machine, with another process on the other core, that wait is a
    scheduler tick (4-8 ms) for an op of 10 µs, so every such op of a calibration timed then
    is charged 8 ms (a quick run on this project's 2-core machine fitted that, and its
    profile came out 18× slow on the zoo). The probe compares a 100k-element relu with a
    1k-element one (run on the calling thread): 4-10× apart when the cores are free, over
    1000× when they are not."""
    import statistics
    import time

    import torch

    if torch.get_num_threads() == 1:
        return False

    def median_s(x, runs=9):
        torch.relu(x)
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            torch.relu(x)
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    return median_s(torch.ones(1, 128, 28, 28)) > STALL_FACTOR * median_s(torch.ones(1, 1024))


def run_suite(device: str, runtime: str, dtype: str, batches: tuple[int, ...],
              quick: bool = False, min_time_s: float = 0.2,
              progress: Callable[[str, int, int], None] | None = None) -> list[dict]:
    """Time every calibration case; one raw record (with its captured graph) per case.

    Eager mode on a GPU cannot show a short kernel's time (the host issue is longer), so there
    the repeated-op, chain and block cases are also replayed as CUDA graphs: records with
    runtime "cudagraph" in the same file, from which the eager profile takes its kernel times.
    On a CPU a case is timed again (after a second's pause) when other work held the cores
    before or after it (`cores_busy`), or its median run took over SPREAD times its fastest
    (the other work came and went while it ran), up to ATTEMPTS times; then its records say
    "stalled" and the fit leaves them out.
    """
    import time

    import torch

    from netfrontier.graph.torch_capture import capture_module
    from netfrontier.measure.microbench import suite
    from netfrontier.measure.timing import Budget

    torch.set_flush_denormal(True)
    cases = suite(batches, quick=quick)
    budget = Budget(warmup=3, min_runs=5, max_runs=500, min_time_s=min_time_s)
    kernel_runtime = "cudagraph" if runtime == "eager" and device.startswith("cuda") else None
    cpu = device == "cpu"
    records = []
    for i, case in enumerate(cases):
        graph = capture_module(case.module, case.shape, model_name=case.name, source="microbench")
        runtimes = [runtime] + ([kernel_runtime] if kernel_runtime and
                                case.name.startswith(KERNEL_CASES) else [])
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(1.0)  # let the other work pass
            busy = cpu and cores_busy()
            timed = [_time_case(case, graph, device, rt, dtype, budget) for rt in runtimes]
            busy = cpu and (cores_busy() or busy or any(
                r.get("median_s", 0) > SPREAD * r.get("min_s", math.inf) for r in timed))
            if not busy:
                break
        records += [{**r, "stalled": True} if busy else r for r in timed]
        if progress:
            progress(case.name + (" (stalled: other work held the cores)" if busy else ""),
                     i + 1, len(cases))
    return records


def _time_case(case, graph: OpGraph, device: str, runtime: str, dtype: str, budget) -> dict:
    """One raw record: the case timed under one runtime, or why that runtime cannot run it."""
    import copy

    from netfrontier.measure.timing import bench_module

    try:
        m = bench_module(copy.deepcopy(case.module), case.shape, name=case.name, device=device,
                         runtime=runtime, dtype=dtype, budget=budget)
    except RuntimeError as exc:  # a shape a runtime cannot run: skipped, and said so
        return {"case": case.name, "kind": case.kind, "runtime": runtime,
                "error": str(exc)[:200]}
    return {"case": case.name, "kind": case.kind, "shape": list(case.shape),
            "batch": case.shape[0], "device": m.device, "runtime": runtime, "dtype": dtype,
            "median_s": m.median_s, "p90_s": m.p90_s, "min_s": m.min_s, "runs": m.runs,
            "env": m.env, "graph": graph.to_json()}


def _base_spec(name: str, device_name: str, kind: str, dtype: str, peak_macs_per_s: float,
               bytes_per_s: float, onchip_bytes: float, runtime: str) -> dict:
    """The uncalibrated description of a measured device, every figure sourced to the run."""
    prec = PRECISION[dtype]
    bits = 8 * BYTES[dtype]
    measured = f"measured by 'netfrontier calibrate' on {device_name}"
    return {
        "version": 1, "name": name, "kind": kind,
        "description": f"{device_name}, PyTorch {runtime}, {dtype} (calibrated profile)",
        "clock_hz": 1e9, "cores": 1, "macs_per_cycle": {prec: peak_macs_per_s / 1e9},
        "tile": {"m": 1}, "vector_ops_per_cycle": 1e5, "mapping_efficiency": 1.0,
        "onchip_bytes": float(onchip_bytes), "weight_buffer_bytes": float(onchip_bytes) / 2,
        "dram_bytes_per_s": float(bytes_per_s), "op_overhead_s": 0.0,
        "weight_bits": [bits], "activation_bits": [bits], "default_wbits": bits,
        "default_abits": bits, "supported_ops": ["all"],
        "fusion": "none", "overhead_mode": "max" if kind == "gpu" and runtime == "eager" else "add",
        "energy": {}, "fallback": {"host": "none needed (all ops run)", "ops_per_s": 1e9,
                                   "overhead_s": 0.0, "transfer_bytes_per_s": 1e9,
                                   "pj_per_op": 1.0},
        "sources": {
            "device": device_name, "runtime": runtime, "dtype": dtype,
            "clock_hz": "nominal 1 GHz: macs_per_cycle carries the measured rate",
            "cores": "the device is modelled as one unit; parallelism is in the measured rate",
            "macs_per_cycle": f"{measured}: best matmul/conv throughput of the suite",
            "tile": "no tile quantisation: the fitted efficiencies carry shape effects",
            "vector_ops_per_cycle": "unused: non-MAC kinds are calibrated on bytes moved",
            "mapping_efficiency": "1.0: efficiencies are fitted per operator kind",
            "onchip_bytes": "last-level cache of the device (residency between ops)",
            "weight_buffer_bytes": "half the last-level cache",
            "dram_bytes_per_s": f"{measured}: bytes moved per second",
            "op_overhead_s": "per kind, fitted: see calibration.overhead_s",
            "weight_bits": f"{dtype} weights", "supported_ops": "PyTorch runs every op",
            "fallback": "not used",
            "energy": "not calibrated: Horowitz defaults, not meaningful for this device",
        },
    }


def dram_bandwidth(feats: list[tuple], onchip_bytes: float) -> tuple[float, str]:
    """(bytes per second, how it was found) of external memory.

    Only a case that touches well more bytes than the last-level cache holds can show the DRAM
    rate: a smaller one is served from the cache after its first run, every timed run re-using
    the same tensors (and one just above the cache size still finds part of its data there).
    So the rate is the best bytes rate of the cases over twice the cache
    (on a CPU: the matrix-vector products of the classifier heads, whose weights run to
    hundreds of MB), and, on a device where no case is that large, of the four largest
    copy/add cases (smaller ones come out faster, from cache)."""
    big = [f for f in feats if f[3] > 2 * onchip_bytes]
    if big:
        best = max(big, key=lambda f: f[3] / f[0]["min_s"])
        return best[3] / best[0]["min_s"], f"best rate of the {len(big)} cases over twice " \
            f"the last-level cache ({best[0]['case']})"
    big = sorted((f for f in feats if f[1] in ("copy", "add")), key=lambda f: -f[3])[:4]
    return max(f[3] / f[0]["min_s"] for f in big), "best rate of the four largest copies"


def fit_profile(records: list[dict], name: str, onchip_bytes: float) -> dict:
    """A calibrated preset (as a YAML-ready dict) from raw micro-benchmark records.

    Raises MeasurementError, naming the figure, where `check_fit` finds the fit implausible."""
    ok = [r for r in records if "median_s" in r]
    if not ok:
        raise MeasurementError("no successful micro-benchmark to fit a profile from")
    stalled = sum(bool(r.get("stalled")) for r in ok)
    if stalled > MAX_STALLED * len(ok):
        raise MeasurementError(
            f"{stalled} of {len(ok)} micro-benchmarks were timed while other work held the CPU "
            "cores (each threaded op then waits milliseconds for a core): re-run 'netfrontier "
            "calibrate' with the machine otherwise idle")
    ok = [r for r in ok if not r.get("stalled")]
    runtimes = [r["runtime"] for r in ok]
    runtime = max(set(runtimes), key=runtimes.count)  # kernel-time records ride along (eager)
    kernel_records = [r for r in ok if r["runtime"] == "cudagraph"] if runtime == "eager" else []
    ok = [r for r in ok if r["runtime"] == runtime]
    device, dtype = ok[0]["device"], ok[0]["dtype"]
    kind = "gpu" if ok[0]["env"].get("cuda") else "cpu"
    feats = []
    for r in ok:
        graph = OpGraph.from_json(r["graph"])
        t = graph.layer_table("none")
        if t.rows != 1:
            continue
        k = OP_KINDS[t.anchor_kind[0]]
        touched = float(t.out_elems[0] + t.weight_elems[0] + t.graph_input_elems[0] +
                        np.sum(t.out_elems[t.in_tensors])) * BYTES[dtype]
        feats.append((r, k, float(t.macs[0]), touched))
    if not any(r["case"].startswith(REPEAT_PREFIX) for r in ok) or \
            not any(k in MAC_KINDS for _, k, _, _ in feats):
        raise MeasurementError("the records hold no repeated-op case (rep16_...) or no single "
                               "matmul/conv case: re-run 'netfrontier calibrate', whose suite "
                               "includes them")
    peak = max(m / r["min_s"] for r, k, m, _ in feats if k in MAC_KINDS)
    bandwidth, bw_source = dram_bandwidth(feats, onchip_bytes)
    spec_dict = _base_spec(name, device, kind, dtype, peak, bandwidth, onchip_bytes, runtime)
    spec_dict["sources"]["dram_bytes_per_s"] += f" ({bw_source})"
    model_runtime = "sync" if kind == "cpu" else runtime
    cal = fit_runtime(ok, model_runtime, peak, bandwidth, BYTES[dtype], kernel_records or None)
    spec_dict["sources"]["op_overhead_s"] = "unused: see calibration.host_s and device_s"
    spec_dict["calibration"] = {
        "provenance": f"{len(ok)} micro-benchmarks on {device}, {runtime}, {dtype}, batches "
                      f"{sorted({r['batch'] for r in ok})}"
                      + (f", kernel times from {len(kernel_records)} of them replayed as CUDA "
                         "graphs" if kernel_records else "")
                      + (f", {stalled} stalled ones left out" if stalled else "")
                      + "; runtime model (netfrontier.cost.gpu_runtime)", **cal}
    anchors = anchors_from_records(ok)
    if anchors:
        spec_dict["calibration"]["anchors"] = anchors
    _check_figures(spec_dict)
    share = 0.0
    if cal["runtime"] == "sync":
        switch, share = fit_switch(ok, spec_from_dict(spec_dict, name))
        spec_dict["calibration"]["switch_s"] = float(f"{switch:.4g}")
    elif cal["runtime"] == "graph" or kernel_records:
        graph_cal = {**spec_dict["calibration"], **call_figures(kernel_records or ok, True),
                     "runtime": "graph", "host_s": {}, "below": "flat"}
        switch, share = fit_switch(kernel_records or ok,
                                   spec_from_dict({**spec_dict, "calibration": graph_cal}, name))
        spec_dict["calibration"]["switch_s"] = float(f"{switch:.4g}")
    check_fit(spec_dict, ok, share)
    return spec_dict


def _check_figures(spec_dict: dict) -> None:
    """Every fitted figure is finite, no time is negative and no rate is zero or negative."""
    cal = spec_dict["calibration"]
    rates = {"macs_per_cycle": max(spec_dict["macs_per_cycle"].values()),
             "dram_bytes_per_s": spec_dict["dram_bytes_per_s"]}
    times = {**{f"calibration.{k}": cal[k] for k in ("fixed_s", "floor_s", "host_view_s",
                                                     "switch_s") if k in cal},
             **{f"calibration.host_s.{c}": v for c, v in cal["host_s"].items()}}
    for key, v in {**rates, **times}.items():
        if not math.isfinite(v) or v < 0 or (v == 0 and key in rates):
            need = "positive" if key in rates else "not negative"
            raise MeasurementError(f"calibration refused: {key} = {v:g} is not a plausible "
                                   f"figure (it must be finite and {need})")
    for cls, knots in cal["device_s"].items():
        if not all(math.isfinite(v) for knot in knots for v in knot):
            raise MeasurementError(f"calibration refused: calibration.device_s.{cls} has a "
                                   "non-finite knot")


def check_fit(spec_dict: dict, records: list[dict], switch_share: float) -> None:
    """Refuse a fitted profile that is implausible, naming the figure and why.

    * figures: finite, not negative (`_check_figures`, also run before the switch fit);
    * `switch_s`: it stands for a cache and code refill when a kernel class changes, a small
      part of a mixed sequence's time (9% of the CPU blocks' time, 1% of the H100's). If it
      is over half (MAX_SWITCH_SHARE) of the `block4_` cases' time, the per-op curves do not
      explain mixed sequences at all, and a network, with hundreds of switches, would be
      charged that miss over and over (a disturbed quick run fitted 7.7 ms per switch and
      validated at +5800%);
    * its own micro-benchmarks: the profile predicts every case it was fitted from, and the
      single-op and block cases it was not. The shipped fits miss them by a median of
      11-15% (a quick suite 19%); a median over 50% (MAX_SELF_ERROR, 2.5× the worst sound
      fit) means the timings were disturbed or the curves starved (a run on a busy 2-core
      machine: 71%), and no network made of the same ops can be predicted better.
    """
    cal = spec_dict["calibration"]
    _check_figures(spec_dict)
    if switch_share > MAX_SWITCH_SHARE:
        raise MeasurementError(
            f"calibration refused: switch_s = {cal['switch_s']:.3g} s would be "
            f"{100 * switch_share:.0f}% of the mixed-sequence cases' time (block4_..., limit "
            f"{100 * MAX_SWITCH_SHARE:.0f}%): the per-op curves do not explain them (timings "
            "disturbed by other work on the machine?)")
    error, cases = self_check(records, spec_from_dict(spec_dict, spec_dict["name"]))
    if error > MAX_SELF_ERROR:
        raise MeasurementError(
            f"calibration refused: the fitted profile misses its own {cases} micro-benchmarks "
            f"by a median of {100 * error:.0f}% (limit {100 * MAX_SELF_ERROR:.0f}%): the "
            "timings were disturbed (other work on the machine?) or the suite is too small")


class _Dumper(yaml.SafeDumper):
    """Safe YAML with short lists of numbers (curve knots) on one line."""


def _flow_numbers(dumper, data):
    flow = len(data) <= 4 and all(isinstance(v, (int, float)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow or None)


_Dumper.add_representer(list, _flow_numbers)


def write_profile(spec_dict: dict, records: list[dict], out_dir: str | Path) -> tuple[Path, Path]:
    """`<name>.yaml` and `<name>.calibration.jsonl` in out_dir, each written atomically."""
    from netfrontier.report import write_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    name = spec_dict["name"]
    header = (f"# Calibrated profile fitted by netfrontier from micro-benchmarks only;\n"
              f"# raw data: {name}.calibration.jsonl. Regenerate with 'netfrontier calibrate'.\n")
    yaml_path = out / f"{name}.yaml"
    raw_path = out / f"{name}.calibration.jsonl"
    write_atomic(raw_path, "".join(json.dumps(r) + "\n" for r in records))
    write_atomic(yaml_path, header + yaml.dump(spec_dict, Dumper=_Dumper, sort_keys=False,
                                               width=100))
    return yaml_path, raw_path


def write_profile_yaml(spec_dict: dict, out_dir: str | Path, header: str = "") -> Path:
    """`<name>.yaml` in out_dir, validated first (a rescaled profile must still load)."""
    from netfrontier.report import write_atomic

    spec_from_dict(spec_dict, spec_dict["name"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{spec_dict['name']}.yaml"
    write_atomic(path, f"# Calibrated profile{'; ' + header if header else ''}.\n" +
                 yaml.dump(spec_dict, Dumper=_Dumper, sort_keys=False, width=100))
    return path


def load_records(path: str | Path) -> list[dict]:
    """The raw records of a `.calibration.jsonl` (a missing file or a bad line: one error)."""
    return read_jsonl(path, "calibration records", RECORD_KEYS, TIMED_KEYS)


# --- anchors: keep a profile true to the machine from one day to the next --------------------

def anchors_from_records(records: list[dict]) -> dict:
    """{anchor case: median seconds} of the anchors among a suite's records (not stalled)."""
    names = ANCHORS["host"] + ANCHORS["device"]
    return {r["case"]: float(f"{r['median_s']:.6g}") for r in records
            if r.get("case") in names and "median_s" in r and not r.get("stalled")}


def time_anchors(names, device: str, runtime: str, dtype: str, min_time_s: float = 0.3,
                 progress: Callable[[str, int, int], None] | None = None) -> dict:
    """{case: median seconds} of the named anchors timed now (a few seconds). A CPU case
    timed while other work held the cores is timed again, as in `run_suite`, and left out if
    it stays disturbed."""
    import re
    import time

    import torch

    from netfrontier.measure import microbench as mb
    from netfrontier.measure.timing import Budget, bench_module

    torch.set_flush_denormal(True)
    batches = tuple(sorted({int(m.group(1)) for n in names
                            if (m := re.search(r"_b(\d+)$", n))})) or (1,)
    # the anchors are repeated convolutions and element-wise ops: build just those families
    # (the whole suite takes seconds to build), the whole suite only for other names
    cases = {c.name: c for b in batches
             for c in mb._repeated(mb._conv_cases(b) + mb._vector_cases(b)) if c.name in names}
    if set(names) - set(cases):
        cases.update({c.name: c for c in mb.suite(batches) if c.name in names})
    missing = sorted(set(names) - set(cases))
    if missing:
        raise MeasurementError(f"anchor '{missing[0]}' is not a case of this netfrontier's "
                               "calibration suite")
    budget = Budget(warmup=3, min_runs=5, max_runs=200, min_time_s=min_time_s)
    out = {}
    for i, name in enumerate(names):
        case = cases[name]
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(1.0)
            busy = device == "cpu" and cores_busy()
            m = bench_module(case.module, case.shape, name=name, device=device,
                             runtime=runtime, dtype=dtype, budget=budget)
            busy = busy or (device == "cpu" and (cores_busy() or m.median_s > SPREAD * m.min_s))
            if not busy:
                out[name] = m.median_s
                break
        if progress:
            progress(name + ("" if name in out else " (stalled: left out)"), i + 1, len(names))
    return out


def drift_factors(then: dict, now: dict) -> dict:
    """{"host": f_h, "device": f_d}: geometric means of now / then over each class of anchors
    timed both times (a class with none timed now is left out)."""
    out = {}
    for cls, names in ANCHORS.items():
        ratios = [now[n] / then[n] for n in names if n in then and n in now and then[n] > 0]
        if ratios:
            out[cls] = float(np.exp(np.mean(np.log(ratios))))
    return out


def reanchor_profile(spec_dict: dict, now: dict, when: str = "") -> tuple[dict, dict]:
    """A copy of a profile (YAML mapping) rescaled to anchors timed now, and the factors.

    See the module doc for which figures move by which factor. Raises MeasurementError when
    the profile records no anchors or none of them could be timed."""
    import copy

    d = copy.deepcopy(spec_dict)
    cal = d.get("calibration") or {}
    then = cal.get("anchors") or {}
    if not then:
        raise MeasurementError(f"profile '{d.get('name')}' records no anchors (calibration."
                               "anchors); refit it with this netfrontier to record them")
    f = drift_factors(then, now)
    if "host" not in f and "device" not in f:
        raise MeasurementError("no anchor could be timed now (all stalled): re-run with the "
                               "machine otherwise idle")
    fh, fd = f.get("host", f.get("device")), f.get("device", f.get("host"))
    for key in ("fixed_s", "floor_s", "host_view_s", "switch_s"):
        if cal.get(key):
            cal[key] = float(f"{cal[key] * fh:.4g}")
    for key in ("host_s", "overhead_s"):
        cal[key] = {c: float(f"{v * fh:.4g}") for c, v in (cal.get(key) or {}).items()}
    cal["efficiency"] = {k: [[x, float(f"{y / fd:.4g}")] for x, y in knots]
                         for k, knots in (cal.get("efficiency") or {}).items()}
    # per-op time of each anchor class, where a knot's time moves with that class's factor
    per_op = {cls: np.exp(np.mean([np.log(then[n] / 16) for n in names if n in then]))
              for cls, names in ANCHORS.items() if any(n in then for n in names)}
    lo = np.log10(per_op.get("host", 1e-5))
    hi = np.log10(per_op.get("device", 1e-3))
    span = max(hi - lo, 1e-9)

    def shift(y):
        w = min(max((y - lo) / span, 0.0), 1.0)
        return y + (1 - w) * np.log10(fh) + w * np.log10(fd)

    cal["device_s"] = {c: [[x, float(f"{shift(y):.5g}")] for x, y in knots]
                       for c, knots in (cal.get("device_s") or {}).items()}
    cal["anchors"] = {n: float(f"{now.get(n, then[n] * (fh if n in ANCHORS['host'] else fd)):.6g}")
                      for n in then}
    cal["provenance"] = (cal.get("provenance", "") + f"; re-anchored{' ' + when if when else ''}"
                         f": host x{fh:.3f}, device x{fd:.3f} ({len(now)} anchors timed)")
    d["calibration"] = cal
    return d, {"host": fh, "device": fd}


def anchor_drift(spec, min_time_s: float = 0.2) -> dict | None:
    """How far this machine has drifted from a profile's anchors, timed now; None when the
    profile records none or was fitted on another device (then they cannot be re-timed here)."""
    anchors = spec.calibration.anchors
    if not anchors:
        return None
    from netfrontier.measure.timing import device_name

    device = "cuda" if spec.kind == "gpu" else "cpu"
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            return None
    here = device_name(device)
    if spec.sources.get("device") != here:
        return None
    now = time_anchors(list(anchors), device, spec.sources.get("runtime", "eager"),
                       spec.sources.get("dtype", "fp32"), min_time_s)
    f = drift_factors(anchors, now)
    if not f:
        return None
    drifted = any(abs(v - 1) > DRIFT_LIMIT for v in f.values())
    text = ", ".join(f"{k} x{v:.2f}" for k, v in f.items())
    from netfrontier.hardware.registry import PRESET_DIR, profile_dir

    where = Path(spec.path).parent.resolve() if spec.path else None
    ref = spec.name if where in (PRESET_DIR.resolve(), profile_dir().resolve(), None) \
        else spec.path
    msg = (f"{spec.name}: anchors now {text} the profile's" +
           (f"; drifted over {100 * DRIFT_LIMIT:.0f}%: re-anchor with 'netfrontier calibrate "
            f"--reanchor {ref}'" if drifted else " (within "
            f"{100 * DRIFT_LIMIT:.0f}%)"))
    return {"factors": f, "drifted": drifted, "message": msg, "now": now}
