"""Benchmark named models (one, or the zoo), optionally each in a fresh subprocess, into the store.

Run as a module (`python -m netfrontier.measure.bench MODEL ...`) it times one model and prints
its Measurement as JSON: that is what `--isolate` uses.
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict

from netfrontier.errors import MeasurementError
from netfrontier.measure.timing import Budget, Measurement


def bench_model(name: str, *, device: str = "cpu", runtime: str = "eager", dtype: str = "fp32",
                batch: int = 1, resolution: int | None = None, threads: int | None = None,
                budget: Budget = Budget()) -> Measurement:
    """Build `name` with random weights on `device` and time it."""
    import torch

    from netfrontier.measure.materialize import materialize
    from netfrontier.measure.timing import bench_module
    from netfrontier.models.registry import resolve

    if threads:
        torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    src, entry = resolve(name)
    res = resolution or entry.resolution
    model = materialize(src.build(entry), device=device)
    return bench_module(model, (batch, 3, res, res), name=entry.name, device=device,
                        runtime=runtime, dtype=dtype, budget=budget)


def bench_isolated(name: str, **kw) -> Measurement:
    """The same as bench_model, in a fresh Python process (no allocator or cache carry-over)."""
    b: Budget = kw.pop("budget", Budget())
    args = [sys.executable, "-m", "netfrontier.measure.bench", name,
            "--budget", json.dumps(asdict(b)), "--kw", json.dumps(kw)]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise MeasurementError(f"benchmark of {name} failed in its subprocess: {tail}")
    return Measurement(**json.loads(proc.stdout.strip().splitlines()[-1]))


def bench_many(names: list[str], *, isolate: bool = False, store=None,
               progress: Callable[[str, Measurement | None, str], None] | None = None,
               skip_done: bool = False, **kw) -> list[Measurement]:
    """Benchmark several models; each result is stored at once (an interrupted run resumes).

    A model that fails (e.g. out of memory) is reported through `progress` and skipped.
    """
    out = []
    done = {}
    if store is not None and skip_done:
        done = store.latest_measurements(runtime=kw.get("runtime", "eager"),
                                         dtype=kw.get("dtype", "fp32"), batch=kw.get("batch", 1))
    for name in names:
        if any(k[0] == name for k in done):
            continue
        try:
            m = bench_isolated(name, **kw) if isolate else bench_model(name, **kw)
        except MeasurementError as exc:
            if progress:
                progress(name, None, str(exc))
            continue
        except RuntimeError as exc:  # CUDA OOM and kernels a runtime lacks
            if progress:
                progress(name, None, str(exc).splitlines()[0])
            continue
        if store is not None:
            store.put_measurement(m.to_dict())
        out.append(m)
        if progress:
            progress(name, m, "")
    return out


def _main() -> None:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--budget", default="{}")
    ap.add_argument("--kw", default="{}")
    a = ap.parse_args()
    m = bench_model(a.model, budget=Budget(**json.loads(a.budget)), **json.loads(a.kw))
    print(json.dumps(m.to_dict()))


if __name__ == "__main__":
    _main()
