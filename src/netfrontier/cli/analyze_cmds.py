"""`analyze`, `zoo` and `recommend`: the main job from the command line."""
from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import typer
from netfrontier.cli import app
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
    cells = [(r["name"], r["op"], si(r["macs"], ""), si(r["weight_bytes"], "B"),
              si(r["dram_bytes"], "B"), si(r["latency_s"], "s"),
              f"{100 * r['utilization']:.0f}%" if r["macs"] else "",
              f"[{style[r['bound']]}]{r['bound']}[/]") for r in table.rows()]
    print_table(f"{graph.model} on {spec.name} (W{table.wbits}A{table.abits}, "
                f"{table.precision}, batch {batch}, {graph.resolution} px)",
                ("layer", "op", "MACs", "weights", "DRAM", "latency", "util", "bound"), cells,
                right=("MACs", "weights", "DRAM", "latency", "util"))
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


@app.command()
def zoo(
    hw: str = typer.Option("img-series4-1core", "--hw", help="preset name or YAML file"),
    filter: str = typer.Option(None, "--filter", help="glob on model or architecture name"),
    wbits: int = typer.Option(None, help="weight bits (default: the preset's)"),
    abits: int = typer.Option(None, help="activation bits (default: the preset's)"),
    batch: int = typer.Option(1, help="images per inference"),
    out: Path = typer.Option(Path("zoo-report"), "--out", help="output directory"),
    store: Path = typer.Option(None, "--store", help="SQLite store (default: user cache)"),
) -> None:
    """Cost the whole zoo, draw the frontier, write results.csv, plots and report.html."""
    from netfrontier.hardware.registry import get_hardware
    from netfrontier.store import Store, tool_version
    from netfrontier.zoo import write_zoo_report, zoo_rows

    _check_positive("batch", batch)
    check_out_dir(out)
    spec = get_hardware(hw)
    db = Store(store)
    with Progress(f"costing the zoo on {spec.name}") as bar:
        rows = zoo_rows(spec, filter, wbits=wbits, abits=abits, batch=batch, store=db,
                        progress=bar.update, on_total=bar.set_total)
    _attach_measurements(rows, db, spec)
    meta = {"hardware": spec.name, "description": spec.description,
            "peak_ops_per_s": 2 * spec.peak_macs_per_s(rows[0]["precision"]),
            "tool_version": tool_version(), "command": " ".join(["netfrontier"] + sys.argv[1:]),
            "date": datetime.date.today().isoformat(),
            "notes": _notes(spec, rows)}
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


def _notes(spec, rows) -> list[str]:
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


@app.command()
def recommend(
    hw: str = typer.Option("img-series4-1core", "--hw", help="preset name or YAML file"),
    min_top1: float = typer.Option(..., "--min-top1", help="required ImageNet top-1 (%)"),
    objective: str = typer.Option("latency", help="latency | dram | energy"),
    max_params: float = typer.Option(None, "--max-params", help="parameter budget"),
    filter: str = typer.Option(None, "--filter", help="glob on model or architecture name"),
    wbits: int = typer.Option(None, help="weight bits (default: the preset's)"),
    no_fallback: bool = typer.Option(False, "--no-fallback",
                                     help="exclude models with layers the chip cannot run"),
    as_json: bool = typer.Option(False, "--json"),
    store: Path = typer.Option(None, "--store", help="SQLite store (default: user cache)"),
) -> None:
    """The cheapest zoo model that reaches a top-1 target on this hardware."""
    from netfrontier.frontier import recommend as pick
    from netfrontier.hardware.registry import get_hardware
    from netfrontier.store import Store
    from netfrontier.zoo import zoo_rows

    check_number("min-top1", min_top1, lo=0, hi=100)
    check_number("max-params", max_params, lo=0, lo_open=True)
    spec = get_hardware(hw)
    rows = zoo_rows(spec, filter, wbits=wbits, store=Store(store))
    best = pick(rows, min_top1, objective, max_params, allow_fallback=not no_fallback)
    if as_json:
        print(json.dumps(best))
        return
    console.print(
        f"[bold]{best['model']}[/bold] on {spec.name}: top-1 {best['top1']:.2f}% "
        f"({best['top1_source']}), latency {si(best['latency_s'], 's')}, "
        f"DRAM {si(best['dram_bytes'], 'B')}, energy {si(best['energy_j'], 'J')}, "
        f"{best['params'] / 1e6:.1f} M params"
        + (f" [red](falls back to host for {best['unsupported_ops']})[/red]"
           if best["unsupported_layers"] else ""))
