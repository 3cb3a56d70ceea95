"""What each page asks for, as plain functions over the served zoo: frontier, what-if, model,
compare, studies. They call the library (ZooState.cost_rows → analytical estimate,
frontier.annotate, hardware.spec.spec_from_dict) and return JSON-ready dicts; nothing here
knows about HTTP.
"""
from __future__ import annotations

import copy
import json
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

from netfrontier.frontier import (ON_IMAGENET_SCALE, OBJECTIVES, annotate, comparable_top1,
                                  pareto_front)
from netfrontier.hardware import checks
from netfrontier.hardware.spec import _RANGES, LOOP_DIMS, HardwareSpec, spec_from_dict
from netfrontier.report.html import natural_key
from netfrontier.report.plots import WELL_KNOWN
from netfrontier.serve import figures
from netfrontier.serve.params import ACCURACY, BadRequest, bits, clip
from netfrontier.serve.state import ZooState, finite

MAX_YAML_BYTES = 64 * 1024
MAX_STUDY_BYTES = 32 * 2**20
TABLE_KEYS = ("model", "arch", "family", "top1", "top1_source", "latency_s", "dram_bytes",
              "energy_j", "macs", "params", "bound", "bound_share", "unsupported_layers",
              "unsupported_ops", "unknown_layers")
# what-if knobs: spec key -> (label, display unit, display factor, integer)
KNOBS = {"onchip_bytes": ("On-chip memory", "MiB", 2**-20, False),
         "dram_bytes_per_s": ("DRAM bandwidth", "GB/s", 1e-9, False),
         "cores": ("Cores", "", 1, True),
         "clock_hz": ("Clock", "GHz", 1e-9, False)}
TILE_MAX = 65536
SPAN = 16.0  # sliders reach a sixteenth to sixteen times the preset's figure


# hardware -----------------------------------------------------------------------------------
def hardware_summary(hw: HardwareSpec) -> dict:
    return {"name": hw.name, "description": hw.description, "kind": hw.kind,
            "calibrated": bool(hw.calibration.provenance),
            "runtime_model": bool(hw.calibration.device_s),
            "weight_bits": list(hw.weight_bits), "activation_bits": list(hw.activation_bits),
            "default_wbits": hw.default_wbits, "default_abits": hw.default_abits,
            "knobs": knobs(hw)}


