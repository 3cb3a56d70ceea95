"""`sweep`: cost models on every configuration of a hardware design space (cost/sweep.py)."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import typer

from netfrontier.cli import app, common

OBJECTIVES = {"latency": "latency_s", "dram": "dram_bytes", "energy": "energy_j"}


@app.command()
def sweep(
    hw: str = typer.Option(..., "--hw", help="base preset (analytical) or YAML file"),
    vary: list[str] = typer.Option(..., "--vary", help="KEY=VALUES, e.g. onchip_mb=0.5..64:log:8, "
                                   "dram_gbps=6,12,25,50, cores=1,2,4,8, tile.n=16,32,64, "
                                   "depthwise=fused|unfused|none (repeat for more keys)"),
    models: str = typer.Option(None, "--models", help="comma-separated model names or globs "
                               "over the zoo (e.g. 'mobilenet_v2,resnet50' or 'resnet*')"),
    zoo: bool = typer.Option(False, "--zoo", help="every zoo model"),
    objective: str = typer.Option("latency", help="latency | dram | energy (frontier, summary)"),
    wbits: int = typer.Option(None, "--wbits", help="weight bits (default: the preset's)"),
    pair: str = typer.Option("mobilenet_v2,resnet50", "--pair", help="the two models of the "
                             "efficiency heatmap (A,B: A's utilization over B's)"),
    out: Path = typer.Option(..., "--out", help="directory for points.csv, the heatmap, the "
                             "frontier and summary.json"),
    store: Path = typer.Option(None, "--store", help="SQLite store (default: user cache)"),
) -> None:
    """Every (model, configuration) of a design space, from one capture per model: CSV of all
    points, model-pair efficiency heatmap, zoo frontier averaged over the configurations."""
    from netfrontier.cost import sweep as sw
    from netfrontier.errors import OptionError
    from netfrontier.hardware.registry import get_hardware
    from netfrontier.store import Store

    if objective not in OBJECTIVES:
        raise OptionError(f"unknown objective '{objective}' (use {', '.join(OBJECTIVES)})")
    if (models is None) == (not zoo):
        raise OptionError("name --models LIST or pass --zoo")
    pair_names = [p.strip() for p in pair.split(",")]
    if len(pair_names) != 2 or not all(pair_names):
        raise OptionError(f"--pair takes two model names, A,B; got '{pair}'")
    grid = sw.parse_vary(vary)
    base = get_hardware(hw)
    specs = sw.grid_specs(base, grid)  # every value checked before any capture
    if wbits is not None:
        from netfrontier.cost.analytical import check_bits

        check_bits(base, wbits, base.default_abits)
    common.check_out_dir(out)
    db = Store(store)
    graphs, top1 = _graphs(base, models, zoo, db)
    points = sw.grid(grid)
    results = {}
    with common.Progress(f"sweeping {len(points)} configurations") as bar:
        bar.set_total(len(graphs))
        for name, graph in graphs.items():
            results[name] = sw.sweep_costs(graph, specs, wbits=wbits)
            bar.update(name)
    _write_points(out, grid, points, results, top1)
    summary = _summary(grid, points, results, top1, OBJECTIVES[objective])
    heat = _heatmap(out, grid, points, results, pair_names, base.name)
    if heat:
        summary["heatmap"] = heat
    if summary.get("frontier"):
        _plot_frontier(out, summary, objective, base.name, len(points))
    from netfrontier.report import write_atomic

    write_atomic(out / "summary.json", json.dumps(summary, indent=1, default=float))
    rows = []
    for name in sorted(results, key=lambda n: summary["models"][n]["geomean"]):
        m = summary["models"][name]
        rows.append([name, f"{m['geomean']:.4g}", f"{m['min']:.4g}", f"{m['max']:.4g}",
                     f"{100 * m['array_utilization_geomean']:.0f}%",
                     "" if m.get("share_on_frontier") is None else
                     f"{100 * m['share_on_frontier']:.0f}%"])
    common.print_table(f"{base.name}: {len(points)} configurations x {len(results)} models "
                       f"({OBJECTIVES[objective]}, geometric mean over the configurations)",
                       ["model", "geomean", "min", "max", "array util.", "on frontier"], rows,
                       right=["geomean", "min", "max", "array util.", "on frontier"])
    common.console.print(f"wrote {out / 'points.csv'} ({len(points) * len(results)} points), "
                         f"{out / 'summary.json'}" + (f", {heat['png']}" if heat else ""),
                         highlight=False)


def _graphs(base, models: str | None, zoo: bool, db) -> tuple[dict, dict]:
    """{model name: graph} (captured once, kept in the store) and {model: top-1 or None}."""
    import fnmatch

    from netfrontier.errors import UnknownModelError
    from netfrontier.zoo import cached_zoo_entries, zoo_rows

    entries = {e.name: e for e in cached_zoo_entries(db)}
    if zoo:
        names = list(entries)
    else:
        names = []
        for item in (m.strip() for m in models.split(",") if m.strip()):
            if any(ch in item for ch in "*?["):
                hits = [n for n, e in entries.items()
                        if fnmatch.fnmatch(n, item) or fnmatch.fnmatch(e.arch, item)]
                if not hits:
                    raise UnknownModelError(f"no zoo model matches '{item}'")
                names += hits
            else:
                names.append(item)
        if not names:
            raise UnknownModelError("--models names no model")
    names = list(dict.fromkeys(names))
    if zoo:  # capture missing zoo graphs in parallel workers (zoo.py), into the store
        with common.Progress("capturing the zoo models") as bar:
            zoo_rows(base, store=db, progress=bar.update, on_total=bar.set_total)
    graphs, top1 = {}, {}
    from netfrontier.measure.published import _graph

    for n in names:
        e = entries.get(n)
        if e is None:
            from netfrontier.models.registry import resolve

            e = resolve(n)[1]  # a plain name (resnet50 = its default weights), a file, ...
        graphs[n] = _graph(n, e.resolution or 224, 1, db)
        top1[n] = (e.top1, e.top1_source) if e.top1 is not None else None
    return graphs, top1


def _write_points(out: Path, grid: dict, points: list[dict], results: dict, top1: dict) -> None:
    from netfrontier.report import write_atomic

    keys = list(grid)
    cols = ["model"] + keys + ["latency_s", "dram_bytes", "energy_j", "utilization",
                               "array_utilization", "unsupported_layers", "top1"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for name, r in results.items():
        t1 = "" if top1.get(name) is None else top1[name][0]
        for k, p in enumerate(points):
            w.writerow([name] + [p[key] for key in keys] +
                       [f"{r['latency_s'][k]:.6g}", f"{r['dram_bytes'][k]:.6g}",
                        f"{r['energy_j'][k]:.6g}", f"{r['utilization'][k]:.4f}",
                        f"{r['array_utilization'][k]:.4f}", int(r['unsupported_layers'][k]), t1])
    write_atomic(out / "points.csv", buf.getvalue())


def _summary(grid: dict, points: list[dict], results: dict, top1: dict, col: str) -> dict:
    from netfrontier.cost.sweep import frontier_over_configs, geomean
    from netfrontier.frontier import comparable_top1

    models = {}
    for name, r in results.items():
        models[name] = {"geomean": float(geomean(r[col])), "min": float(r[col].min()),
                        "max": float(r[col].max()),
                        "array_utilization_geomean": float(geomean(np.maximum(
                            r["array_utilization"], 1e-9)))}
    summary = {"configurations": len(points), "vary": grid, "objective": col, "models": models}
    named = [n for n in results if top1.get(n) is not None]
    rows = [{"top1": top1[n][0], "top1_source": top1[n][1]} for n in named]
    t1 = comparable_top1(rows) if rows else np.array([])
    keep = [i for i, v in enumerate(t1) if np.isfinite(v)]
    if len(keep) >= 2:
        names = [named[i] for i in keep]
        costs = np.array([results[n][col] for n in names])
        f = frontier_over_configs(costs, t1[keep])
        summary["frontier"] = []
        for i, n in enumerate(names):
            models[n]["share_on_frontier"] = float(f["share_on_frontier"][i])
            summary["frontier"].append({"model": n, "top1": float(t1[keep][i]),
                                        "geomean": float(f["geomean_cost"][i]),
                                        "on_mean_frontier": bool(f["on_mean_frontier"][i]),
                                        "share_on_frontier": float(f["share_on_frontier"][i])})
    return summary


def _heatmap(out: Path, grid: dict, points: list[dict], results: dict, pair: list[str],
             hw_name: str) -> dict | None:
    """Model A's utilization over model B's on two numeric axes (on-chip memory × bandwidth
    when both vary), the other varied keys' values as panels (categorical) or geometric means."""
    from netfrontier.cost.sweep import geomean

    a, b = pair
    numeric = [k for k, v in grid.items() if k != "depthwise" and len(v) > 1]
    if a not in results or b not in results or not numeric:
        return None
    x = "onchip_mb" if "onchip_mb" in numeric else numeric[0]
    rest = [k for k in numeric if k != x]
    y = "dram_gbps" if "dram_gbps" in rest else (rest[0] if rest else None)
    panels = grid.get("depthwise", [None]) if "depthwise" in grid else [None]
    ratio = results[a]["utilization"] / np.maximum(results[b]["utilization"], 1e-30)
    xs, ys = grid[x], grid[y] if y else [None]
    tables = {}
    for panel in panels:
        m = np.full((len(ys), len(xs)), np.nan)
        for i, yv in enumerate(ys):
            for j, xv in enumerate(xs):
                sel = [k for k, p in enumerate(points) if p[x] == xv and (y is None or p[y] == yv)
                       and (panel is None or p["depthwise"] == panel)]
                if sel:
                    m[i, j] = float(geomean(ratio[sel]))
        tables[str(panel)] = m
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from netfrontier.report import write_png

    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels) + 0.8, 4.2),
                             squeeze=False)
    vmax = max(np.nanmax(t) for t in tables.values())
    for ax, panel in zip(axes[0], panels):
        m = tables[str(panel)]
        im = ax.imshow(m, origin="lower", cmap="viridis", vmin=0, vmax=max(vmax, 1e-9),
                       aspect="auto")
        ax.set_xticks(range(len(xs)), [f"{v:g}" for v in xs], fontsize=7, rotation=45)
        ax.set_yticks(range(len(ys)), [f"{v:g}" if v is not None else "" for v in ys], fontsize=7)
        ax.set_xlabel(x)
        ax.set_ylabel(y or "")
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if m[i, j] < 0.6 * vmax else "black")
        ax.set_title(f"depthwise: {panel}" if panel else "", fontsize=8)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label=f"{a} / {b} utilization")
    fig.suptitle(f"{hw_name}: {a}'s utilization (MACs / (latency x peak)) over {b}'s, "
                 "geometric mean over the other varied keys", fontsize=9)
    png = write_png(fig, out / f"heatmap_{a}_vs_{b}.png")
    return {"png": str(png), "x": x, "y": y, "pair": pair, "x_values": xs, "y_values": ys,
            "ratio": {k: v.tolist() for k, v in tables.items()}}


