"""`analyze`, `zoo` and `recommend`: the main job from the command line."""
from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import typer
from netfrontier.cli import app
from netfrontier.errors import OptionError
from netfrontier.cli.common import check_positive as _check_positive
from netfrontier.cli.common import (Progress, check_number, check_out_dir, console, err,
                                    print_table, si)


@app.command()
def analyze(
    model: str = typer.Argument(..., help="zoo name (resnet50, resnet50.IMAGENET1K_V1), "
                                          "timm/<arch>, file.onnx or package.module:function"),
    hw: str = typer.Option("img-series4-1core", "--hw", help="preset name or YAML file"),
    wbits: int = typer.Option(None, help="weight bits (default: the preset's)"),
    abits: int = typer.Option(None, help="activation bits (default: the preset's)"),
    batch: int = typer.Option(1, help="images per inference"),
    resolution: int = typer.Option(None, help="input size in pixels (default: native)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of tables"),
) -> None:
    """Cost one model on one accelerator, per layer, with a roofline verdict per row."""
    from netfrontier.cost.analytical import estimate
    from netfrontier.hardware.registry import get_hardware
    from netfrontier.models.registry import capture

    _check_positive("batch", batch)
    _check_positive("resolution", resolution)
    spec = get_hardware(hw)
    graph = capture(model, batch=batch, resolution=resolution)
    table = estimate(graph, spec, wbits=wbits, abits=abits)
    peak = 2 * spec.peak_macs_per_s(table.precision)
    if as_json:
        sys.stdout.write(table.to_json(peak_ops_per_s=peak) + "\n")
        return
    style = {"compute": "green", "memory": "yellow", "overhead": "cyan", "unsupported": "red",
             "unknown": "magenta"}
    task = (graph.meta or {}).get("task") or "classification"
    groups = _row_groups(graph, spec, table) if task != "classification" else None
    cells = [((groups[i],) if groups else ()) +
             (r["name"], r["op"], si(r["macs"], ""), si(r["weight_bytes"], "B"),
              si(r["dram_bytes"], "B"), si(r["latency_s"], "s"),
              f"{100 * r['utilization']:.0f}%" if r["macs"] else "",
              f"[{style[r['bound']]}]{r['bound']}[/]") for i, r in enumerate(table.rows())]
    print_table(f"{graph.model} on {spec.name} (W{table.wbits}A{table.abits}, "
                f"{table.precision}, batch {batch}, {graph.resolution} px)",
                (("group",) if groups else ()) +
                ("layer", "op", "MACs", "weights", "DRAM", "latency", "util", "bound"), cells,
                right=("MACs", "weights", "DRAM", "latency", "util"))
    if groups:
        _print_groups(graph, spec, table)
    tot = table.totals()
    console.print(
        f"[bold]{graph.model}[/bold]: {si(tot['macs'], 'MAC')}, {si(tot['params'], '')} params | "
        f"latency {si(tot['latency_s'], 's')} | DRAM {si(tot['dram_bytes'], 'B')} | "
        f"energy {si(tot['energy_j'], 'J')} | achieved {si(tot['achieved_ops_per_s'], 'op/s')} "
        f"of {si(peak, 'op/s')} peak ({100 * tot['achieved_ops_per_s'] / peak:.1f}%)")
    if tot["unsupported_layers"]:
        console.print(f"[red]{tot['unsupported_layers']} layers fall back to "
                      f"{spec.fallback.host}: {', '.join(tot['unsupported_ops'])}[/red]")
    if tot["unknown_layers"]:
        console.print(f"[magenta]{tot['unknown_layers']} layers of unknown cost "
                      f"({', '.join(tot['unknown_ops'])}): counted as one vector op per output "
                      "element, so the totals are lower bounds[/magenta]")


def _row_groups(graph, spec, table) -> list[str]:
    """The part of the network (graph.table.GROUPS) of each cost row."""
    groups = list(graph.layer_table(spec.fusion).groups)
    return groups + ["runtime"] * (len(table.columns["name"]) - len(groups))


def _print_groups(graph, spec, table) -> None:
    """Where the time goes: latency, host share, DRAM and MACs per part of the network, and
    the post-processing counts the capture states."""
    from netfrontier.graph.table import GROUPS
    from netfrontier.zoo import group_totals

    parts = group_totals(graph, table, spec.fusion)
    total = table.latency_s or 1.0
    cells = []
    for g in list(GROUPS) + ["runtime"]:
        d = parts.get(g)
        if not d:
            continue
        host = ", ".join(d["host_ops"])
        cells.append((g, str(d["rows"]), si(d["macs"], ""), si(d["dram_bytes"], "B"),
                      si(d["latency_s"], "s"), f"{100 * d['latency_s'] / total:.1f}%",
                      si(d["host_latency_s"], "s") if d["host_latency_s"] else "",
                      host))
    print_table(f"where the time goes: {graph.model} on {spec.name}",
                ("group", "rows", "MACs", "DRAM", "latency", "share", "on host",
                 "host ops"), cells, right=("rows", "MACs", "DRAM", "latency", "share",
                                            "on host"))
    counts = dict((graph.meta or {}).get("postprocess") or {})
    rule = counts.pop("rule", "")
    if counts:
        console.print("post-processing at stated counts: " + ", ".join(
            f"{k} {v}" for k, v in counts.items()) + (f" ({rule})" if rule else ""),
            highlight=False)


