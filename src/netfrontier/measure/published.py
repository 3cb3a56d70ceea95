"""Predicted against published latency of real chips: `netfrontier validate --published`.

A published-figures file is a CSV, one measured figure a row: `source` (which publication;
the held-out rule works per source), `preset`, `model` (as netfrontier names it), `resolution`,
`batch`, `wbits`, `abits`, `latency_ms`, `measures` (what the figure measures, a key of
`measurements.yaml` beside the file), `citation` (page or file, table, row, column), and
optionally `dram_mb`, `source_model` and `note`. A file with a `layer` column instead holds
per-layer figures of one paper (Eyeriss): each row names its network and the index of its
convolution layer.

What a figure measures is modelled, not fitted: `measurements.yaml` says per kind which rows
of the cost table count ("all", or "conv" for a chip that runs only the convolutions) and which
host time the figure includes (a fixed time per inference, and ops per input element on the
preset's fallback host), each with its source. No factor is fitted per model or per preset.

Held-out rows: within each source, the rows sorted by (preset, model, resolution, batch) and
every second one of them, starting with the second, is held out (`held_out_flags`). Figures
of the held-out half are reported apart; no modelling change is to be judged on them.
"""
from __future__ import annotations

import csv
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from netfrontier.errors import MeasurementError
from netfrontier.measure.validate import spearman

REQUIRED = ("source", "preset", "model", "resolution", "batch", "wbits", "abits", "latency_ms",
            "measures", "citation")
LAYER_REQUIRED = ("model", "batch", "resolution", "layer", "conv_index", "total_ms", "dram_mb",
                  "citation")
KIND_KEYS = {"description", "counts", "host_fixed_s", "host_input_ops", "sources"}
WITHIN = 0.25  # the band the report counts (±25%)


# --- the nets a paper measured that torchvision does not have --------------------------------

