"""Frontier plots (top-1 vs cost, log-x) and grouped relative-improvement bar charts, as PNG.

matplotlib is imported inside the functions and draws on an explicit Agg canvas (no pyplot), so
importing this module costs nothing and never touches a caller's backend. Output is
deterministic: fixed figure size, no `loc="best"` legend, no tight-bbox pass, labels placed by a
greedy overlap check in a fixed priority order.
"""
from __future__ import annotations

import io
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np

from netfrontier.frontier import (
    OBJECTIVES,
    TradeoffLine,
    comparable_top1,
    fit_tradeoff_line,
    pareto_front,
)

# objective -> (row column, factor raw -> display unit, unit, axis quantity)
UNITS = {
    "latency": ("latency_s", 1e3, "ms", "Latency"),
    "dram": ("dram_bytes", 1e-6, "MB", "DRAM traffic"),
    "energy": ("energy_j", 1e3, "mJ", "Energy"),
    "measured_latency": ("measured_latency_s", 1e3, "ms", "Measured latency"),
}
assert all(UNITS[o][0] == c for o, c in OBJECTIVES.items())

# always worth a label when there is room: the nets everyone uses as a yardstick
WELL_KNOWN = ("resnet50", "mobilenet_v2", "vgg16", "efficientnet_b0", "vit_b_16", "regnet_x_8gf")

C_POINT = "#8796aa"
C_FRONT = "#1d5fa8"
C_LINE = "#b8322a"
C_TEXT = "#3c4450"
DPI = 120
LABEL_PT = 6.5
LABEL_GAP_PX = 3.0  # the least room between two bar value labels: closer, they read as one
MAX_LABELS = 40


def _rgb(hex_color: str) -> tuple[float, float, float]:
    h = hex_color.lstrip("#")
    return tuple(int(h[k:k + 2], 16) / 255 for k in (0, 2, 4))


