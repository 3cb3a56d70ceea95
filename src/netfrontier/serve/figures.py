"""Plotly figures as plain JSON-ready dicts (data + layout); the browser only calls Plotly.react.

Colours and units are the static report's (report.plots), so both read alike. Every point of a
model carries its name in `customdata`: clicking it opens the model view.
"""
from __future__ import annotations

import numpy as np

from netfrontier.cost.base import BOUNDS
from netfrontier.frontier import TradeoffLine
from netfrontier.report.plots import C_FRONT, C_LINE, C_POINT, C_TEXT, UNITS

BOUND_COLORS = {"compute": "#2a9d4b", "memory": "#d99a1e", "overhead": "#3aa6c4",
                "unsupported": "#c0392b", "unknown": "#9b3fb5"}
C_BASE = "#9aa3ad"
FONT = {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12, "color": C_TEXT}


def num(x, unit: str = "", digits: int = 3) -> str:
    """3 significant digits with an SI prefix: 1.5e9, 'Hz' -> '1.5 GHz'."""
    x = float(x)
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1, ""),
                          (1e-3, "m"), (1e-6, "µ"), (1e-9, "n")):
        if abs(x) >= scale:
            return f"{x / scale:.{digits}g} {prefix}{unit}".strip()
    return f"{x:.{digits}g} {unit}".strip()


def cost_text(row: dict, objective: str) -> str:
    col, factor, unit, _ = UNITS[objective]
    v = row[col] * factor
    return f"{v:,.0f} {unit}" if v >= 1000 else f"{v:.3g} {unit}"


def per_what(batch: int) -> str:
    return "per inference" if batch == 1 else f"per batch of {batch}"


def _layout(title: str, **kw) -> dict:
    out = {"title": {"text": title, "x": 0.01, "font": {"size": 15}}, "font": FONT,
           "margin": {"l": 60, "r": 20, "t": 48, "b": 50}, "hovermode": "closest",
           "paper_bgcolor": "white", "plot_bgcolor": "white",
           "legend": {"orientation": "h", "y": -0.18, "x": 0}}
    out.update(kw)
    return out


def _axis(title: str, log: bool = False, **kw) -> dict:
    return {"title": {"text": title}, "type": "log" if log else "linear", "gridcolor": "#e6e9ee",
            "zeroline": False, "linecolor": "#9aa3ad", "exponentformat": "SI", **kw}


def hover(row: dict, objective: str) -> str:
    """Model, top-1 and its source, the costs, the dominant bound, host fallback."""
    lines = [f"<b>{row['model']}</b>",
             f"top-1 {row['top1']:.2f}% ({row['top1_source']})",
             " · ".join(f"{name} {cost_text(row, o)}" for name, o in
                        (("latency", "latency"), ("DRAM", "dram"), ("energy", "energy"))),
             f"{row['bound']}-bound ({100 * row['bound_share']:.0f}% of the time)"]
    if row.get("unsupported_layers"):
        lines.append(f"{row['unsupported_layers']} layers on the host: "
                     f"{row['unsupported_ops'].replace(';', ', ')}")
    if row.get("unknown_layers"):
        lines.append(f"lower bound: {row['unknown_layers']} layers of unknown cost")
    return "<br>".join(lines)


def staircase(cost: np.ndarray, top1: np.ndarray, right: float) -> tuple[list, list]:
    """The frontier as the best top-1 reachable at each budget (steps after each point)."""
    order = np.argsort(cost, kind="stable")
    xs, ys = list(cost[order]), list(top1[order])
    if xs:
        xs.append(right)
        ys.append(ys[-1])
    return xs, ys