@app.command()
def zoo(
    hw: str = typer.Option("img-series4-1core", "--hw", help="preset name or YAML file"),
    filter: str = typer.Option(None, "--filter", help="glob on model or architecture name"),
    wbits: int = typer.Option(None, help="weight bits (default: the preset's)"),
    abits: int = typer.Option(None, help="activation bits (default: the preset's)"),
    batch: int = typer.Option(1, help="images per inference"),
    out: Path = typer.Option(Path("zoo-report"), "--out", help="output directory"),
    store: Path = typer.Option(None, "--store", help="SQLite store (default: user cache)"),
    task: str = typer.Option("classification", "--task",
                             help="classification | detection | segmentation"),
    metric: str = typer.Option(None, "--metric", help="the task's metric on the y axis "
                               "(detection: box_map, mask_map, kp_map; segmentation: miou, "
                               "pixel_acc; default: the first)"),
) -> None:
    """Cost the whole zoo, draw the frontier, write results.csv, plots and report.html."""
    from netfrontier.hardware.registry import get_hardware
    from netfrontier.store import Store, tool_version
    from netfrontier.zoo import write_zoo_report, zoo_rows

    _check_positive("batch", batch)
    metric = _check_task(task, metric)
    check_out_dir(out)
    spec = get_hardware(hw)
    db = Store(store)
    label = "the zoo" if task == "classification" else f"the {task} zoo"
    with Progress(f"costing {label} on {spec.name}") as bar:
        rows = zoo_rows(spec, filter, wbits=wbits, abits=abits, batch=batch, store=db,
                        progress=bar.update, on_total=bar.set_total, task=task, metric=metric)
    _attach_measurements(rows, db, spec)
    meta = {"hardware": spec.name, "description": spec.description,
            "peak_ops_per_s": 2 * spec.peak_macs_per_s(rows[0]["precision"]),
            "tool_version": tool_version(), "command": " ".join(["netfrontier"] + sys.argv[1:]),
            "date": datetime.date.today().isoformat(),
            "notes": _notes(spec, rows)}
    if task != "classification":
        from netfrontier.models.base import METRIC_LABELS, METRIC_SHORT

        meta.update(task=task, metric=metric, metric_label=METRIC_LABELS[metric],
                    metric_short=METRIC_SHORT[metric])
    paths = write_zoo_report(rows, spec, out, meta)
    err.print(f"{len(rows)} models on {spec.name}: {paths['csv']}, {paths['html']}")


def _attach_measurements(rows: list[dict], db, spec) -> None:
    """Measured latency beside the prediction, where this device's profile has measurements."""
    device = spec.calibration.provenance and spec.sources.get("device")
    if not device:
        return
    found = db.latest_measurements(device=device)
    for r in rows:
        hits = [m for (model, _dev, _rt, _dt, b), m in found.items()
                if model == r["model"] and b == r["batch"]]
        r["measured_latency_s"] = hits[-1]["median_s"] if hits else None


def _check_task(task: str, metric: str | None) -> str:
    """--task and --metric checked before any work; the metric the task is judged by."""
    from netfrontier.zoo import check_task

    for opt, value in (("--task", task), ("--metric", metric)):
        if value is not None and not value.strip():
            raise OptionError(f"{opt} is empty")
    return check_task(task, metric)


def _notes(spec, rows) -> list[str]:
    task = rows[0].get("task", "classification") if rows else "classification"
    if task != "classification":
        return _task_notes(spec, rows)
    notes = [f"Top-1 figures: {rows[0]['top1_source']}." if rows else "",
             "Costs are per batch from netfrontier's analytical model "
             f"(W{rows[0]['wbits']}A{rows[0]['abits']}, {rows[0]['precision']})." if rows else ""]
    partly = [r["model"] for r in rows if r["unsupported_layers"]]
    if partly:
        notes.append(f"{len(partly)} models run partly on the fallback host "
                     f"({spec.fallback.host}): their costs include the hand-off.")
    unknown = sorted({o for r in rows for o in str(r.get("unknown_ops") or "").split(";") if o})
    if unknown:
        notes.append(f"{sum(1 for r in rows if r.get('unknown_layers'))} models hold operators "
                     f"netfrontier cannot cost ({', '.join(unknown)}): their costs are lower "
                     "bounds.")
    return [n for n in notes if n]