def _figure(width: float, height: float):
    """A Figure on its own Agg canvas: explicitly headless, and without pyplot, so no global
    figure registry (nothing to close, no interference with a caller's interactive backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> Path:
    from netfrontier.report import write_atomic

    from PIL import Image  # a matplotlib dependency

    # draw once and encode RGB at a moderate zlib level: half the time of savefig's RGBA at
    # level 6, for a file a few percent larger
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="png", compress_level=3,
                                                    dpi=(DPI, DPI))
    return write_atomic(path, buf.getvalue())


def _weights_tag(weights: str | None) -> str:
    """The distinguishing part of a torchvision weights name: 'IMAGENET1K_V2' -> 'V2',
    'IMAGENET1K_SWAG_E2E_V1' -> 'SWAG-E2E', 'IMAGENET1K_SWAG_LINEAR_V1' -> 'SWAG-LIN'."""
    if not weights:
        return ""
    w = re.sub(r"^IMAGENET1K_?", "", str(weights).split(".")[-1])
    parts = [p for p in w.split("_") if p]
    if len(parts) > 1 and re.fullmatch(r"V\d+", parts[-1]):
        parts = parts[:-1]  # SWAG_E2E_V1 -> SWAG_E2E: the version adds nothing there
    return "-".join("LIN" if p == "LINEAR" else p for p in parts) or w


def short_names(rows: list[dict]) -> list[str]:
    """A short label per row: the arch, plus a weights tag when an arch has several entries,
    plus the bit widths / resolution when that still leaves duplicates."""
    base = [str(r.get("arch") or r.get("model") or "?") for r in rows]
    count = Counter(base)
    names = []
    for b, r in zip(base, rows):
        tag = _weights_tag(r.get("weights")) if count[b] > 1 else ""
        names.append(f"{b} {tag}".strip())
    groups: dict[str, list[dict]] = {}
    for n, r in zip(names, rows):
        groups.setdefault(n, []).append(r)
    out = []
    for n, r in zip(names, rows):
        group = groups[n]
        if len(group) > 1:
            # add only what tells the duplicates apart: bit widths, then resolution
            extra = []
            if len({(g.get("wbits"), g.get("abits")) for g in group}) > 1:
                extra.append(f"w{r.get('wbits', '?')}a{r.get('abits', '?')}")
            if len({g.get("resolution") for g in group}) > 1:
                extra.append(f"@{r.get('resolution')}")
            if not extra:
                extra.append(f"#{group.index(r) + 1}")
            n = f"{n} {' '.join(extra)}"
        out.append(n)
    return out


def _fmt_tick(v, _pos=None) -> str:
    if v <= 0:
        return ""
    if v >= 1:
        return f"{v:,.0f}" if v >= 10 or v == int(v) else f"{v:g}"
    return f"{v:.{max(0, -int(math.floor(math.log10(v))))}f}".rstrip("0").rstrip(".")


def _log_axis(ax, lo: float, hi: float) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    decades = math.log10(hi / lo)
    subs = (1, 2, 5) if decades <= 3.5 else (1,)
    decs = range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
    ticks = [m * 10.0**e for e in decs for m in subs]
    ax.xaxis.set_major_locator(FixedLocator([t for t in ticks if lo <= t <= hi]))
    ax.xaxis.set_major_formatter(FuncFormatter(_fmt_tick))
    ax.xaxis.set_minor_locator(NullLocator())  # minor log ticks cost more to draw than they say


def _place_labels(ax, xd: np.ndarray, yd: np.ndarray, texts: list[str], order: list[int],
                  colors: list[str], bold: list[bool], avoid=(), obstacles=None) -> int:
    """Greedy labelling: for each point in `order`, the first candidate offset whose estimated
    text box hits no earlier label, no marker, no `obstacles` point (display px) and stays inside
    the axes; a second, farther ring of offsets gets a thin leader line. Text extents are
    estimated from the character count (measuring each would need a renderer pass per label).
    Returns how many labels were placed."""
    from matplotlib.collections import LineCollection

    scale = DPI / 72.0
    pts = ax.transData.transform(np.column_stack([xd, yd]))
    inv = ax.transData.inverted()
    obst = np.asarray(obstacles if obstacles is not None else np.empty((0, 2)), float)
    bb = ax.get_window_extent()
    x0, y0, x1, y1 = bb.x0, bb.y0, bb.x1, bb.y1
    h = 1.1 * LABEL_PT * scale
    mr = 3.4 * scale  # marker half-size, px
    near = [(5, -2, "left"), (-5, -2, "right"), (0, 5.5, "center"), (0, -11.5, "center"),
            (4, -10, "left"), (-4, -10, "right"), (4, 5, "left"), (-4, 5, "right")]
    far = [(18, -2, "left"), (-18, -2, "right"), (14, 14, "left"), (-14, 14, "right"),
           (14, -20, "left"), (-14, -20, "right"), (0, 20, "center"), (0, -27, "center")]
    boxes: list[tuple[float, float, float, float]] = [tuple(b) for b in avoid]
    leaders = []
    placed = 0
    for i in order:
        w = len(texts[i]) * (0.64 if bold[i] else 0.585) * LABEL_PT * scale
        px, py = pts[i]
        others = np.ones(len(pts), bool)
        others[i] = False
        for ring, cands in ((0, near), (1, far)):
            for dx, dy, ha in cands:
                ox, oy = px + dx * scale, py + dy * scale
                bx0 = ox if ha == "left" else ox - w if ha == "right" else ox - w / 2
                box = (bx0, oy - 0.25 * h, bx0 + w, oy + 0.85 * h)
                if box[0] < x0 + 2 or box[2] > x1 - 2 or box[1] < y0 + 2 or box[3] > y1 - 2:
                    continue
                if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3]
                       for b in boxes):
                    continue
                m = pts if ring else pts[others]
                if ((m[:, 0] + mr > box[0]) & (m[:, 0] - mr < box[2])
                        & (m[:, 1] + mr > box[1]) & (m[:, 1] - mr < box[3])).any():
                    continue
                if len(obst) and ((obst[:, 0] > box[0]) & (obst[:, 0] < box[2])
                                  & (obst[:, 1] > box[1]) & (obst[:, 1] < box[3])).any():
                    continue
                tx, ty = inv.transform((ox, oy))
                ax.text(tx, ty, texts[i], ha=ha, va="baseline", fontsize=LABEL_PT,
                        color=colors[i], fontweight="bold" if bold[i] else "normal", zorder=6)
                if ring:
                    # from the marker's edge to the nearest side of the text box
                    ex = min(max(px, box[0]), box[2])
                    ey = min(max(py, box[1]), box[3])
                    d = math.hypot(ex - px, ey - py) or 1.0
                    sx, sy = px + (ex - px) * mr / d, py + (ey - py) * mr / d
                    leaders.append(inv.transform([(sx, sy), (ex, ey)]))
                boxes.append(box)
                placed += 1
                break
            else:
                continue
            break
    if leaders:
        ax.add_collection(LineCollection(leaders, colors="#a4acb6", linewidths=0.5, zorder=5))
    return placed


def _step_obstacles(ax, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    """Display-space points every few pixels along a post-step path, for the label check."""
    p = ax.transData.transform(np.column_stack([sx, sy]))
    verts = [p[0]]
    for k in range(1, len(p)):
        verts += [(p[k][0], p[k - 1][1]), p[k]]
    return _segment_points(np.asarray(verts))


def _segment_points(verts: np.ndarray, every_px: float = 3.0) -> np.ndarray:
    """Points every few pixels along a polyline given in display space."""
    out = []
    for a, b in zip(verts[:-1], verts[1:]):
        n = max(int(math.hypot(b[0] - a[0], b[1] - a[1]) / every_px), 1)
        t = np.linspace(0, 1, n + 1)[:, None]
        out.append(np.asarray(a) + t * (np.asarray(b) - np.asarray(a)))
    return np.vstack(out) if out else np.empty((0, 2))


def plot_frontier(rows: list[dict], line: TradeoffLine | None, objective: str, path,
                  title: str | None = None, metric: str = "top1",
                  metric_label: str | None = None, metric_short: str | None = None) -> Path:
    """Top-1 vs cost (log x, human units) with the frontier, the trade-off line and labels.

    `objective` is a key of frontier.OBJECTIVES or "measured_latency". Frontier membership comes
    from the rows' `on_frontier_<objective>` flags when present (so plot and table agree), else
    it is computed here. Rows without a comparable top-1 (frontier.comparable_top1: a figure
    measured on another image set when reference ones exist) or a positive cost are left out
    (and counted in a note on the plot). Writes the PNG atomically and returns its path.
    `metric` is the row column on the y axis ("top1", or "accuracy" for a detection or
    segmentation task), `metric_label` its axis label and `metric_short` its name in the title
    and equation (e.g. "COCO box mAP", "box mAP").
    """
    if objective not in UNITS:
        raise ValueError(f"unknown objective {objective!r} (use {', '.join(UNITS)})")
    col, factor, unit, quantity = UNITS[objective]
    from matplotlib.collections import PolyCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    short = metric_short or "top-1"
    names_all = short_names(rows)
    top1 = comparable_top1(rows, metric)
    keep = [i for i, r in enumerate(rows) if np.isfinite(top1[i]) and r.get(col) is not None
            and r[col] > 0 and math.isfinite(r[col])]
    sub = [rows[i] for i in keep]
    names = [names_all[i] for i in keep]
    x = np.array([r[col] * factor for r in sub], float)
    y = top1[keep]
    flag = f"on_frontier_{objective}"
    if sub and all(flag in r for r in sub):
        front = np.array([bool(r[flag]) for r in sub])
    else:
        front = pareto_front(x, y)
    fallback = np.array([bool(r.get("unsupported_layers")) for r in sub], bool)
    batches = {r.get("batch", 1) for r in rows}
    per = "per inference" if batches <= {1, None} else (
        f"per batch of {batches.pop()}" if len(batches) == 1 else "per batch")

    fig = _figure(9.6, 6.4)
    fig.subplots_adjust(left=0.075, right=0.985, bottom=0.095, top=0.925)
    ax = fig.add_subplot(111)
    ax.set_xscale("log")
    for s in ("top", "right"):
        ax.spines[s].set_visible(False)
    for s in ("left", "bottom"):
        ax.spines[s].set_color("#9aa3ad")
    ax.tick_params(colors=C_TEXT, labelsize=8.5, which="both")
    ax.grid(True, which="major", color="#e6e9ee", lw=0.7, zorder=0)
    ax.set_axisbelow(True)
    ax.set_xlabel(f"{quantity} {per} ({unit}, log scale)", fontsize=10, color=C_TEXT)
    ax.set_ylabel(metric_label or "ImageNet top-1 (%)", fontsize=10, color=C_TEXT)
    hw = next((r.get("hardware") for r in rows if r.get("hardware")), None)
    if title is None:
        q = quantity if quantity.split()[0].isupper() else quantity[0].lower() + quantity[1:]
        title = f"{short[0].upper() + short[1:]} vs {q}" + (f" on {hw}" if hw else "")
    # a figure text, not ax.set_title: placing an axes title measures every tick label
    fig.text(0.075, 0.955, title, fontsize=12.5, color="#1f2630", fontweight="bold", va="baseline")

    if not len(x):
        ax.text(0.5, 0.5, f"no model with both a {short} and a cost", transform=ax.transAxes,
                ha="center", va="center", color=C_TEXT)
        ax.set_xlim(0.1, 10)
        return _save(fig, path)

    lx0, lx1 = np.log10(x.min()), np.log10(x.max())
    pad = max(0.08 * (lx1 - lx0), 0.12)
    xlo, xhi = 10 ** (lx0 - pad), 10 ** (lx1 + pad * 1.6)  # room on the right for labels
    ylo, yhi = float(y.min()), float(y.max())
    ypad = max(0.06 * (yhi - ylo), 0.8)
    ylo, yhi = ylo - ypad, yhi + ypad * 1.6
    ax.set_xlim(xlo, xhi)
    ax.set_ylim(ylo, yhi)
    _log_axis(ax, xlo, xhi)

    handles = []
    # trade-off line (fitted on raw costs: evaluate at display / factor) and the shaded region
    if line is not None:
        xs = np.array([xlo, xhi])
        ys = line.top1_at(xs / factor)
        # the poor-trade-off region: translucent layers in one collection, each reaching further
        # down from the line, so the red deepens away from it (flat fills: small PNGs, no seams)
        depth, n = 0.5 * (yhi - ylo), 7
        floor = ylo - 1e3
        layers = [[(xs[0], floor), (xs[0], ys[0] - depth * k / n), (xs[1], ys[1] - depth * k / n),
                   (xs[1], floor)] for k in range(n)]
        ax.add_collection(PolyCollection(layers, facecolors=C_LINE, alpha=0.021, linewidths=0,
                                         antialiased=False, zorder=1), autolim=False)
        ax.plot(xs, ys, color=C_LINE, lw=1.3, ls=(0, (6, 3)), zorder=2)
        b = line.slope
        a_disp = line.intercept - b * math.log10(factor)
        eq = f"{short} = {a_disp:.1f} {'+' if b >= 0 else '−'} {abs(b):.2f}·log₁₀({unit})"
        handles.append(Line2D([], [], color=C_LINE, lw=1.3, ls=(0, (6, 3)),
                              label=f"trade-off line: {eq}"))
        handles.append(Patch(color=C_LINE, alpha=0.14, lw=0,
                             label="below the line: poor trade-off"))

    # frontier as a staircase: what the best model at each budget reaches
    fi = np.flatnonzero(front)
    fi = fi[np.argsort(x[fi], kind="stable")]
    sx = sy = np.empty(0)
    if len(fi):
        sx = np.append(x[fi], xhi)
        sy = np.append(y[fi], y[fi][-1])
        ax.step(sx, sy, where="post", color=C_FRONT, lw=1.4, alpha=0.8, zorder=3)

    def scatter(mask, marker, face, edge, size, z):
        if mask.any():
            ax.scatter(x[mask], y[mask], s=size, marker=marker, c=face, edgecolors=edge,
                       linewidths=0.9, zorder=z)

    scatter(~front & ~fallback, "o", C_POINT, "white", 22, 4)
    scatter(~front & fallback, "D", "white", C_POINT, 20, 4)
    scatter(front & ~fallback, "o", C_FRONT, "white", 38, 5)
    scatter(front & fallback, "D", "white", C_FRONT, 32, 5)
    handles[:0] = [
        Line2D([], [], marker="o", ls="", color=C_POINT, mec="white", ms=6, label="model"),
        Line2D([], [], marker="o", ls="-", color=C_FRONT, mec="white", ms=7, lw=1.4,
               label=f"efficient frontier ({len(fi)} models)"),
    ]
    if fallback.any():
        handles.insert(2, Line2D([], [], marker="D", ls="", mfc="white", mec=C_POINT, mew=0.9,
                                 ms=5.5, label=f"runs partly on host CPU ({int(fallback.sum())})"))
    leg = ax.legend(handles=handles, loc="upper left", fontsize=8, frameon=True, framealpha=0.92,
                    edgecolor="#dde1e6", borderpad=0.7, handlelength=2.2)
    for t in leg.get_texts():
        t.set_color(C_TEXT)

    # labels: frontier first (cheap to dear), then the well-known nets, then the farthest below
    below = line.below(x / factor, y) if line is not None else -y
    base = [str(r.get("arch") or "") for r in sub]
    known = [i for i in range(len(sub)) if base[i] in WELL_KNOWN and not front[i]]
    rest = [int(i) for i in np.argsort(-below, kind="stable") if not front[i] and i not in known]
    # text is what costs most to draw: beyond the frontier and the well-known nets, label only
    # the models farthest below the line
    room = max(0, MAX_LABELS - len(fi) - len(known))
    order = list(fi) + sorted(known, key=lambda i: x[i]) + rest[:room]
    colors = [C_FRONT if f else "#4a5260" for f in front]
    # the legend's corner is off limits: reserve its box before placing labels
    lb = leg.get_window_extent(fig.canvas.get_renderer())
    obstacles = [_step_obstacles(ax, sx, sy)] if len(sx) else []
    if line is not None:  # keep text off the trade-off line too
        obstacles.append(_segment_points(ax.transData.transform(
            np.column_stack([[xlo, xhi], line.top1_at(np.array([xlo, xhi]) / factor)]))))
    _place_labels(ax, x, y, names, order, colors, list(front),
                  avoid=[(lb.x0, lb.y0, lb.x1, lb.y1)],
                  obstacles=np.vstack(obstacles) if obstacles else None)

    other_set = sum(r.get(metric) is not None and not np.isfinite(t) for r, t in zip(rows, top1))
    skipped = [(len(rows) - len(sub) - other_set, f"without a {short} or cost"),
               (other_set, f"with a {short} measured on another image set")]
    if any(k for k, _ in skipped):
        ax.text(0.995, 0.01, " · ".join(f"{k} model{'s' if k > 1 else ''} {why}"
                                        for k, why in skipped if k) + " not shown",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=7.5, color="#7a828c")
    return _save(fig, path)


def plot_all(rows: list[dict], lines: dict, out_dir, prefix: str = "frontier",
             metric: str = "top1", metric_label: str | None = None,
             metric_short: str | None = None) -> dict[str, Path]:
    """The three frontier plots (and top-1 vs measured latency when any row has one) as
    `<out_dir>/<prefix>_<objective>.png`; returns {objective: path} in plotting order.
    `metric`, `metric_label`, `metric_short`: the y axis (plot_frontier). Rows with latency
    per part of the network (a detection or segmentation task) add `parts`: a bar chart of
    where each model's time goes."""
    out_dir = Path(out_dir)
    out = {}
    kw = dict(metric=metric, metric_label=metric_label, metric_short=metric_short)
    for obj in OBJECTIVES:
        out[obj] = plot_frontier(rows, lines.get(obj), obj, out_dir / f"{prefix}_{obj}.png",
                                 **kw)
    if any(r.get("measured_latency_s") is not None for r in rows):
        top1 = comparable_top1(rows, metric)
        ok = [i for i, r in enumerate(rows) if r.get("measured_latency_s") and np.isfinite(top1[i])]
        line = None
        if ok:
            cost = np.array([rows[i]["measured_latency_s"] for i in ok], float)
            line = fit_tradeoff_line(cost, top1[ok], pareto_front(cost, top1[ok]),
                                     "measured_latency")
        out["measured_latency"] = plot_frontier(rows, line, "measured_latency",
                                                out_dir / f"{prefix}_measured_latency.png",
                                                **kw)
    if rows and all("latency_backbone_s" in r for r in rows):
        out["parts"] = plot_parts(rows, out_dir / "latency_parts.png")
    return out