def frontier(rows: list[dict], line: TradeoffLine | None, objective: str, title: str,
             batch: int, baseline: list[dict] | None = None, baseline_name: str = "") -> dict:
    """Top-1 against cost (log x): models, the Pareto staircase, the trade-off line, and, for a
    what-if, the unchanged preset's staircase for reference. `rows` are frontier.annotate'd."""
    col, factor, unit, quantity = UNITS[objective]
    flag = f"on_frontier_{objective}"
    x = np.array([r[col] for r in rows], float) * factor
    y = np.array([r["top1"] for r in rows], float)
    front = np.array([bool(r.get(flag)) for r in rows], bool)
    xs_all = list(x) + [r[col] * factor for r in baseline or []]
    lo, hi = (min(xs_all), max(xs_all)) if xs_all else (0.1, 10.0)
    left, right = lo / 1.6, hi * 1.6
    data = []
    if line is not None and len(rows):
        lx = [left, right]
        eq = (f"top-1 = {line.intercept - line.slope * np.log10(factor):.1f} "
              f"{'+' if line.slope >= 0 else '−'} {abs(line.slope):.2f}·log₁₀({unit})")
        data.append({"type": "scatter", "mode": "lines", "x": lx,
                     "y": [float(v) for v in line.top1_at(np.array(lx) / factor)],
                     "name": f"trade-off line: {eq}", "hoverinfo": "skip",
                     "line": {"color": C_LINE, "dash": "dash", "width": 1.5}})
    if baseline:
        bx = np.array([r[col] for r in baseline], float) * factor
        by = np.array([r["top1"] for r in baseline], float)
        bf = np.array([bool(r.get(flag)) for r in baseline], bool)
        sx, sy = staircase(bx[bf], by[bf], right)
        data.append({"type": "scatter", "mode": "lines", "x": sx, "y": sy,
                     "name": f"frontier on {baseline_name} (unchanged)", "hoverinfo": "skip",
                     "line": {"color": C_BASE, "dash": "dot", "width": 1.5, "shape": "hv"}})
    sx, sy = staircase(x[front], y[front], right)
    data.append({"type": "scatter", "mode": "lines", "x": sx, "y": sy, "name": "Pareto frontier",
                 "hoverinfo": "skip", "line": {"color": C_FRONT, "width": 2, "shape": "hv"}})
    for name, mask, color, size in (("models", ~front, C_POINT, 8),
                                    ("on the frontier", front, C_FRONT, 10)):
        idx = np.flatnonzero(mask)
        data.append({
            "type": "scatter", "mode": "markers", "name": name,
            "x": [float(x[i]) for i in idx], "y": [float(y[i]) for i in idx],
            "customdata": [rows[i]["model"] for i in idx],
            "text": [hover(rows[i], objective) for i in idx],
            "hovertemplate": "%{text}<extra></extra>",
            "marker": {"color": color, "size": size, "line": {"color": "white", "width": 1},
                       "symbol": [_symbol(rows[i]) for i in idx]}})
    layout = _layout(title, xaxis=_axis(f"{quantity} {per_what(batch)} ({unit}, log scale)",
                                        log=True),
                     yaxis=_axis("ImageNet top-1 (%)"), uirevision=objective)
    if not len(rows):
        layout["annotations"] = [{"text": "no model with a comparable top-1 matches", "x": 0.5,
                                  "y": 0.5, "xref": "paper", "yref": "paper",
                                  "showarrow": False}]
    return {"data": data, "layout": layout}


def _symbol(row: dict) -> str:
    """circle; diamond when layers fall back to the host; square when a lower bound."""
    if row.get("unknown_layers"):
        return "square"
    return "diamond" if row.get("unsupported_layers") else "circle"