def knobs(hw: HardwareSpec) -> list[dict]:
    """Slider ranges around the chip's own figures, inside the spec's plausibility limits."""
    out = []
    for key, (label, unit, factor, integer) in KNOBS.items():
        value = float(getattr(hw, key))
        lo, hi = _RANGES[key]
        if value > 0:
            smin, smax = max(value / SPAN, lo, 1.0), min(value * SPAN, hi)
        else:  # no on-chip memory: offer 64 KiB to 1 GiB
            smin, smax = 2.0**16, 2.0**30
        if integer:
            smin, smax = max(1, int(smin)), max(int(smax), int(value) * 2, 2)
        out.append({"key": key, "label": label, "unit": unit, "factor": factor,
                    "integer": integer, "value": value, "min": smin, "max": smax,
                    "limits": [lo, hi], "log": not integer or smax / smin > 64})
    for dim in LOOP_DIMS:
        if hw.tile[dim] > 1:
            v = hw.tile[dim]
            out.append({"key": f"tile.{dim}", "label": f"Array tile {dim}", "unit": "",
                        "factor": 1, "integer": True, "value": v, "log": True,
                        "min": max(1, v // 16), "max": min(v * 16, TILE_MAX),
                        "limits": [1, 1e6]})
    return out


# the frontier -------------------------------------------------------------------------------
def select(rows: list[dict], family: str, accuracy: str) -> tuple[list[dict], list[str]]:
    """Rows of the family whose top-1 is of the asked kind: 'reference' is the published
    ImageNet scale (frontier.ON_IMAGENET_SCALE: reference and estimated figures), 'measured'
    the rest (a sample's accuracy, which scores differently); notes on what was left out."""
    fam = [r for r in rows if family in ("all", r["family"])]
    want = accuracy == "reference"
    kept = [r for r in fam if str(r["top1_source"]).startswith(ON_IMAGENET_SCALE) == want]
    notes = []
    other = len(fam) - len(kept)
    if other:
        alt = ACCURACY[1 - ACCURACY.index(accuracy)]
        notes.append(f"{other} models with only a {alt} top-1 are left out: published "
                     f"ImageNet figures and accuracies measured on a sample are different "
                     f"scales (switch top-1 to '{alt}' to see them)")
    return kept, notes


def frontier_data(state: ZooState, hw: HardwareSpec, wbits: int, abits: int, batch: int,
                  objective: str, family: str, accuracy: str) -> tuple[list[dict], object, list]:
    rows, notes = select(state.cost_rows(hw, wbits, abits, batch), family, accuracy)
    rows, lines = annotate(rows)
    keep = np.isfinite(comparable_top1(rows)) if rows else np.zeros(0, bool)
    rows = [r for r, k in zip(rows, keep) if k]
    return rows, lines[objective], notes


def table_rows(rows: list[dict], objective: str) -> list[dict]:
    out = []
    for r in rows:
        d = {k: r.get(k) for k in TABLE_KEYS}
        d["on_frontier"] = bool(r.get(f"on_frontier_{objective}"))
        d["below_line"] = r.get(f"below_line_{objective}")
        out.append(d)
    return sorted(out, key=lambda d: natural_key(d["model"]))


def frontier(state: ZooState, hw: HardwareSpec, wbits: int, abits: int, batch: int,
             objective: str, family: str, accuracy: str) -> dict:
    rows, line, notes = frontier_data(state, hw, wbits, abits, batch, objective, family,
                                      accuracy)
    notes += _row_notes(rows, hw)
    title = f"Top-1 vs {figures.UNITS[objective][3].lower()} on {hw.name} (W{wbits}A{abits})"
    return {"hardware": hw.name, "objective": objective, "count": len(rows),
            "figure": figures.frontier(rows, line, objective, title, batch),
            "rows": table_rows(rows, objective), "line": _line(line), "notes": notes}


def _line(line) -> dict | None:
    return None if line is None else {"slope": line.slope, "intercept": line.intercept,
                                      "points": line.points}


def _row_notes(rows: list[dict], hw: HardwareSpec) -> list[str]:
    notes = []
    partly = [r for r in rows if r["unsupported_layers"]]
    if partly:
        notes.append(f"{len(partly)} models run layers on the fallback host "
                     f"({hw.fallback.host}); their costs include the hand-off (◆ on the plot)")
    lower = [r for r in rows if r["unknown_layers"]]
    if lower:
        notes.append(f"{len(lower)} models hold operators of unknown cost: lower bounds (■)")
    return notes


# what-if ------------------------------------------------------------------------------------
@lru_cache(maxsize=64)
def _raw_file(path: str, mtime: float) -> dict:
    return checks.parse_yaml(Path(path).read_text(encoding="utf-8"), path)


def base_spec(hw: HardwareSpec | None, text: str | None) -> tuple[HardwareSpec, dict]:
    """The spec a what-if starts from and its YAML mapping: a registry preset, or uploaded
    YAML (size-limited, no anchors or aliases, strict parse, every HardwareSpec rule)."""
    if text is None:
        p = Path(hw.path)
        return hw, _raw_file(str(p), p.stat().st_mtime)
    if not isinstance(text, str):
        raise BadRequest("'yaml' must be the text of a hardware YAML file")
    size = len(text.encode("utf-8", "replace"))
    if size > MAX_YAML_BYTES:
        raise BadRequest(f"uploaded YAML is {size:,} bytes; the limit is {MAX_YAML_BYTES:,}",
                         413)
    _no_aliases(text)
    raw = checks.parse_yaml(text, "uploaded YAML")
    return spec_from_dict(raw, "uploaded YAML"), raw


def _no_aliases(text: str) -> None:
    """Refuse YAML anchors and aliases: a few hundred bytes of them can expand to gigabytes."""
    try:
        for event in yaml.parse(text, Loader=checks.StrictLoader):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise BadRequest("uploaded YAML: anchors and aliases (&name, *name) are not "
                                 "accepted; write each figure out")
    except yaml.YAMLError:
        return  # parse_yaml reports it with the line


def _number(key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"what-if: '{key}' must be a number, got {clip(repr(value))}")
    if not np.isfinite(value):
        raise BadRequest(f"what-if: '{key}' must be finite, got {value!r}")
    return value


def apply_whatif(hw: HardwareSpec, raw: dict, changes) -> tuple[HardwareSpec, dict, list[str]]:
    """The base YAML mapping with the knobs changed, validated by spec_from_dict (the same rules
    as any preset file). The weight buffer keeps its share of on-chip memory. Returns the new
    spec, its mapping (a valid preset) and the changes in words."""
    if not isinstance(changes, dict):
        raise BadRequest("'set' must map knob names to numbers")
    allowed = set(KNOBS) | {"tile"}
    for k in changes:
        if k not in allowed:
            raise BadRequest(f"unknown what-if knob '{clip(k, 40)}' (use "
                             f"{', '.join(sorted(allowed))})")
    out = copy.deepcopy(raw)
    sources = out.setdefault("sources", {}) if isinstance(out.get("sources"), dict) else {}
    words = []

    def note(key: str, text: str) -> None:
        was = str(sources.get(key, "")).strip()
        sources[key] = f"what-if in netfrontier serve: {text}" + (f" (was: {was})" if was else "")
        words.append(text)

    for key, value in changes.items():
        if key == "tile":
            continue
        value = _number(key, value)
        old = getattr(hw, key)
        if float(value) == float(old):
            continue
        out[key] = int(value) if KNOBS[key][3] and float(value).is_integer() else value
        label, unit, factor, _ = KNOBS[key]
        note(key, f"{label.lower()} {old * factor:.4g} → {value * factor:.4g} "
                              f"{unit}".strip())
        if key == "onchip_bytes" and hw.onchip_bytes > 0 and hw.weight_buffer_bytes > 0:
            share = hw.weight_buffer_bytes / hw.onchip_bytes
            out["weight_buffer_bytes"] = float(round(value * share))
            note("weight_buffer_bytes", f"weight buffer keeps its {100 * share:.0f}% share")
    tile = changes.get("tile")
    if tile is not None:
        if not isinstance(tile, dict):
            raise BadRequest("what-if: 'tile' must map loop dimensions (m, n, c, r, g) to sizes")
        new_tile = dict(out.get("tile") or {}) if isinstance(out.get("tile"), dict) else {}
        moved = []
        for dim, size in tile.items():
            if dim not in LOOP_DIMS:
                raise BadRequest(f"what-if: unknown tile dimension '{clip(dim, 20)}' (use "
                                 f"{', '.join(LOOP_DIMS)})")
            size = _number(f"tile.{dim}", size)
            if float(size) != float(hw.tile[dim]):
                new_tile[dim] = int(size) if float(size).is_integer() else size
                moved.append(f"{dim} {hw.tile[dim]} → {size:g}")
        if moved:
            out["tile"] = new_tile
            note("tile", "array tile " + ", ".join(moved))
    if words:
        out["name"] = f"{hw.name[:56]}-whatif"
        out["description"] = f"{hw.description} (what-if: {'; '.join(words)})"
    spec = spec_from_dict(out, f"what-if of {hw.name}") if words else hw
    return spec, out, words


def whatif(state: ZooState, hw: HardwareSpec | None, text: str | None, changes, wbits,
           abits, batch: int, objective: str, family: str, accuracy: str) -> dict:
    base, raw = base_spec(hw, text)
    with state.lock:  # the time below is the work itself, not a wait behind another request
        t0 = time.perf_counter()
        spec, _, words = apply_whatif(base, raw, changes or {})
        w, a = bits(spec, wbits, abits)
        rows, line, notes = frontier_data(state, spec, w, a, batch, objective, family,
                                          accuracy)
        t_recost = time.perf_counter() - t0
        base_rows, _, _ = frontier_data(state, base, w, a, batch, objective, family,
                                        accuracy)
    col = OBJECTIVES[objective]
    before = {r["model"]: r[col] for r in base_rows}
    title = f"Top-1 vs {figures.UNITS[objective][3].lower()}: what-if of {base.name}"
    table = table_rows(rows, objective)
    for d in table:
        d["base_cost"] = before.get(d["model"])
        d["speedup"] = finite(d["base_cost"] / d[col]) if d[col] and d["base_cost"] else None
    return {"hardware": spec.name, "base": hardware_summary(base), "changes": words,
            "spec": {k: getattr(spec, k) for k in (*KNOBS, "weight_buffer_bytes", "tile")},
            "figure": figures.frontier(rows, line, objective, title, batch, base_rows,
                                       base.name),
            "rows": table, "notes": notes + _row_notes(rows, spec), "line": _line(line),
            "recost_ms": round(1e3 * t_recost, 2), "models": len(state.by_batch[batch])}


def whatif_yaml(hw: HardwareSpec | None, text: str | None, changes) -> tuple[str, str]:
    """The modified spec as a preset file: (file name, YAML text) that load_spec accepts."""
    base, raw = base_spec(hw, text)
    spec, out, words = apply_whatif(base, raw, changes or {})
    head = (f"# {spec.name}: made in 'netfrontier serve' from {base.name}"
            + (f"; changed: {'; '.join(words)}" if words else "; unchanged") + "\n")
    body = yaml.safe_dump(out, sort_keys=False, allow_unicode=True, width=100)
    spec_from_dict(checks.parse_yaml(body, "what-if"), "what-if")  # it reads back as it is
    return f"{spec.name}.yaml", head + body


# one model ----------------------------------------------------------------------------------
def model(state: ZooState, name: str, hw: HardwareSpec, wbits: int, abits: int,
          batch: int) -> dict:
    entry = state.entry(name)
    graph = state.graph(entry.name, batch)
    table = state.estimate(entry.name, hw, wbits, abits, batch)
    vec = graph.layer_table(hw.fusion).vector_ops
    layers = []
    for i, r in enumerate(table.rows()):
        ops = 2.0 * r["macs"] if r["macs"] else float(vec[i]) if i < len(vec) else 0.0
        layers.append({
            "index": i, **{k: r[k] for k in ("name", "op", "macs", "weight_bytes", "dram_bytes",
                                            "compute_s", "memory_s", "latency_s", "energy_j",
                                            "utilization", "bound", "on_host",
                                            "cost_unknown")},
            "ops": ops, "fused": r["op"].count("+") + 1,
            "intensity": ops / r["dram_bytes"] if r["dram_bytes"] > 0 else None,
            "achieved": ops / r["latency_s"] if r["latency_s"] > 0 else 0.0})
    tot = table.totals()
    peak = 2 * hw.peak_macs_per_s(table.precision)
    vector = hw.vector_ops_per_cycle * hw.cores * hw.clock_hz
    label = f"{entry.name} on {hw.name} (W{table.wbits}A{table.abits}, batch {batch})"
    lat = table.columns["latency_s"]
    shares = {b: finite(lat[table.columns["bound"] == b].sum() / max(lat.sum(), 1e-30))
              for b in tot["bound_counts"]}
    notes = []
    if tot["unsupported_layers"]:
        notes.append(f"{tot['unsupported_layers']} layers fall back to {hw.fallback.host}: "
                     f"{', '.join(tot['unsupported_ops'])}")
    if tot["unknown_layers"]:
        notes.append(f"{tot['unknown_layers']} layers of unknown cost "
                     f"({', '.join(tot['unknown_ops'])}): the totals are lower bounds")
    return {
        "model": entry.name, "hardware": hw.name, "top1": entry.top1,
        "top1_source": entry.top1_source, "batch": batch,
        "totals": {k: tot[k] for k in ("macs", "params", "latency_s", "dram_bytes", "energy_j",
                                       "achieved_ops_per_s", "layers", "unsupported_layers",
                                       "unknown_layers", "precision", "bound_counts")},
        "peak_ops_per_s": peak, "bound_share": shares, "notes": notes, "layers": layers,
        "roofline": figures.roofline(layers, peak, vector, hw.dram_bytes_per_s,
                                     f"Roofline: {label}"),
        "time": figures.waterfall(layers, "latency_s", 1e6, "µs", "Time per layer"),
        "dram": figures.waterfall(layers, "dram_bytes", 1e-6, "MB", "DRAM bytes per layer")}


# two chips ----------------------------------------------------------------------------------
def _ranks(cost: list[float], names: list[str]) -> list[int]:
    order = sorted(range(len(cost)), key=lambda i: (cost[i], natural_key(names[i])))
    rank = [0] * len(cost)
    for pos, i in enumerate(order):
        rank[i] = pos + 1
    return rank


def compare(state: ZooState, a: HardwareSpec, b: HardwareSpec, batch: int, objective: str,
            family: str) -> dict:
    """Each model's cost and rank on both chips (each at its default bits), rank changes and
    the pairs of models whose order flips."""
    col = OBJECTIVES[objective]
    ra = {r["model"]: r for r in state.cost_rows(a, batch=batch)
          if family in ("all", r["family"])}
    rb = {r["model"]: r for r in state.cost_rows(b, batch=batch)
          if family in ("all", r["family"])}
    names = sorted(ra, key=natural_key)
    ca, cb = [ra[n][col] for n in names], [rb[n][col] for n in names]
    rank_a, rank_b = _ranks(ca, names), _ranks(cb, names)
    rows = [{"model": n, "family": ra[n]["family"], "top1": ra[n]["top1"],
             "cost_a": ca[i], "cost_b": cb[i],
             "cost_a_text": figures.cost_text(ra[n], objective),
             "cost_b_text": figures.cost_text(rb[n], objective),
             "rank_a": rank_a[i], "rank_b": rank_b[i], "change": rank_a[i] - rank_b[i],
             "ratio": finite(cb[i] / ca[i]) if ca[i] else None,
             "bound_a": ra[n]["bound"], "bound_b": rb[n]["bound"],
             "yardstick": _yardstick(state, n)}
            for i, n in enumerate(names)]
    big = max(3, -(-len(rows) // 20))  # a move worth a colour: 3 places, or 5% of the field
    ia, ib = np.array(rank_a), np.array(rank_b)
    flips = int(((ia[:, None] < ia[None, :]) & (ib[:, None] > ib[None, :])).sum())
    movers = sorted(rows, key=lambda r: (-abs(r["change"]), natural_key(r["model"])))[:5]
    known = [r for r in rows if r["yardstick"]]
    swaps = [f"{p['yardstick']} and {q['yardstick']}" for i, p in enumerate(known)
             for q in known[i + 1:] if (p["rank_a"] < q["rank_a"]) != (p["rank_b"] < q["rank_b"])]
    notes = [f"{sum(abs(r['change']) >= big for r in rows)} of {len(rows)} models move {big} "
             f"or more places; {flips} pairs of models swap order"
             + (f", among them {', '.join(swaps[:4])}" if swaps else ""),
             f"each chip at its default bits: {a.name} W{a.default_wbits}A{a.default_abits}, "
             f"{b.name} W{b.default_wbits}A{b.default_abits}"]
    return {"a": a.name, "b": b.name, "objective": objective, "rows": rows, "flips": flips,
            "big": big, "movers": [r["model"] for r in movers if r["change"]], "notes": notes,
            "figure": figures.compare(rows, a.name, b.name, objective, big)}


def _yardstick(state: ZooState, name: str) -> str:
    """The architecture name of a well-known net's default entry (labelled on the chart)."""
    e = state.entries[name]
    return e.arch if e.arch in WELL_KNOWN and e.extra.get("default", True) else ""


# studies ------------------------------------------------------------------------------------
def studies(folder: Path | None) -> dict:
    """Studies found under the server's studies folder (set at start-up, never by a request):
    quantization studies' results.json; search studies (trials) when they exist."""
    out = {"folder": str(folder) if folder else None, "studies": [], "search": [],
           "problems": []}
    files = []
    if folder and folder.is_dir():
        files = sorted(folder.glob("*/results.json")) + sorted(folder.glob("results.json"))
    for path in files:
        try:
            if path.stat().st_size > MAX_STUDY_BYTES:
                raise ValueError(f"larger than {MAX_STUDY_BYTES // 2**20} MiB")
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            if "trials" in data:
                out["search"].append(_search_study(path, data))
            elif isinstance(data.get("rows"), list) and "allocation" in data:
                out["studies"].append(_prune_study(path, data))
            elif isinstance(data.get("rows"), list):
                out["studies"].append(_quant_study(path, folder, data))
            else:
                raise ValueError("neither study rows nor search trials")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            out["problems"].append(f"{path.parent.name}/{path.name}: {exc}")
    if not out["search"]:
        where = f" under {folder}" if folder else ""
        out["search_message"] = (f"No search study exists yet: no results.json{where} holds "
                                 "search trials, so there are no trials, live Pareto front or "
                                 "hypervolume to show.")
    return out


def _quant_study(path: Path, folder: Path, data: dict) -> dict:
    from netfrontier.compress.study_report import flat_rows, frontier_rows

    meta = data.get("meta") or {}
    rows = data["rows"]
    hardware = meta.get("hardware") or sorted({h for r in rows for h in (r.get("cost") or {})})
    if isinstance(hardware, str):
        hardware = [hardware]
    plots = []
    for hw in hardware:
        pts = frontier_rows(rows, hw)
        if pts:
            front = pareto_front([p["latency_s"] for p in pts], [p["top1"] for p in pts])
            plots.append(figures.study(pts, front, hw))
    cols = (("model", "model", ""), ("variant", "variant", ""), ("method", "method", ""),
            ("rounding", "rounding", ""), ("top1", "top-1", "%"), ("top1_drop", "drop", "%"),
            ("hardware", "hardware", ""), ("latency_s", "latency", "s"),
            ("dram_bytes", "DRAM", "B"), ("energy_j", "energy", "J"),
            ("improvement_latency", "latency ×", "×"))
    return {"name": path.parent.name if path.parent != folder else folder.name,
            "kind": "quantization", "file": f"{path.parent.name}/{path.name}",
            "dataset": meta.get("dataset"), "date": meta.get("date"),
            "command": meta.get("command"), "hardware": hardware, "variants": len(rows),
            "columns": _columns(cols), "rows": [{k: r.get(k) for k, _, _ in cols}
                                                for r in flat_rows(rows)],
            "figures": plots}


def _prune_study(path: Path, data: dict) -> dict:
    """A pruning study (compress/prune_report.py): variants at their estimated top-1."""
    from netfrontier.compress.prune_report import variant_rows

    meta = data.get("meta") or {}
    rows = data["rows"]
    hardware = sorted({h for r in rows for h in (r.get("cost") or {})})
    plots = []
    for hw in hardware:
        pts = [{"model": f"{data.get('model', '')} {r.get('variant', '')}".strip(),
                "top1": r["estimated_top1"], "latency_s": r["cost"][hw]["latency_s"]}
               for r in rows if r.get("estimated_top1") is not None and hw in r.get("cost", {})]
        if pts:
            front = pareto_front([p["latency_s"] for p in pts], [p["top1"] for p in pts])
            plots.append(figures.study(pts, front, hw))
    flat = variant_rows(data)
    keys = [k for k in dict.fromkeys(k for r in flat for k in r)
            if all(not isinstance(r.get(k), (dict, list)) for r in flat)][:14]
    cols = [(k, k, "s" if k.endswith("latency_s") else "B" if k.endswith("_bytes") else
             "J" if k.endswith("energy_j") else "") for k in keys]
    return {"name": path.parent.name, "kind": "pruning", "file": f"{path.parent.name}/{path.name}",
            "dataset": meta.get("dataset"), "date": meta.get("date"),
            "command": meta.get("command"), "hardware": hardware, "variants": len(rows),
            "columns": _columns(cols), "rows": [{k: r.get(k) for k in keys} for r in flat],
            "figures": plots}


def _columns(cols) -> list[dict]:
    return [{"key": k, "label": label, "unit": unit} for k, label, unit in cols]


def _search_study(path: Path, data: dict) -> dict:
    trials = data["trials"] if isinstance(data["trials"], list) else []
    return {"name": path.parent.name, "kind": "search", "trials": len(trials),
            "hypervolume": data.get("hypervolume"), "file": f"{path.parent.name}/{path.name}"}