PARTS = (("latency_pre_s", "pre-processing"), ("latency_backbone_s", "backbone"),
         ("latency_neck_s", "neck"), ("latency_head_s", "head"),
         ("latency_post_s", "post-processing"), ("host_latency_s", "of which on the host"))


def plot_parts(rows: list[dict], path) -> Path:
    """Where each model's modelled latency goes (ms per part of the network, and how much of
    it runs on the fallback host), cheapest model first."""
    hw = next((r.get("hardware") for r in rows if r.get("hardware")), "")
    order = sorted(rows, key=lambda r: r.get("latency_s") or 0)
    names = short_names(order)
    table = {n: {label: 1e3 * float(r.get(col) or 0.0) for col, label in PARTS}
             for n, r in zip(names, order)}
    return plot_relative_bars(table, path, f"Where the time goes on {hw}" if hw else
                              "Where the time goes", "latency per inference (ms)")


def plot_relative_bars(table: dict[str, dict[str, float]], path, title: str, ylabel: str,
                       errors: dict[str, dict[str, float]] | None = None) -> Path:
    """Grouped bars (see bars_figure), written as a PNG atomically; returns the path."""
    return _save(bars_figure(table, title, ylabel, errors), path)


def bars_figure(table: dict[str, dict[str, float]], title: str, ylabel: str,
                errors: dict[str, dict[str, float]] | None = None):
    """Grouped bars: one group per network (table's keys, in order), one bar per series label
    (in order of first appearance, one colour each, e.g. one per bit depth). Missing values leave
    a gap; `errors` (same shape) draws ± error bars. The legend sits between the title and the
    axes, in as many rows as it needs to fit the figure's width. Value labels sit above the bars
    (above the error bars), turned upright when one is too wide for its bar, with the y range
    stretched to keep them inside the axes; a label that would still overlap another is left
    out. Returns the Figure (drawn by _save), so tests can measure its text."""
    import matplotlib
    from matplotlib.patches import Patch

    errors = errors or {}
    nets = list(table)
    series: list[str] = []
    for d in table.values():
        for s in d:
            if s not in series:
                series.append(s)
    ns = max(len(series), 1)
    width = 0.8 / ns
    fig_w = min(max(6.0, 1.2 + 0.27 * len(nets) * max(ns, 2)), 18.0)
    name_in = max((len(n) for n in nets), default=0) * 0.6 * 8.5 / 72  # widest name, inches
    left_in = 0.75
    # rotate the network names only when they would not fit side by side; rotated names hang
    # down and to the left, so make room below and, for the first one, on the left
    group_in = (fig_w - left_in - 0.1) / max(len(nets), 1)
    long_names = name_in > 0.95 * group_in
    if long_names:
        left_in = max(left_in, name_in * 0.87 - group_in / 2 + 0.15)
        fig_w = min(max(fig_w, left_in + 0.6 * len(nets) * 1.0 + 0.1), 18.0)
    bottom_in = name_in * 0.5 + 0.35 if long_names else 0.5
    fig = _figure(fig_w, 4.3 + bottom_in)
    ax = fig.add_subplot(111)
    for s in ("top", "right"):
        ax.spines[s].set_visible(False)
    for s in ("left", "bottom"):
        ax.spines[s].set_color("#9aa3ad")
    ax.grid(True, axis="y", color="#e6e9ee", lw=0.7)
    ax.set_axisbelow(True)
    ax.tick_params(colors=C_TEXT, labelsize=8.5)
    cmap = matplotlib.colormaps["viridis"]
    colours = [cmap(t) for t in np.linspace(0.15, 0.8, len(series))] if len(series) > 1 \
        else [C_FRONT]
    points = []  # (x, where the label goes: the bar's end or its error bar's, value)
    for k, s in enumerate(series):
        bars = [(j - 0.4 + width * (k + 0.5), table[n][s], errors.get(n, {}).get(s))
                for j, n in enumerate(nets)
                if table[n].get(s) is not None and math.isfinite(table[n][s])]
        if not bars:
            continue
        xs, hs, es = zip(*bars)
        es = [abs(e) if e is not None and math.isfinite(e) else 0.0 for e in es]
        ax.bar(xs, hs, width=width * 0.92, color=colours[k], zorder=3,
               yerr=es if any(es) else None,
               error_kw=dict(ecolor="#3c4450", elinewidth=0.8, capsize=2, capthick=0.8,
                             zorder=4))
        points += [(x, v + (e if v >= 0 else -e), v) for x, v, e in zip(xs, hs, es)]
    ends = [p[1] for p in points]
    lo, hi = min(ends + [0]), max(ends + [0])
    span = (hi - lo) or 1.0
    if lo < 0:
        ax.axhline(0, color="#9aa3ad", lw=0.8)
    ax.set_xticks(range(len(nets)))
    ax.set_xticklabels(nets, fontsize=8.5, rotation=30 if long_names else 0,
                       ha="right" if long_names else "center",
                       rotation_mode="anchor" if long_names else "default")
    ax.set_xlim(-0.6, len(nets) - 0.4)
    ax.set_ylim(lo - (0.06 * span if lo < 0 else 0), hi + 0.06 * span)
    ax.set_ylabel(ylabel, fontsize=10, color=C_TEXT)
    handles = [Patch(color=c, label=str(s)) for s, c in zip(series, colours)]
    _bars_layout(fig, title, handles, left_in, bottom_in)
    if len(points) <= 48:
        big = max((abs(p[2]) for p in points), default=1.0)
        _value_labels(ax, points, 2 if big < 10 else 1 if big < 100 else 0, width)
    return fig