def roofline(layers: list[dict], peak_ops: float, vector_ops: float, bandwidth: float,
             title: str) -> dict:
    """Arithmetic intensity (ops per DRAM byte) against achieved ops/s, with the compute,
    vector and bandwidth roofs; layers coloured by bound, fused groups as diamonds, host
    fallback as crosses. Layers without DRAM traffic sit at the right edge."""
    pts = [r for r in layers if r["ops"] > 0 and r["latency_s"] > 0]
    ai = np.array([r["intensity"] if r["intensity"] else np.nan for r in pts], float)
    finite_ai = ai[np.isfinite(ai)]
    lo = float(finite_ai.min()) / 3 if len(finite_ai) else 0.1
    hi = float(finite_ai.max()) * 3 if len(finite_ai) else 1e3
    hi = max(hi, 3 * peak_ops / bandwidth, lo * 10)
    edge = hi / 1.5  # where on-chip-only layers are drawn
    ridge = peak_ops / bandwidth
    data = [
        {"type": "scatter", "mode": "lines", "name": f"roof: {num(peak_ops, 'op/s')} peak, "
         f"{num(bandwidth, 'B/s')} DRAM", "x": [lo, ridge, hi],
         "y": [lo * bandwidth, peak_ops, peak_ops], "hoverinfo": "skip",
         "line": {"color": "#1f2630", "width": 2}},
        {"type": "scatter", "mode": "lines", "name": f"vector roof: {num(vector_ops, 'op/s')}",
         "x": [lo, vector_ops / bandwidth, hi],
         "y": [lo * bandwidth, vector_ops, vector_ops], "hoverinfo": "skip",
         "line": {"color": "#6b7480", "width": 1.2, "dash": "dash"}}]
    for b in BOUNDS:
        sel = [r for r in pts if r["bound"] == b]
        data.append({
            "type": "scatter", "mode": "markers", "name": f"{b} ({len(sel)})",
            "x": [r["intensity"] or edge for r in sel], "y": [r["achieved"] for r in sel],
            "customdata": [r["index"] for r in sel],
            "text": [_layer_hover(r) for r in sel], "hovertemplate": "%{text}<extra></extra>",
            "marker": {"color": BOUND_COLORS[b], "size": 9, "opacity": 0.85,
                       "line": {"color": "white", "width": 0.8},
                       "symbol": ["x" if r["on_host"] else "diamond" if r["fused"] > 1
                                  else "circle" for r in sel]}})
    layout = _layout(title, xaxis=_axis("arithmetic intensity (ops per DRAM byte, log)",
                                        log=True),
                     yaxis=_axis("achieved ops/s (log)", log=True))
    layout["annotations"] = [{
        "text": "◆ fused group  ● single op  ✕ on the host; right edge: no DRAM traffic",
        "xref": "paper", "yref": "paper", "x": 0, "y": 1.0, "yanchor": "bottom",
        "showarrow": False, "font": {"size": 11, "color": "#6b7480"}}]
    return {"data": data, "layout": layout}


def _layer_hover(r: dict) -> str:
    parts = [f"<b>#{r['index']} {r['name']}</b>", r["op"],
             f"{num(r['ops'], 'op')} · DRAM {num(r['dram_bytes'], 'B')} · "
             f"{num(r['latency_s'], 's')}",
             f"{r['bound']}" + (" (on the host)" if r["on_host"] else "")]
    if r["cost_unknown"]:
        parts.append("unknown cost: a lower bound")
    return "<br>".join(parts)


def waterfall(layers: list[dict], key: str, factor: float, unit: str, title: str) -> dict:
    """Each layer's share of a total (time or DRAM bytes) as a waterfall ending in the total."""
    labels = [f"{r['index']}" for r in layers] + ["total"]
    vals = [r[key] * factor for r in layers]
    text = [f"#{r['index']} {r['name']} ({r['bound']}): {r[key] * factor:.3g} {unit}"
            for r in layers]
    total = float(sum(vals))
    return {"data": [{
        "type": "waterfall", "x": labels, "y": vals + [total],
        "measure": ["relative"] * len(vals) + ["total"],
        "text": text + [f"total: {total:.4g} {unit}"], "textposition": "none",
        "hovertemplate": "%{text}<extra></extra>", "showlegend": False,
        "connector": {"line": {"color": "#c9ced6", "width": 0.5}},
        "increasing": {"marker": {"color": C_FRONT}},
        "totals": {"marker": {"color": "#1f2630"}}}],
        "layout": _layout(title, xaxis=_axis("layer (execution order)", type="category",
                                             nticks=20),
                          yaxis=_axis(f"cumulative ({unit})"), margin={"l": 60, "r": 20,
                                                                       "t": 40, "b": 40})}


