"""Fit a device profile (a hardware preset with a calibration block) from micro-benchmarks.

1. `run_suite` times every micro-benchmark case on the device and keeps, per case, its captured
   graph: the raw data a profile is fitted from (and committed beside it).
2. `fit_profile` measures the peak MAC rate and the DRAM bandwidth (`dram_bandwidth`), never
   taken from a datasheet, then fits the runtime model of cost/gpu_runtime.py from the
   repeated-op cases (measure/fit_runtime.py: per-class time curves, host time per op,
   per-call costs): ops pipelined behind the host (GPU eager), replayed at once (CUDA
   graphs) or run one after another (CPU, `sync`).
The zoo is never used here: it is the held-out test (`validate`).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import yaml

from netfrontier.graph.types import MAC_KINDS, OP_KINDS, OpGraph
from netfrontier.hardware.spec import spec_from_dict
from netfrontier.measure.fit_runtime import REPEAT_PREFIX, call_figures, fit_runtime, fit_switch

BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
PRECISION = {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16"}
KERNEL_CASES = (REPEAT_PREFIX, "chain", "block4_")  # also replayed as CUDA graphs under eager


def run_suite(device: str, runtime: str, dtype: str, batches: tuple[int, ...],
              quick: bool = False, min_time_s: float = 0.2,
              progress: Callable[[str, int, int], None] | None = None) -> list[dict]:
    """Time every calibration case; one raw record (with its captured graph) per case.

    Eager mode on a GPU cannot show a short kernel's time (the host issue is longer), so there
    the repeated-op, chain and block cases are also replayed as CUDA graphs: records with
    runtime "cudagraph" in the same file, from which the eager profile takes its kernel times.
    """
    import copy

    import torch

    from netfrontier.graph.torch_capture import capture_module
    from netfrontier.measure.microbench import suite
    from netfrontier.measure.timing import Budget, bench_module

    torch.set_flush_denormal(True)
    cases = suite(batches, quick=quick)
    budget = Budget(warmup=3, min_runs=5, max_runs=500, min_time_s=min_time_s)
    kernel_runtime = "cudagraph" if runtime == "eager" and device.startswith("cuda") else None
    records = []
    for i, case in enumerate(cases):
        graph = capture_module(case.module, case.shape, model_name=case.name, source="microbench")
        runtimes = [runtime] + ([kernel_runtime] if kernel_runtime and
                                case.name.startswith(KERNEL_CASES) else [])
        for rt in runtimes:
            try:
                m = bench_module(copy.deepcopy(case.module), case.shape, name=case.name,
                                 device=device, runtime=rt, dtype=dtype, budget=budget)
            except RuntimeError as exc:  # a shape a runtime cannot run: skipped, and said so
                records.append({"case": case.name, "kind": case.kind, "runtime": rt,
                                "error": str(exc)[:200]})
                continue
            records.append({"case": case.name, "kind": case.kind, "shape": list(case.shape),
                            "batch": case.shape[0], "device": m.device, "runtime": rt,
                            "dtype": dtype, "median_s": m.median_s, "p90_s": m.p90_s,
                            "min_s": m.min_s, "runs": m.runs, "env": m.env,
                            "graph": graph.to_json()})
        if progress:
            progress(case.name, i + 1, len(cases))
    return records


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
    """A calibrated preset (as a YAML-ready dict) from raw micro-benchmark records."""
    ok = [r for r in records if "median_s" in r]
    if not ok:
        from netfrontier.errors import MeasurementError

        raise MeasurementError("no successful micro-benchmark to fit a profile from")
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
    peak = max(m / r["min_s"] for r, k, m, _ in feats if k in MAC_KINDS)
    bandwidth, bw_source = dram_bandwidth(feats, onchip_bytes)
    spec_dict = _base_spec(name, device, kind, dtype, peak, bandwidth, onchip_bytes, runtime)
    spec_dict["sources"]["dram_bytes_per_s"] += f" ({bw_source})"
    if not any(r["case"].startswith(REPEAT_PREFIX) for r in ok):
        from netfrontier.errors import MeasurementError

        raise MeasurementError("the records hold no repeated-op case (rep16_...): re-run "
                               "'netfrontier calibrate', whose suite includes them")
    model_runtime = "sync" if kind == "cpu" else runtime
    cal = fit_runtime(ok, model_runtime, peak, bandwidth, BYTES[dtype], kernel_records or None)
    spec_dict["sources"]["op_overhead_s"] = "unused: see calibration.host_s and device_s"
    spec_dict["calibration"] = {
        "provenance": f"{len(ok)} micro-benchmarks on {device}, {runtime}, {dtype}, batches "
                      f"{sorted({r['batch'] for r in ok})}"
                      + (f", kernel times from {len(kernel_records)} of them replayed as CUDA "
                         "graphs" if kernel_records else "")
                      + "; runtime model (netfrontier.cost.gpu_runtime)", **cal}
    if cal["runtime"] == "sync":
        switch = fit_switch(ok, spec_from_dict(spec_dict, name))
        spec_dict["calibration"]["switch_s"] = float(f"{switch:.4g}")
    elif cal["runtime"] == "graph" or kernel_records:
        graph_cal = {**spec_dict["calibration"], **call_figures(kernel_records or ok, True),
                     "runtime": "graph", "host_s": {}, "below": "flat"}
        switch = fit_switch(kernel_records or ok,
                            spec_from_dict({**spec_dict, "calibration": graph_cal}, name))
        spec_dict["calibration"]["switch_s"] = float(f"{switch:.4g}")
    spec_from_dict(spec_dict, name)  # validate before anyone writes it
    return spec_dict


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


def load_records(path: str | Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