def _plot_frontier(out: Path, summary: dict, objective: str, hw_name: str, n_configs: int):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from netfrontier.report import write_atomic, write_png

    f = summary["frontier"]
    cost = np.array([r["geomean"] for r in f])
    t1 = np.array([r["top1"] for r in f])
    share = np.array([r["share_on_frontier"] for r in f])
    on = np.array([r["on_mean_frontier"] for r in f])
    scale = 1e3 if objective == "latency" else 1.0
    fig, ax = plt.subplots(figsize=(7, 5))
    sc = ax.scatter(cost * scale, t1, c=share, cmap="plasma", vmin=0, vmax=1, s=16)
    order = np.argsort(cost[on])
    ax.step(cost[on][order] * scale, t1[on][order], where="post", color="#333", lw=1)
    for i in np.nonzero(on | (share >= 0.5))[0]:
        ax.annotate(f[i]["model"].split(".")[0], (cost[i] * scale, t1[i]),
                    fontsize=6, xytext=(3, -3), textcoords="offset points")
    unit = {"latency": "ms", "energy": "J", "dram": "bytes"}[objective]
    ax.set(xscale="log", xlabel=f"{objective} ({unit}), geometric mean over {n_configs} "
           "configurations", ylabel="ImageNet top-1 (%)",
           title=f"{hw_name} design space: frontier of the mean; colour = share of "
                 "configurations on whose own frontier the model is")
    ax.title.set_fontsize(8)
    fig.colorbar(sc, ax=ax, label="share of configurations on the frontier")
    ax.grid(True, which="both", alpha=0.2)
    write_png(fig, out / f"frontier_{objective}.png")
    cbuf = io.StringIO()
    w = csv.DictWriter(cbuf, fieldnames=list(f[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(sorted(f, key=lambda r: r["geomean"]))
    write_atomic(out / f"frontier_{objective}.csv", cbuf.getvalue())
