"""The main job: cost every zoo model on a preset, keep results in the store, annotate the frontier.

Captures run in worker processes (one per core); each result is stored as soon as it arrives, so
an interrupted run resumes, and a repeated run reads the store without importing PyTorch.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict

from netfrontier.cost.analytical import DEFAULT_MODEL, MODEL_REVISION, check_bits
from netfrontier.cost.base import CostOptions
from netfrontier.hardware.registry import get_hardware
from netfrontier.hardware.spec import HardwareSpec
from netfrontier.models.base import ModelEntry
from netfrontier.store import Store, lib_version, tool_version
from netfrontier.workers import worker_pool

Progress = Callable[[str], None]


def _list_zoo() -> list[dict]:
    from netfrontier.models.registry import zoo_entries  # imports PyTorch

    return [asdict(e) for e in zoo_entries()]


def cached_zoo_entries(store: Store, pattern: str | None = None,
                       pool: ProcessPoolExecutor | None = None) -> list[ModelEntry]:
    """Zoo entries, from the store when the library versions match (no PyTorch import).

    On a miss the list is built in `pool` when one is given, so that the calling process stays
    free of PyTorch (and of its memory).
    """
    import fnmatch

    from netfrontier.models.registry import zoo_signature

    key = "|".join(["zoo-entries", tool_version(), lib_version("torchvision"), zoo_signature()])
    cached = store.get_cached(key)
    if cached is None:
        cached = pool.submit(_list_zoo).result() if pool else _list_zoo()
        store.put_cached(key, cached)
    entries = [ModelEntry(**d) for d in cached]
    if pattern:
        entries = [e for e in entries
                   if fnmatch.fnmatch(e.name, pattern) or fnmatch.fnmatch(e.arch, pattern)]
    return entries


def _totals_row(entry: ModelEntry, totals: dict, hw: HardwareSpec) -> dict:
    peak = hw.peak_macs_per_s(totals["precision"])
    return {
        "model": entry.name, "arch": entry.arch, "weights": entry.weights or "",
        "source": entry.source, "resolution": totals["resolution"], "batch": totals["batch"],
        "wbits": totals["wbits"], "abits": totals["abits"], "precision": totals["precision"],
        "hardware": hw.name, "top1": entry.top1, "top1_source": entry.top1_source,
        "macs": totals["macs"], "params": entry.params or totals["params"],
        "latency_s": totals["latency_s"], "dram_bytes": totals["dram_bytes"],
        "energy_j": totals["energy_j"], "achieved_ops_per_s": totals["achieved_ops_per_s"],
        "utilization": totals["macs"] / (totals["latency_s"] * peak) if totals["latency_s"] else 0,
        "array_utilization": totals.get("array_utilization", 0.0),
        "unsupported_layers": totals["unsupported_layers"],
        "unsupported_ops": ";".join(totals.get("unsupported_ops", [])),
        "unknown_layers": totals.get("unknown_layers", 0),
        "unknown_ops": ";".join(totals.get("unknown_ops", [])),
    }


def _capture_worker(name: str, batch: int, resolution: int, hw_path: str, opts: CostOptions):
    """In a worker process: capture one model, cost it, return (graph JSON, totals)."""
    from netfrontier.models.registry import resolve

    src, entry = resolve(name)
    graph = src.capture(entry, batch=batch, resolution=resolution)
    table = DEFAULT_MODEL.estimate(graph, get_hardware(hw_path), opts)
    return graph.to_json(), table.totals()


def zoo_rows(hardware: str | HardwareSpec, pattern: str | None = None, *, wbits: int | None = None,
             abits: int | None = None, batch: int = 1, store: Store | None = None,
             workers: int | None = None, progress: Progress | None = None,
             on_total: Callable[[int], None] | None = None) -> list[dict]:
    """Cost every zoo entry (matching `pattern`) on `hardware`; one dict per entry.

    `on_total(n)` is told how many entries there are, `progress(name)` each one done.
    """
    hw = get_hardware(hardware) if isinstance(hardware, str) else hardware
    opts = CostOptions(wbits=wbits, abits=abits)
    check_bits(hw, wbits or hw.default_wbits, abits or hw.default_abits)
    store = store or Store()
    n = workers or min(os.cpu_count() or 1, 4)
    with worker_pool(n) as pool:
        return _zoo_rows(hw, pattern, opts, batch, store, pool, progress, on_total)


def _zoo_rows(hw, pattern, opts, batch, store, pool, progress, on_total) -> list[dict]:
    from netfrontier.errors import UnknownModelError

    entries = cached_zoo_entries(store, pattern, pool)
    if not entries:
        raise UnknownModelError(f"no zoo model matches '{pattern}'")
    if on_total:
        on_total(len(entries))
    keys = {e.name: Store.cost_key(e.name, e.resolution, batch, opts.wbits, opts.abits,
                                   hw.digest, f"rev{MODEL_REVISION}") for e in entries}
    done = store.get_costs(list(keys.values()))
    need_capture = []
    for e in (e for e in entries if keys[e.name] not in done):
        graph = store.get_graph(Store.graph_key(e.name, e.resolution, batch))
        if graph is None:
            need_capture.append(e)
            continue
        # captured before (another preset or bit depth): cost it here, no PyTorch needed
        totals = DEFAULT_MODEL.estimate(graph, hw, opts).totals()
        store.put_cost(keys[e.name], e.name, hw.name, totals)
        done[keys[e.name]] = totals
        if progress:
            progress(e.name)
    need_capture.sort(key=lambda e: -(e.ref_macs or 0))  # longest first balances the workers
    futs = {pool.submit(_capture_worker, e.name, batch, e.resolution, hw.path or hw.name, opts): e
            for e in need_capture}

    def keep(fut) -> None:
        e = futs.pop(fut)
        graph_json, totals = fut.result()
        store.put_graph(Store.graph_key(e.name, e.resolution, batch), e.name, e.resolution,
                        batch, graph_json)
        store.put_cost(keys[e.name], e.name, hw.name, totals)
        done[keys[e.name]] = totals
        if progress:
            progress(e.name)

    try:
        for fut in as_completed(list(futs)):
            keep(fut)
    except KeyboardInterrupt:  # keep every capture that finished, then stop (workers.py)
        for fut in [f for f in futs if f.done() and not f.cancelled() and not f.exception()]:
            keep(fut)
        raise
    return [_totals_row(e, done[keys[e.name]], hw) for e in entries]

CSV_COLUMNS = ("model", "arch", "weights", "source", "resolution", "batch", "wbits", "abits",
               "precision", "hardware", "top1", "top1_source", "macs", "params", "latency_s",
               "dram_bytes", "energy_j", "achieved_ops_per_s", "utilization", "array_utilization",
               "unsupported_layers", "unsupported_ops", "unknown_layers", "unknown_ops",
               "on_frontier_latency", "on_frontier_dram",
               "on_frontier_energy", "below_line_latency", "below_line_dram", "below_line_energy",
               "measured_latency_s")


def rows_to_csv(rows: list[dict]) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def write_zoo_report(rows: list[dict], hw: HardwareSpec, out_dir, meta: dict) -> dict:
    """results.csv, one frontier PNG per objective, and report.html in `out_dir` (atomically).

    When the rows and notes are exactly those of the report already in `out_dir`, nothing is
    redrawn: a repeated run is near-instant.
    """
    import hashlib
    import json
    from pathlib import Path

    from netfrontier.frontier import annotate
    from netfrontier.report import write_atomic
    from netfrontier.report.html import write_report
    from netfrontier.report.plots import plot_all

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, lines = annotate(rows)
    stable = {k: v for k, v in meta.items() if k not in ("date", "command")}
    digest = hashlib.sha256(json.dumps([rows, stable, hw.digest], sort_keys=True,
                                       default=str).encode()).hexdigest()
    stamp = out / ".netfrontier-report"
    paths = {"csv": out / "results.csv", "html": out / "report.html"}
    if stamp.exists() and stamp.read_text() == digest and all(p.exists() for p in paths.values()):
        return paths
    write_atomic(paths["csv"], rows_to_csv(rows))
    images = plot_all(rows, lines, out)
    paths.update(images)
    paths["html"] = write_report(rows, lines, meta, out, images)
    write_atomic(stamp, digest)
    return paths