def _bars_layout(fig, title: str, handles: list, left_in: float, bottom_in: float) -> None:
    """Title, then the legend in as few rows as fit the width, then a 3.55 in tall axes: the
    figure grows by what the legend needs, so nothing lies outside the saved image."""
    fig_w = fig.get_figwidth()
    renderer = fig.canvas.get_renderer()
    leg, leg_h = None, 0.0
    for ncol in range(len(handles), 0, -1):
        if leg is not None:
            leg.remove()
        leg = fig.legend(handles=handles, loc="upper left", ncols=ncol, fontsize=8,
                         frameon=False, borderaxespad=0, handlelength=1.2, columnspacing=1.4)
        bb = leg.get_window_extent(renderer)
        leg_h = bb.height / DPI
        if bb.width / DPI <= fig_w - left_in - 0.1:
            break
    top_in = 0.52 + leg_h + 0.12
    fig_h = 3.55 + bottom_in + top_in
    fig.set_size_inches(fig_w, fig_h)
    fig.subplots_adjust(left=left_in / fig_w, right=0.99, bottom=bottom_in / fig_h,
                        top=1 - top_in / fig_h)
    if leg is not None:
        leg.set_bbox_to_anchor((left_in, fig_h - 0.52), transform=fig.dpi_scale_trans)
        for t in leg.get_texts():
            t.set_color(C_TEXT)
    fig.text(left_in / fig_w, 1 - 0.36 / fig_h, title, fontsize=12.5, color="#1f2630",
             fontweight="bold", va="baseline")


