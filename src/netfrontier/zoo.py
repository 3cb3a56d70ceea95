"""The main job: cost every zoo model on a preset, keep results in the store, annotate the frontier.

Captures run in worker processes (one per core); each result is stored as soon as it arrives, so
an interrupted run resumes, and a repeated run reads the store without importing PyTorch.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict

from netfrontier.cost.analytical import DEFAULT_MODEL, MODEL_REVISION, check_bits
from netfrontier.cost.base import CostOptions
from netfrontier.hardware.registry import get_hardware
from netfrontier.hardware.spec import HardwareSpec
from netfrontier.models.base import ModelEntry
from netfrontier.store import Store, lib_version, tool_version
from netfrontier.workers import worker_pool

Progress = Callable[[str], None]


def _list_zoo(task: str = "classification") -> list[dict]:
    from netfrontier.models.registry import zoo_entries  # imports PyTorch

    return [asdict(e) for e in zoo_entries(task=task)]


def check_task(task: str, metric: str | None = None) -> str:
    """The metric a task is judged by (its default, or `metric` if it is one of the task's);
    OptionError for an unknown task or a metric of another task."""
    from netfrontier.errors import OptionError
    from netfrontier.models.base import METRICS, TASKS

    if task not in TASKS:
        raise OptionError(f"unknown task '{task}' (use {', '.join(TASKS)})")
    if metric is None:
        return METRICS[task][0]
    if metric not in METRICS[task]:
        raise OptionError(f"'{metric}' is not a {task} metric (use {', '.join(METRICS[task])})")
    return metric


def cached_zoo_entries(store: Store, pattern: str | None = None,
                       pool: ProcessPoolExecutor | None = None,
                       task: str = "classification") -> list[ModelEntry]:
    """Zoo entries of `task` ("all": every task's), from the store when the library versions
    match (no PyTorch import).

    On a miss the list is built in `pool` when one is given, so that the calling process stays
    free of PyTorch (and of its memory).
    """
    import fnmatch

    from netfrontier.models.registry import zoo_signature

    if task != "all":
        check_task(task)
    key = "|".join(["zoo-entries", tool_version(), lib_version("torchvision"), zoo_signature()]
                   + ([] if task == "classification" else [task]))
    cached = store.get_cached(key)
    if cached is None:
        cached = pool.submit(_list_zoo, task).result() if pool else _list_zoo(task)
        store.put_cached(key, cached)
    entries = [ModelEntry(**d) for d in cached]
    if pattern:
        entries = [e for e in entries
                   if fnmatch.fnmatch(e.name, pattern) or fnmatch.fnmatch(e.arch, pattern)]
    return entries


# where a detector's time goes: per part of the network (graph.table.GROUPS), in zoo rows and
# the CSV of a detection or segmentation report
GROUP_COLUMNS = {"pre-processing": "pre", "backbone": "backbone", "neck": "neck", "head": "head",
                 "post-processing": "post"}


def group_totals(graph, table, fusion: str = "full") -> dict:
    """{group: latency, the part of it on the fallback host, DRAM, energy, MACs, host op kinds}
    for a CostTable of `graph` (rows beyond the graph's, such as a profile's per-call
    overhead, count as "runtime"). `fusion` is the preset's (the rows follow that layer
    table)."""
    groups = list(graph.layer_table(fusion).groups)
    c = table.columns
    n = len(c["latency_s"])
    groups += ["runtime"] * (n - len(groups))
    out: dict = {}
    for i, g in enumerate(groups):
        d = out.setdefault(g, {"latency_s": 0.0, "host_latency_s": 0.0, "dram_bytes": 0.0,
                               "energy_j": 0.0, "macs": 0, "rows": 0, "host_ops": []})
        d["latency_s"] += float(c["latency_s"][i])
        d["dram_bytes"] += float(c["dram_bytes"][i])
        d["energy_j"] += float(c["energy_j"][i])
        d["macs"] += int(c["macs"][i])
        d["rows"] += 1
        if bool(c["on_host"][i]):
            d["host_latency_s"] += float(c["latency_s"][i])
            for op in str(c["op"][i]).split("+"):
                if op not in d["host_ops"]:
                    d["host_ops"].append(op)
    return out


def _totals_row(entry: ModelEntry, totals: dict, hw: HardwareSpec,
                metric: str | None = None) -> dict:
    peak = hw.peak_macs_per_s(totals["precision"])
    task = getattr(entry, "task", "classification") or "classification"
    metric = metric or ("top1" if task == "classification" else None)
    from netfrontier.models.base import METRICS

    metric = metric or METRICS[task][0]
    extra = {"task": task, "metric": metric, "accuracy": entry.metric(metric),
             "accuracy_source": entry.top1_source if task == "classification"
             else entry.metrics_source}
    if task != "classification":
        extra.update({m: entry.metrics.get(m) for m in METRICS[task]})
        groups = totals.get("groups") or {}
        for g, col in GROUP_COLUMNS.items():
            extra[f"latency_{col}_s"] = groups.get(g, {}).get("latency_s", 0.0)
        extra["host_latency_s"] = sum(d.get("host_latency_s", 0.0) for d in groups.values())
        extra["post_host_ops"] = ";".join(groups.get("post-processing", {}).get("host_ops", []))
        extra["stated_counts"] = ";".join(f"{k}={v}" for k, v in
                                          (totals.get("stated_counts") or {}).items())
    return {**_base_row(entry, totals, hw, peak), **extra}


def _base_row(entry: ModelEntry, totals: dict, hw: HardwareSpec, peak: float) -> dict:
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


def cost_totals(graph, hw: HardwareSpec, opts: CostOptions) -> dict:
    """CostTable totals of `graph`, with the per-group breakdown and the stated
    post-processing counts of a detection or segmentation graph."""
    table = DEFAULT_MODEL.estimate(graph, hw, opts)
    totals = table.totals()
    if (graph.meta or {}).get("task", "classification") != "classification":
        totals["groups"] = group_totals(graph, table, hw.fusion)
        counts = dict((graph.meta or {}).get("postprocess") or {})
        counts.pop("rule", None)
        totals["stated_counts"] = counts
    return totals


def _capture_worker(name: str, batch: int, resolution: int, hw_path: str, opts: CostOptions):
    """In a worker process: capture one model, cost it, return (graph JSON, totals)."""
    from netfrontier.models.registry import resolve

    src, entry = resolve(name)
    graph = src.capture(entry, batch=batch, resolution=resolution)
    return graph.to_json(), cost_totals(graph, get_hardware(hw_path), opts)


def zoo_rows(hardware: str | HardwareSpec, pattern: str | None = None, *, wbits: int | None = None,
             abits: int | None = None, batch: int = 1, store: Store | None = None,
             workers: int | None = None, progress: Progress | None = None,
             on_total: Callable[[int], None] | None = None, task: str = "classification",
             metric: str | None = None, models: list[str] | None = None) -> list[dict]:
    """Cost every zoo entry of `task` (matching `pattern`) on `hardware`; one dict per entry.

    `on_total(n)` is told how many entries there are, `progress(name)` each one done.
    Rows carry `task`, `metric` (the task's default, or `metric`), `accuracy` (the entry's
    published figure for it) and `accuracy_source`; detection and segmentation rows also their
    task's metrics and the latency per part of the network (GROUP_COLUMNS). `models`: only
    these entries (by name), whatever their task (`task` is then ignored).
    """
    hw = get_hardware(hardware) if isinstance(hardware, str) else hardware
    if models is None:
        metric = check_task(task, metric)
    opts = CostOptions(wbits=wbits, abits=abits)
    check_bits(hw, wbits or hw.default_wbits, abits or hw.default_abits)
    store = store or Store()
    n = workers or min(os.cpu_count() or 1, 4)
    with worker_pool(n) as pool:
        return _zoo_rows(hw, pattern, opts, batch, store, pool, progress, on_total,
                         task="all" if models is not None else task,
                         metric=None if models is not None else metric, models=models)


def _zoo_rows(hw, pattern, opts, batch, store, pool, progress, on_total,
              task: str = "classification", metric: str | None = None,
              models: list[str] | None = None) -> list[dict]:
    from netfrontier.errors import UnknownModelError

    entries = cached_zoo_entries(store, pattern, pool, task=task)
    if models is not None:
        wanted = set(models)
        entries = [e for e in entries if e.name in wanted]
    if not entries and models is not None:
        return []  # none of the models named is in the zoo: the caller says what that means
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
        totals = cost_totals(graph, hw, opts)
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
        pending = set(futs)
        while pending:
            # a bounded wait: Ctrl-C can be delivered to one of the pool's threads, and then it
            # interrupts nothing; the main thread must come back to the interpreter to raise it
            finished, pending = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
            for fut in finished:
                keep(fut)
    except KeyboardInterrupt:  # keep every capture that finished, then stop (workers.py)
        for fut in [f for f in futs if f.done() and not f.cancelled() and not f.exception()]:
            keep(fut)
        raise
    return [_totals_row(e, done[keys[e.name]], hw, metric) for e in entries]


CSV_COLUMNS = ("model", "arch", "weights", "source", "resolution", "batch", "wbits", "abits",
               "precision", "hardware", "top1", "top1_source", "macs", "params", "latency_s",
               "dram_bytes", "energy_j", "achieved_ops_per_s", "utilization", "array_utilization",
               "unsupported_layers", "unsupported_ops", "unknown_layers", "unknown_ops",
               "on_frontier_latency", "on_frontier_dram",
               "on_frontier_energy", "below_line_latency", "below_line_dram", "below_line_energy",
               "measured_latency_s")




def task_csv_columns(task: str) -> tuple[str, ...]:
    """results.csv columns of a task's report: the classification ones (CSV_COLUMNS), with the
    task's metrics in place of top-1, and the latency per part of the network."""
    from netfrontier.models.base import METRICS

    if task == "classification":
        return CSV_COLUMNS
    i = CSV_COLUMNS.index("top1")
    head = CSV_COLUMNS[:i] + ("task", "metric", "accuracy", "accuracy_source") + \
        METRICS[task] + CSV_COLUMNS[i + 2:]
    return head + tuple(f"latency_{c}_s" for c in GROUP_COLUMNS.values()) + \
        ("host_latency_s", "post_host_ops", "stated_counts")


def rows_to_csv(rows: list[dict], columns: tuple[str, ...] | None = None) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns or CSV_COLUMNS), extrasaction="ignore")
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
    task = meta.get("task") or "classification"
    ycol = "top1" if task == "classification" else "accuracy"
    rows, lines = annotate(rows, metric=ycol)
    stable = {k: v for k, v in meta.items() if k not in ("date", "command")}
    digest = hashlib.sha256(json.dumps([rows, stable, hw.digest], sort_keys=True,
                                       default=str).encode()).hexdigest()
    stamp = out / ".netfrontier-report"
    paths = {"csv": out / "results.csv", "html": out / "report.html"}
    if stamp.exists() and stamp.read_text() == digest and all(p.exists() for p in paths.values()):
        return paths
    write_atomic(paths["csv"], rows_to_csv(rows, task_csv_columns(task)))
    label = meta.get("metric_label")
    images = plot_all(rows, lines, out, metric=ycol, metric_label=label,
                      metric_short=meta.get("metric_short"))
    paths.update(images)
    paths["html"] = write_report(rows, lines, meta, out, images)
    write_atomic(stamp, digest)
    return paths