def compare(rows: list[dict], name_a: str, name_b: str, objective: str, big: int) -> dict:
    """A slope chart of each model's rank on A and on B (1 = cheapest): grey when the rank
    moves by less than `big` places, green when the model moves up that much on B, orange
    when it moves down."""
    groups = {f"rank within ±{big - 1}": ([], "#c4cad2", 1),
              f"{big}+ places better on {name_b}": ([], "#2a9d4b", 2),
              f"{big}+ places worse on {name_b}": ([], "#e07b18", 2)}
    keys = list(groups)
    for r in rows:
        k = keys[0] if abs(r["change"]) < big else keys[1] if r["change"] > 0 else keys[2]
        groups[k][0].append(r)
    data = []
    for name, (sel, color, width) in groups.items():
        xs, ys, names, text = [], [], [], []
        for r in sel:
            xs += [name_a, name_b, None]
            ys += [r["rank_a"], r["rank_b"], None]
            names += [r["model"], r["model"], None]
            t = (f"<b>{r['model']}</b><br>{name_a}: #{r['rank_a']} ({r['cost_a_text']})<br>"
                 f"{name_b}: #{r['rank_b']} ({r['cost_b_text']})")
            text += [t, t, None]
        data.append({"type": "scatter", "mode": "lines+markers", "name": f"{name} ({len(sel)})",
                     "x": xs, "y": ys, "customdata": names, "text": text,
                     "hovertemplate": "%{text}<extra></extra>", "connectgaps": False,
                     "line": {"color": color, "width": width},
                     "marker": {"color": color, "size": 6}})
    marked = [r for r in rows if r.get("yardstick")]
    for r in marked:  # the nets everyone knows, labelled at both ends
        data.append({"type": "scatter", "mode": "lines+markers+text", "showlegend": False,
                     "x": [name_a, name_b], "y": [r["rank_a"], r["rank_b"]],
                     "text": [f"{r['yardstick']} #{r['rank_a']}", f"#{r['rank_b']} "
                                                                   f"{r['yardstick']}"],
                     "textposition": ["middle left", "middle right"], "hoverinfo": "skip",
                     "textfont": {"size": 11, "color": "#1f2630"},
                     "line": {"color": "#1f2630", "width": 2.5}, "marker": {"size": 8,
                                                                          "color": "#1f2630"}})
    return {"data": data, "layout": _layout(
        f"Rank by {UNITS[objective][3].lower()} (1 = cheapest)",
        xaxis=_axis("", type="category", range=[-0.6, 1.6]),
        yaxis=_axis("rank", autorange="reversed"), height=max(420, 6 * len(rows) + 140),
        legend={"orientation": "h", "y": -40 / max(420, 6 * len(rows) + 140), "x": 0})}


def study(points: list[dict], front: np.ndarray, hardware: str) -> dict:
    """A quantization study's variants: top-1 against modelled latency on one preset."""
    idx_f, idx_o = np.flatnonzero(front), np.flatnonzero(~front)
    x = np.array([p["latency_s"] * 1e3 for p in points], float)
    y = np.array([p["top1"] for p in points], float)
    sx, sy = staircase(x[front], y[front], float(x.max()) * 1.3 if len(x) else 1.0)
    data = [{"type": "scatter", "mode": "lines", "x": sx, "y": sy, "name": "Pareto frontier",
             "hoverinfo": "skip", "line": {"color": C_FRONT, "width": 2, "shape": "hv"}}]
    for name, idx, color in (("variants", idx_o, C_POINT), ("on the frontier", idx_f, C_FRONT)):
        data.append({"type": "scatter", "mode": "markers", "name": name,
                     "x": [float(x[i]) for i in idx], "y": [float(y[i]) for i in idx],
                     "text": [f"<b>{points[i]['model']}</b><br>top-1 {y[i]:.2f}%<br>"
                              f"latency {x[i]:.3g} ms" for i in idx],
                     "hovertemplate": "%{text}<extra></extra>",
                     "marker": {"color": color, "size": 9}})
    return {"data": data, "layout": _layout(
        f"Top-1 vs latency on {hardware}", xaxis=_axis("latency per inference (ms, log)",
                                                       log=True),
        yaxis=_axis("top-1 (%)"), height=380)}