def _task_notes(spec, rows) -> list[str]:
    """Report notes of a detection or segmentation zoo: where its figures come from, the stated
    post-processing counts, what runs on the host."""
    from netfrontier.models.base import METRIC_SHORT

    r0 = rows[0]
    sources = sorted({str(r.get("accuracy_source") or "") for r in rows} - {""})
    notes = [f"{METRIC_SHORT.get(r0['metric'], r0['metric'])} figures: {'; '.join(sources)}.",
             "Costs are per batch from netfrontier's analytical model "
             f"(W{r0['wbits']}A{r0['abits']}, {r0['precision']}).",
             "Post-processing (anchors, box decoding, score selection, NMS, RoIAlign, mask "
             "pasting, keypoint decoding) is captured at its worst case: every score passes its "
             "threshold and NMS suppresses nothing, so every cap the model has is reached "
             "(stated_counts in results.csv; netfrontier.graph.postprocess)."]
    partly = [r for r in rows if r["unsupported_layers"]]
    if partly:
        ops = sorted({o for r in partly for o in str(r.get("post_host_ops") or "").split(";")
                      if o})
        notes.append(f"{len(partly)} models run partly on the fallback host "
                     f"({spec.fallback.host}): their costs include the hand-off"
                     + (f"; post-processing on the host: {', '.join(ops)}" if ops else "") + ".")
    return notes


@app.command()
def recommend(
    hw: str = typer.Option("img-series4-1core", "--hw", help="preset name or YAML file"),
    min_top1: float = typer.Option(None, "--min-top1", help="required ImageNet top-1 (%; "
                                   "classification)"),
    min_map: float = typer.Option(None, "--min-map", help="required figure of a detection "
                                  "(COCO box mAP, or --metric) or segmentation (mIoU) task"),
    task: str = typer.Option("classification", "--task",
                             help="classification | detection | segmentation"),
    metric: str = typer.Option(None, "--metric", help="the task's metric (default: its first)"),
    objective: str = typer.Option("latency", help="latency | dram | energy"),
    max_params: float = typer.Option(None, "--max-params", help="parameter budget"),
    filter: str = typer.Option(None, "--filter", help="glob on model or architecture name"),
    wbits: int = typer.Option(None, help="weight bits (default: the preset's)"),
    no_fallback: bool = typer.Option(False, "--no-fallback",
                                     help="exclude models with layers the chip cannot run"),
    as_json: bool = typer.Option(False, "--json"),
    store: Path = typer.Option(None, "--store", help="SQLite store (default: user cache)"),
) -> None:
    """The cheapest zoo model that reaches a top-1 (or mAP, mIoU) target on this hardware."""
    from netfrontier.frontier import recommend as pick
    from netfrontier.hardware.registry import get_hardware
    from netfrontier.models.base import METRIC_SHORT
    from netfrontier.store import Store
    from netfrontier.zoo import zoo_rows

    metric = _check_task(task, metric)
    if task == "classification":
        if min_map is not None:
            raise OptionError("--min-map is for the detection and segmentation tasks; a "
                              "classification target is --min-top1 (or pass --task detection)")
        if min_top1 is None:
            raise OptionError("recommend needs --min-top1 (the classification target)")
        target, opt = min_top1, "min-top1"
    else:
        if min_top1 is not None:
            raise OptionError(f"--min-top1 is for the classification task; a {task} target is "
                              f"--min-map ({METRIC_SHORT[metric]})")
        if min_map is None:
            raise OptionError(f"recommend --task {task} needs --min-map (the "
                              f"{METRIC_SHORT[metric]} to reach)")
        target, opt = min_map, "min-map"
    check_number(opt, target, lo=0, hi=100)
    check_number("max-params", max_params, lo=0, lo_open=True)
    spec = get_hardware(hw)
    rows = zoo_rows(spec, filter, wbits=wbits, store=Store(store), task=task, metric=metric)
    if task == "classification":
        best = pick(rows, target, objective, max_params, allow_fallback=not no_fallback)
    else:
        best = pick(rows, target, objective, max_params, allow_fallback=not no_fallback,
                    metric="accuracy", label=METRIC_SHORT[metric])
    if as_json:
        print(json.dumps(best))
        return
    if task != "classification":
        parts = ", ".join(f"{g} {si(best[f'latency_{c}_s'], 's')}" for g, c in (
            ("backbone", "backbone"), ("neck", "neck"), ("head", "head"),
            ("post-processing", "post")) if best.get(f"latency_{c}_s"))
        console.print(
            f"[bold]{best['model']}[/bold] on {spec.name}: {METRIC_SHORT[metric]} "
            f"{best['accuracy']:.1f} ({best['accuracy_source']}), latency "
            f"{si(best['latency_s'], 's')} ({parts}), DRAM {si(best['dram_bytes'], 'B')}, "
            f"energy {si(best['energy_j'], 'J')}, {best['params'] / 1e6:.1f} M params"
            + (f" [red](falls back to host for {best['unsupported_ops']})[/red]"
               if best["unsupported_layers"] else ""), highlight=False)
        return
    console.print(
        f"[bold]{best['model']}[/bold] on {spec.name}: top-1 {best['top1']:.2f}% "
        f"({best['top1_source']}), latency {si(best['latency_s'], 's')}, "
        f"DRAM {si(best['dram_bytes'], 'B')}, energy {si(best['energy_j'], 'J')}, "
        f"{best['params'] / 1e6:.1f} M params"
        + (f" [red](falls back to host for {best['unsupported_ops']})[/red]"
           if best["unsupported_layers"] else ""))