def _value_labels(ax, points: list[tuple[float, float, float]], decimals: int,
                  bar_width: float) -> None:
    """One label per bar at (x, y): upright when any is wider than 80% of a bar's slot, the y
    range widened until every label is inside the axes, and any label that still comes within
    LABEL_GAP_PX of one already placed left out (so no two ever touch)."""
    renderer = ax.figure.canvas.get_renderer()
    texts = [ax.annotate(f"{v:.{decimals}f}", (x, y), xytext=(0, 1.5 if v >= 0 else -1.5),
                         textcoords="offset points", ha="center",
                         va="bottom" if v >= 0 else "top", fontsize=6.5, color=C_TEXT,
                         zorder=5) for x, y, v in points]
    bar_px = abs(ax.transData.transform((bar_width, 0))[0] - ax.transData.transform((0, 0))[0])
    # side by side they need a clear gap, or neighbours read as one number ("1.201.20")
    if any(t.get_window_extent(renderer).width > 0.8 * bar_px for t in texts):
        for t in texts:
            t.set_rotation(90)
    for _ in range(4):  # stretching one end moves the labels at the other a little
        lo, hi = ax.get_ylim()
        box = ax.get_window_extent(renderer)
        pad = 3.0
        new_lo, new_hi = lo, hi
        for t, (_, y, v) in zip(texts, points):
            bb = t.get_window_extent(renderer)
            py = ax.transData.transform((0, y))[1]
            if v >= 0:  # keep px(y) + (bb.y1 - py) below the top
                need = box.height - pad - (bb.y1 - py)
                new_hi = max(new_hi, lo + (y - lo) * box.height / max(need, 1.0))
            else:
                need = box.height - pad - (py - bb.y0)
                new_lo = min(new_lo, hi - (hi - y) * box.height / max(need, 1.0))
        if (new_lo, new_hi) == (lo, hi):
            break
        ax.set_ylim(new_lo, new_hi)
    placed = []
    for t in texts:
        bb = t.get_window_extent(renderer).padded(LABEL_GAP_PX / 2)
        if any(bb.overlaps(p) for p in placed):
            t.remove()
        else:
            placed.append(bb)