def eyeriss_alexnet():
    """The original (Caffe) AlexNet's feature layers as Eyeriss ran them (JSSC 2017, Table III):
    96 11×11/4 filters on 227×227, then 256 5×5, 384 3×3, 384 3×3 and 256 3×3, CONV2, CONV4 and
    CONV5 in two groups, 3×3/2 max pooling after CONV1, CONV2 and CONV5. LRN is left out: it
    keeps the shape and is not a CONV layer the chip runs."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(3, 96, 11, stride=4), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1, groups=2), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1, groups=2), nn.ReLU(), nn.MaxPool2d(3, 2))


# --- reading ------------------------------------------------------------------------------

def _read_csv(path: Path) -> tuple[list[str], list[dict]]:
    if not path.is_file():
        raise MeasurementError(f"published-figures file '{path}' does not exist")
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise MeasurementError(f"published-figures file '{path}' cannot be read ({exc})") \
            from None


def _number(path, line, row, key, typ=float, positive=True):
    text = (row.get(key) or "").strip()
    try:
        v = typ(text) if typ is float else int(text)
    except ValueError:
        raise MeasurementError(f"{path}, line {line}: '{key}' must be a number, got "
                               f"{text!r}") from None
    if not math.isfinite(v) or (positive and v <= 0):
        raise MeasurementError(f"{path}, line {line}: '{key}' must be a positive number, "
                               f"got {text!r}")
    return v


def load_published(path: str | Path) -> tuple[str, list[dict]]:
    """("figures" | "layers", rows) of one published-figures CSV, every field checked: a bad
    line is one error naming the file and the line."""
    p = Path(path)
    fields, raw = _read_csv(p)
    kind = "layers" if "layer" in fields else "figures"
    need = LAYER_REQUIRED if kind == "layers" else REQUIRED
    missing = [k for k in need if k not in fields]
    if missing:
        raise MeasurementError(f"{p}: missing column '{missing[0]}' (a published-figures file "
                               f"has {', '.join(need)})")
    if not raw:
        raise MeasurementError(f"{p}: no rows")
    out = []
    for n, r in enumerate(raw, 2):
        empty = [k for k in need if not (r.get(k) or "").strip()]
        if empty:
            raise MeasurementError(f"{p}, line {n}: '{empty[0]}' is empty")
        row = {k: (v or "").strip() for k, v in r.items() if k is not None}
        row["line"] = n
        row["file"] = str(p)
        for key in ("resolution", "batch") + (("wbits", "abits") if kind == "figures" else
                                               ("conv_index",)):
            row[key] = _number(p, n, r, key, int, positive=key != "conv_index")
        if row.get("conv_index", 0) < 0:
            raise MeasurementError(f"{p}, line {n}: 'conv_index' must be 0 or more")
        for key in ("latency_ms",) if kind == "figures" else ("total_ms",):
            row[key] = _number(p, n, r, key)
        if (r.get("dram_mb") or "").strip():
            row["dram_mb"] = _number(p, n, r, "dram_mb")
        else:
            row["dram_mb"] = None
        out.append(row)
    return kind, out


def load_kinds(path: str | Path) -> dict:
    """The measurement kinds of `measurements.yaml`, each checked (counts, host figures,
    sources)."""
    from netfrontier.hardware.checks import parse_yaml

    p = Path(path)
    if not p.is_file():
        raise MeasurementError(f"no '{p.name}' beside the published figures ({p}): it says "
                               "what each figure measures")
    try:
        d = parse_yaml(p.read_text(), str(p))
    except UnicodeDecodeError:
        raise MeasurementError(f"{p}: not UTF-8 text") from None
    except Exception as exc:  # SpecError from the strict YAML parser
        raise MeasurementError(str(exc)) from None
    if not isinstance(d, dict) or not d:
        raise MeasurementError(f"{p}: must map each measurement kind to its description")
    kinds = {}
    for name, k in d.items():
        if not isinstance(k, dict):
            raise MeasurementError(f"{p}: '{name}' must be a mapping")
        extra = sorted(set(k) - KIND_KEYS)
        if extra:
            raise MeasurementError(f"{p}: unknown key '{name}.{extra[0]}'")
        if k.get("counts", "all") not in ("all", "conv"):
            raise MeasurementError(f"{p}: '{name}.counts' must be all or conv")
        for key in ("host_fixed_s", "host_input_ops"):
            v = k.get(key, 0)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
                    or v < 0 or (key == "host_fixed_s" and v > 10):
                raise MeasurementError(f"{p}: '{name}.{key}' must be a number of "
                                       f"{'seconds (0-10)' if key == 'host_fixed_s' else 'ops'}"
                                       f", got {v!r}")
        srcs = k.get("sources") or {}
        if not isinstance(srcs, dict) or not str(srcs.get("what", "")).strip():
            raise MeasurementError(f"{p}: '{name}' needs 'sources.what' (where it is said what "
                                   "the figure measures)")
        kinds[name] = {"counts": k.get("counts", "all"),
                       "host_fixed_s": float(k.get("host_fixed_s", 0)),
                       "host_input_ops": float(k.get("host_input_ops", 0)),
                       "description": str(k.get("description", "")), "sources": srcs}
    return kinds


def held_out_flags(rows: list[dict]) -> list[bool]:
    """The fixed rule: per source, rows sorted by (preset, model, resolution, batch); every
    second one, starting with the second, is held out."""
    flags = [False] * len(rows)
    by_source: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_source.setdefault(r["source"], []).append(i)
    for idx in by_source.values():
        order = sorted(idx, key=lambda i: (rows[i]["preset"], rows[i]["model"],
                                           rows[i]["resolution"], rows[i]["batch"]))
        for k, i in enumerate(order):
            flags[i] = k % 2 == 1
    return flags


# --- predicting ---------------------------------------------------------------------------

def _graph(model: str, resolution: int, batch: int, store):
    """A captured graph from the store, capturing (and storing) it on a miss."""
    from netfrontier.store import Store

    key = Store.graph_key(model, resolution, batch)
    graph = store.get_graph(key) if store is not None else None
    if graph is None:
        from netfrontier.models.registry import capture

        graph = capture(model, batch=batch, resolution=resolution)
        if store is not None:
            store.put_graph(key, model, resolution, batch, graph.to_json())
    return graph


def counted_rows(table, counts: str) -> np.ndarray:
    """The cost-table rows a figure covers: all, or those holding a convolution."""
    if counts == "all":
        return np.ones(len(table.columns["op"]), bool)
    return np.array([any(p in ("conv", "grouped_conv", "depthwise_conv")
                         for p in str(o).split("+")) for o in table.columns["op"]])


def predict_row(row: dict, kind: dict, hw, graph) -> dict:
    """Predicted latency and DRAM traffic of one published figure (what it measures)."""
    from netfrontier.cost.analytical import estimate

    table = estimate(graph, hw, wbits=row["wbits"], abits=row["abits"])
    sel = counted_rows(table, kind["counts"])
    input_elems = float(graph.layer_table(hw.fusion).graph_input_elems.max(initial=0))
    host = kind["host_fixed_s"] + kind["host_input_ops"] * input_elems / hw.fallback.ops_per_s
    chip = float(table.columns["latency_s"][sel].sum())
    return {"predicted_s": chip + host, "chip_s": chip, "host_s": host,
            "predicted_dram_mb": float(table.columns["dram_bytes"][sel].sum()) / 1e6,
            "macs": int(table.columns["macs"][sel].sum()), "table": table, "selected": sel}


def stats(rows: list[dict]) -> dict:
    """Spearman, median |error| and the share within ±25% (and the count) of some rows."""
    if not rows:
        return {"rows": 0, "spearman": float("nan"), "mdape_pct": float("nan"),
                "within_25_pct": float("nan"), "median_signed_pct": float("nan")}
    m = np.array([r["measured_s"] for r in rows])
    p = np.array([r["predicted_s"] for r in rows])
    err = (p - m) / m
    return {"rows": len(rows), "spearman": spearman(m, p) if len(rows) > 2 else float("nan"),
            "mdape_pct": float(100 * np.median(np.abs(err))),
            "within_25_pct": float(100 * np.mean(np.abs(err) <= WITHIN)),
            "median_signed_pct": float(100 * np.median(err))}


def validate_published(files: list[str | Path], hw_filter: str | None = None, store=None,
                       progress: Callable[..., None] | None = None,
                       on_total: Callable[[int], None] | None = None) -> dict:
    """Every figure of `files` predicted on its preset; per-preset figures for the held-out
    rows, the rest and all; per-layer comparisons for files with a `layer` column."""
    from netfrontier.hardware.registry import get_hardware

    figures, layers, kinds = [], [], {}
    for f in files:
        kind, rows = load_published(f)
        if kind == "layers":
            layers += rows
            continue
        ks = load_kinds(Path(f).parent / "measurements.yaml")
        for r in rows:
            if r["measures"] not in ks:
                raise MeasurementError(f"{r['file']}, line {r['line']}: measurement kind "
                                       f"'{r['measures']}' is not described in "
                                       f"{Path(f).parent / 'measurements.yaml'}")
            kinds[(r["file"], r["measures"])] = ks[r["measures"]]
        figures += rows
    flags = held_out_flags(figures)
    for r, h in zip(figures, flags):
        r["held_out"] = h
    if hw_filter:
        figures = [r for r in figures if r["preset"] == hw_filter]
        layers = [r for r in layers if hw_filter == "eyeriss-v1"]
        if not figures and not layers:
            raise MeasurementError(f"no published figure is for preset '{hw_filter}'")
    specs = {name: get_hardware(name) for name in sorted({r["preset"] for r in figures} |
                                                         ({"eyeriss-v1"} if layers else set()))}
    if on_total:
        on_total(len(figures) + len(layers))
    results = []
    for r in figures:
        hw = specs[r["preset"]]
        graph = _graph(r["model"], r["resolution"], r["batch"], store)
        pred = predict_row(r, kinds[(r["file"], r["measures"])], hw, graph)
        measured = r["latency_ms"] / 1e3
        out = {k: r[k] for k in ("source", "preset", "model", "resolution", "batch", "wbits",
                                 "abits", "measures", "held_out")}
        out.update(measured_s=measured, predicted_s=pred["predicted_s"], chip_s=pred["chip_s"],
                   host_s=pred["host_s"], error_pct=100 * (pred["predicted_s"] - measured) /
                   measured, macs=pred["macs"], measured_dram_mb=r["dram_mb"],
                   predicted_dram_mb=pred["predicted_dram_mb"],
                   source_model=r.get("source_model", ""), citation=r["citation"])
        results.append(out)
        if progress:
            progress(f"{r['preset']} {r['model']}")
    layer_results = compare_layers(layers, specs.get("eyeriss-v1"), store, progress)
    per_preset = {}
    for name in specs:
        rs = [r for r in results if r["preset"] == name]
        if rs:
            per_preset[name] = {"held_out": stats([r for r in rs if r["held_out"]]),
                                "rest": stats([r for r in rs if not r["held_out"]]),
                                "all": stats(rs),
                                "sources": sorted({r["source"] for r in rs})}
    return {"rows": results, "per_preset": per_preset, "layers": layer_results,
            "all": {"held_out": stats([r for r in results if r["held_out"]]),
                    "rest": stats([r for r in results if not r["held_out"]]),
                    "all": stats(results)}}


def compare_layers(layers: list[dict], hw, store=None, progress=None) -> list[dict]:
    """Per-layer predicted against published latency and DRAM traffic (convolution layers of
    a network in order: `conv_index` k is the k-th cost-table row holding a convolution)."""
    if not layers:
        return []
    from netfrontier.cost.analytical import estimate

    out, tables = [], {}
    for r in layers:
        key = (r["model"], r["resolution"], r["batch"])
        if key not in tables:
            graph = _graph(r["model"], r["resolution"], r["batch"], store)
            t = estimate(graph, hw)
            conv = np.nonzero(counted_rows(t, "conv"))[0]
            tables[key] = (t, conv)
        t, conv = tables[key]
        if r["conv_index"] >= len(conv):
            raise MeasurementError(f"{r['file']}, line {r['line']}: {r['model']} has only "
                                   f"{len(conv)} convolution layers")
        i = conv[r["conv_index"]]
        c = t.columns
        out.append({"model": r["model"], "layer": r["layer"], "row": str(c["name"][i]),
                    "measured_s": r["total_ms"] / 1e3, "predicted_s": float(c["latency_s"][i]),
                    "measured_dram_mb": r["dram_mb"],
                    "predicted_dram_mb": float(c["dram_bytes"][i]) / 1e6,
                    "bound": str(c["bound"][i]), "citation": r["citation"]})
        if progress:
            progress(f"eyeriss {r['layer']}")
    return out


# --- reporting ----------------------------------------------------------------------------

def _fmt_stats(s: dict) -> str:
    if not s["rows"]:
        return "—"
    sp = "—" if not math.isfinite(s["spearman"]) else f"{s['spearman']:.2f}"
    return f"{s['rows']}: ρ {sp}, {s['mdape_pct']:.0f}%, {s['within_25_pct']:.0f}%"


def markdown(result: dict) -> str:
    """The tables of docs/hardware-presets.md: per preset, held-out against the rest; every
    figure; the per-layer comparison."""
    lines = ["| preset | sources | held-out: rows, Spearman, median \\|error\\|, within ±25% "
             "| rest | all | median signed error (all) |", "|---|---|---|---|---|---|"]
    for name, s in result["per_preset"].items():
        lines.append(f"| `{name}` | {', '.join(s['sources'])} | {_fmt_stats(s['held_out'])} | "
                     f"{_fmt_stats(s['rest'])} | {_fmt_stats(s['all'])} | "
                     f"{s['all']['median_signed_pct']:+.0f}% |")
    a = result["all"]
    lines.append(f"| all presets | | {_fmt_stats(a['held_out'])} | {_fmt_stats(a['rest'])} | "
                 f"{_fmt_stats(a['all'])} | {a['all']['median_signed_pct']:+.0f}% |")
    lines += ["", "| preset | model | res | batch | source model | measured ms | predicted ms "
              "(chip + host) | error | held out | source |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(result["rows"], key=lambda r: (r["preset"], r["source"], r["model"])):
        model = r["model"].split(":")[-1]
        lines.append(f"| `{r['preset']}` | {model} | {r['resolution']} | {r['batch']} | "
                     f"{r['source_model']} | {1e3 * r['measured_s']:.4g} | "
                     f"{1e3 * r['predicted_s']:.4g} ({1e3 * r['chip_s']:.4g} + "
                     f"{1e3 * r['host_s']:.3g}) | {r['error_pct']:+.0f}% | "
                     f"{'yes' if r['held_out'] else ''} | {r['source']} |")
    if result["layers"]:
        lines += ["", "| network | layer | measured ms | predicted ms | error | measured DRAM MB "
                  "| predicted DRAM MB | error | bound |", "|---|---|---|---|---|---|---|---|---|"]
        for r in result["layers"]:
            e = 100 * (r["predicted_s"] - r["measured_s"]) / r["measured_s"]
            de = 100 * (r["predicted_dram_mb"] - r["measured_dram_mb"]) / r["measured_dram_mb"]
            lines.append(f"| {r['model'].split(':')[-1]} | {r['layer']} | "
                         f"{1e3 * r['measured_s']:.4g} | {1e3 * r['predicted_s']:.4g} | {e:+.0f}% "
                         f"| {r['measured_dram_mb']:.3g} | {r['predicted_dram_mb']:.3g} | "
                         f"{de:+.0f}% | {r['bound']} |")
        ms = np.array([r["measured_s"] for r in result["layers"]])
        ps = np.array([r["predicted_s"] for r in result["layers"]])
        md = np.array([r["measured_dram_mb"] for r in result["layers"]])
        pd = np.array([r["predicted_dram_mb"] for r in result["layers"]])
        lines += ["", f"Per layer ({len(ms)} layers): latency Spearman {spearman(ms, ps):.2f}, "
                  f"median |error| {100 * np.median(np.abs(ps - ms) / ms):.0f}%; DRAM traffic "
                  f"Spearman {spearman(md, pd):.2f}, median |error| "
                  f"{100 * np.median(np.abs(pd - md) / md):.0f}%."]
    return "\n".join(lines) + "\n"


def plot_published(result: dict, path: str | Path) -> Path:
    """Log-log scatter of predicted against published latency, one colour per preset, held-out
    rows as open markers, the diagonal and the ±25% band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from netfrontier.report import write_png

    rows = result["rows"]
    m = np.array([r["measured_s"] for r in rows]) * 1e3
    p = np.array([r["predicted_s"] for r in rows]) * 1e3
    lo, hi = min(m.min(), p.min()) / 1.5, max(m.max(), p.max()) * 1.5
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    xs = np.geomspace(lo, hi, 50)
    ax.fill_between(xs, xs * (1 - WITHIN), xs * (1 + WITHIN), color="#dfeedf", label="±25%")
    ax.plot(xs, xs, color="#2a7a2a", lw=1)
    colors = plt.get_cmap("tab10")
    for k, name in enumerate(result["per_preset"]):
        sel = np.array([r["preset"] == name for r in rows])
        held = np.array([r["held_out"] for r in rows])
        c = colors(k % 10)
        ax.scatter(m[sel & ~held], p[sel & ~held], s=18, color=c, label=name)
        ax.scatter(m[sel & held], p[sel & held], s=22, facecolors="none", edgecolors=[c])
    ax.set(xscale="log", yscale="log", xlim=(lo, hi), ylim=(lo, hi),
           xlabel="published latency (ms)", ylabel="predicted latency (ms)",
           title=f"{len(rows)} published figures (open markers: held out); "
                 f"held-out Spearman {result['all']['held_out']['spearman']:.2f}")
    ax.title.set_fontsize(9)
    ax.legend(loc="upper left", fontsize=7)
    ax.grid(True, which="both", alpha=0.2)
    return write_png(fig, path, dpi=110)


def write_outputs(result: dict, out: str | Path) -> dict:
    """published.csv (every figure), published-layers.csv, published.json (the statistics),
    published.md (the tables) and published.png in `out`."""
    import io
    import json

    from netfrontier.report import write_atomic

    out = Path(out)
    paths = {}
    for name, rows in (("published.csv", result["rows"]),
                       ("published-layers.csv", result["layers"])):
        if not rows:
            continue
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        write_atomic(out / name, buf.getvalue())
        paths[name] = out / name
    write_atomic(out / "published.json", json.dumps(
        {"per_preset": result["per_preset"], "all": result["all"]}, indent=1))
    write_atomic(out / "published.md", markdown(result))
    paths["published.md"] = out / "published.md"
    if result["rows"]:
        paths["published.png"] = plot_published(result, out / "published.png")
    return paths
