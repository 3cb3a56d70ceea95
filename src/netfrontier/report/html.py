"""One self-contained HTML report: headline, embedded plots, trade-off lines, a sortable table.

Everything is inline (CSS, a small vanilla-JS sorter, PNGs as base64 data URIs), so the file can
be mailed or archived on its own. All text from rows and meta is escaped.
"""
from __future__ import annotations

import base64
import html
import math
import re
from collections import Counter
from pathlib import Path

import numpy as np

from netfrontier.frontier import OBJECTIVES, TradeoffLine, comparable_top1

# objective -> (row column, factor raw -> display unit, unit, name)
_UNITS = {
    "latency": ("latency_s", 1e3, "ms", "Latency"),
    "dram": ("dram_bytes", 1e-6, "MB", "DRAM traffic"),
    "energy": ("energy_j", 1e3, "mJ", "Energy"),
}
_SHORT = {"latency": "latency", "dram": "DRAM", "energy": "energy"}
# the words of the report for its task's metric (classification: ImageNet top-1)
_TOP1 = {"short": "top-1", "Short": "Top-1", "pct": "%", "col": "Top-1 %",
         "col_tip": "ImageNet-1k top-1; the letter says where it comes from",
         "what": "ImageNet classifier (source.weights)", "points": "points of top-1"}


def task_words(meta: dict) -> dict:
    """The report's words for the metric on its y axis (meta "metric_short", "metric_label")."""
    short = meta.get("metric_short")
    if not short or short == "top-1":
        return _TOP1
    return {"short": short, "Short": short[0].upper() + short[1:], "pct": "",
            "col": short[0].upper() + short[1:],
            "col_tip": f"{meta.get('metric_label') or short}; the letter says where it comes "
                       "from",
            "what": f"{meta.get('task', '')} network (source.weights)",
            "points": f"points of {short}"}
_CHIP = {"latency": "lat", "dram": "DRAM", "energy": "energy"}
_IMAGE_CAPTIONS = {
    "latency": "Top-1 vs latency per inference",
    "dram": "Top-1 vs DRAM traffic per inference",
    "energy": "Top-1 vs energy per inference",
    "measured_latency": "Top-1 vs measured latency",
}
_PARTS_CAPTION = ("Where the time goes: modelled latency per part of the network (graph.table."
                  "layer_group) and how much of it runs on the fallback host")
_PART_COLUMNS = {"latency_pre_s": ("Pre", "pre-processing"),
                 "latency_backbone_s": ("Backbone", "backbone"),
                 "latency_neck_s": ("Neck", "neck"), "latency_head_s": ("Head", "head"),
                 "latency_post_s": ("Post", "post-processing")}

_CSS = """
:root{--ink:#1f2630;--mute:#5d6673;--line:#e3e7ec;--blue:#1d5fa8;--red:#b8322a;--amber:#c77700;
--bg:#f5f7fa}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--ink);background:var(--bg)}
main{max-width:1500px;margin:0 auto;padding:28px 28px 48px}
h1{font-size:26px;margin:0 0 2px;letter-spacing:-.01em}
h2{font-size:18px;margin:34px 0 10px}
.sub{color:var(--mute);margin:0 0 18px}
.sub span+span:before{content:"·";margin:0 8px;color:#b3bac4}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(250px,1fr));gap:12px}
.card{background:#fff;border:1px solid var(--line);border-radius:10px;padding:14px 16px}
.card h3{margin:0 0 8px;font-size:12px;text-transform:uppercase;letter-spacing:.06em;color:var(--mute)}
.card dl{margin:0;display:grid;grid-template-columns:auto 1fr;gap:3px 10px;font-size:13px}
.card dt{color:var(--mute)}.card dd{margin:0;font-weight:600;overflow-wrap:anywhere}
.cardp{margin:6px 0 0;color:var(--mute);font-size:13px}
.card dd small{font-weight:400;color:var(--mute)}
.big{font-size:30px;font-weight:700;line-height:1.1}
.big small{font-size:14px;font-weight:400;color:var(--mute)}
.warn{color:var(--amber)!important}
figure{margin:0 auto 16px;max-width:1200px;background:#fff;border:1px solid var(--line);border-radius:10px;padding:10px}
figure img{width:100%;height:auto;display:block}
figcaption{color:var(--mute);font-size:13px;padding:4px 6px 0}
.eq{background:#fff;border:1px solid var(--line);border-radius:10px;border-collapse:separate;
border-spacing:0;width:100%}
.eq td,.eq th{padding:7px 12px;text-align:left;border-bottom:1px solid var(--line)}
.eq tr:last-child td,.eq tr:last-child th{border-bottom:0}
.eq code{white-space:nowrap;font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.tablewrap{max-height:80vh;overflow:auto;background:#fff;border:1px solid var(--line);border-radius:10px}
table.rows{border-collapse:separate;border-spacing:0;width:100%;font-size:12px}
.rows th{position:sticky;top:0;background:#fff;z-index:1;text-align:right;font-weight:600;
padding:7px 6px;border-bottom:2px solid #cfd5dc;white-space:nowrap;cursor:pointer;user-select:none;
vertical-align:bottom;line-height:1.25}
.rows th small{font-weight:400;color:var(--mute)}
.rows th.t,.rows td.t{text-align:left}
.rows th:hover{background:#eef3f9}
.rows th[aria-sort]:after{content:" ▲";color:var(--blue);font-size:10px}
.rows th[aria-sort=descending]:after{content:" ▼"}
.rows td{padding:4px 6px;text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap;
border-bottom:1px solid #eef0f3}
.rows tbody tr:nth-child(even){background:#f8fafc}
.rows tbody tr:hover{background:#eef3f9}
.rows tr.fb td:first-child{box-shadow:inset 3px 0 0 var(--amber)}
.rows tr.unk td:first-child{box-shadow:inset 3px 0 0 var(--red)}
.rows td.m{font-weight:600;white-space:normal}
.chip{display:inline-block;padding:0 5px;margin-left:3px;border-radius:9px;font-size:10.5px;
background:#e4eef9;color:var(--blue);font-weight:600}
.rows td.fbops{white-space:normal;min-width:140px;font-size:11px}
.fbops .fb{color:var(--amber)}.fbops .unk{color:var(--red)}
.w{font-weight:400;color:var(--mute);font-size:11px}
.neg{color:#2e7d4f}.pos{color:var(--red)}
sup{color:var(--mute)}
.notes li{margin:3px 0}
footer{margin-top:30px;color:var(--mute);font-size:12px}
footer code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#fff;
border:1px solid var(--line);border-radius:5px;padding:1px 5px;word-break:break-all}
"""

_JS = """
(function(){
function nat(s){return s.toLowerCase().split(/(\\d+)/)}
function natcmp(a,b){for(var i=0;i<a.length&&i<b.length;i++){var x=a[i],y=b[i];
if(x!==y)return i%2?(x-y)||(x<y?-1:1):(x<y?-1:1)}return a.length-b.length}
document.querySelectorAll('table.rows').forEach(function(t){
var hs=t.tHead.rows[0].cells,b=t.tBodies[0];
Array.prototype.forEach.call(hs,function(th,i){
function go(){var asc=th.getAttribute('aria-sort')!=='ascending',num=th.dataset.type==='num';
Array.prototype.forEach.call(hs,function(h){h.removeAttribute('aria-sort')});
th.setAttribute('aria-sort',asc?'ascending':'descending');
function key(r){var c=r.cells[i],v=c.getAttribute('data-v');if(v===null)v=c.textContent.trim();
if(v==='')return null;if(num){v=parseFloat(v);return isNaN(v)?null:v}return nat(v)}
var rs=Array.prototype.map.call(b.rows,function(r,k){return[key(r),k,r]});
rs.sort(function(p,q){var x=p[0],y=q[0];if(x===null||y===null)
return x===y?p[1]-q[1]:(x===null?1:-1);var c=num?x-y:natcmp(x,y);
return(asc?c:-c)||p[1]-q[1]});rs.forEach(function(p){b.appendChild(p[2])})}
th.addEventListener('click',go);th.tabIndex=0;
th.addEventListener('keydown',function(e){if(e.key==='Enter'||e.key===' '){e.preventDefault();go()}})
})})})();
"""


def natural_key(name: str) -> list:
    """Sort key comparing digit runs as numbers (wide_resnet50_2 before wide_resnet101_2), the
    order the table's inline sorter (nat/natcmp) uses too."""
    parts = re.split(r"(\d+)", str(name).lower())
    return [(int(c), c) if k % 2 else c for k, c in enumerate(parts)]


def _unknown(r: dict) -> tuple[int, list[str]]:
    """Layers the importer could not cost and their op names (older rows have neither)."""
    ops = [o for o in str(r.get("unknown_ops") or "").split(";") if o]
    return int(r.get("unknown_layers") or 0), ops


def _measured_on(source: str) -> str:
    """'measured: imagenet-sample (1000 images), FP32' -> 'imagenet-sample'."""
    m = re.match(r"measured:\s*([^(,]+)", source)
    return m.group(1).strip() if m else source


def _e(v) -> str:
    return html.escape("" if v is None else str(v), quote=True)


def _wrap(name) -> str:
    """Escaped model name with line-break opportunities after dots and underscores."""
    return _e(name).replace(".", ".<wbr>").replace("_", "_<wbr>")


def _num(v) -> str:
    """Human number: about three significant figures, thousands separators, '—' for none."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    a = abs(v)
    if a >= 100:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}" if a >= 0.01 or a == 0 else f"{v:.2g}"


def _meta(meta: dict, *keys, default=None):
    for k in keys:
        if meta.get(k) not in (None, ""):
            return meta[k]
    return default


def _cost(r: dict, obj: str) -> float | None:
    col, f, _, _ = _UNITS[obj]
    v = r.get(col)
    return None if v is None else v * f


def _with_unit(r: dict, obj: str) -> str:
    return f"{_num(_cost(r, obj))} {_UNITS[obj][2]}"


def _plotted_text(rows: list[dict], w: dict = _TOP1) -> str:
    """How many rows the frontier plots show, and which top-1s they leave out and why: the plots
    and frontier.annotate take only rows with a comparable top-1 (frontier.comparable_top1)."""
    top1 = comparable_top1(rows)
    plotted = int(np.isfinite(top1).sum())
    out = [r for r, t in zip(rows, top1) if r.get("top1") is not None and not np.isfinite(t)]
    missing = sum(r.get("top1") is None for r in rows)
    kind = "reference" if out else "known"
    parts = [f"{plotted} with a {kind} {w['short']} {'is' if plotted == 1 else 'are'} plotted"]
    if out:
        sets = ", ".join(dict.fromkeys(_measured_on(str(r.get("top1_source") or ""))
                                       for r in out))
        parts.append(f"{len(out)} measured on {sets} {'is' if len(out) == 1 else 'are'} listed "
                     f"but not plotted (another image set: not comparable with the reference "
                     f"figures)")
    if missing:
        parts.append(f"{missing} without a {w['short']}, left off the frontier")
    return " · ".join(_e(p) for p in parts)


def _headline(rows: list[dict], lines: dict, w: dict = _TOP1) -> str:
    n = len(rows)
    fb = [r for r in rows if r.get("unsupported_layers")]
    unk = [r for r in rows if _unknown(r)[0]]
    hw_cards = [
        '<div class="card"><h3>Models</h3>'
        f'<div class="big">{n} <small>model{"s" if n != 1 else ""}</small></div>'
        f'<p class="cardp">{_plotted_text(rows, w)}</p>'
        + (f'<p class="cardp warn">⚠ {len(fb)} run partly on the host CPU '
           f'(unsupported layers)</p>' if fb
           else '<p class="cardp">every layer runs on the accelerator</p>')
        + (f'<p class="cardp warn">⚠ {len(unk)} {"has" if len(unk) == 1 else "have"} layers '
           f'netfrontier cannot cost (unknown ops): {"its" if len(unk) == 1 else "their"} '
           f'costs are lower bounds</p>' if unk else "")
        + "</div>"]
    for obj in OBJECTIVES:
        front = [r for r in rows if r.get(f"on_frontier_{obj}") and r.get("top1") is not None
                 and _cost(r, obj) is not None]
        if not front:
            continue
        cheap = min(front, key=lambda r: (_cost(r, obj), -r["top1"]))
        best = max(front, key=lambda r: (r["top1"], -_cost(r, obj)))
        key = f"below_line_{obj}"
        above = [r for r in front if r.get(key) is not None]
        bal = min(above, key=lambda r: r[key]) if above and lines.get(obj) else None

        def item(label, r, extra=""):
            return (f"<dt>{label}</dt><dd>{_name_html(r)}<br><small>{_e(_with_unit(r, obj))}"
                    f" · {r['top1']:.2f}{w['pct']} {w['short']}{extra}</small></dd>")

        body = item("cheapest", cheap) + item("most accurate", best)
        if bal is not None and bal[key] < 0 and bal is not cheap and bal is not best:
            body += item("best trade-off", bal, f" · {-bal[key]:.2f} pts above the line")
        hw_cards.append(f'<div class="card"><h3>{_e(_UNITS[obj][3])} frontier · '
                        f'{len(front)} models</h3><dl>{body}</dl></div>')
    return '<section class="cards">' + "".join(hw_cards) + "</section>"


def _equations(lines: dict, w: dict = _TOP1) -> str:
    trs = []
    for obj in OBJECTIVES:
        line: TradeoffLine | None = lines.get(obj)
        _, f, unit, name = _UNITS[obj]
        if line is None:
            trs.append(f"<tr><th>{_e(name)}</th><td colspan=2>no line: fewer than two frontier "
                       f"models with distinct cost</td></tr>")
            continue
        a = line.intercept - line.slope * math.log10(f)
        sign = "+" if line.slope >= 0 else "−"
        eq = f"{w['short']} = {a:.2f} {sign} {abs(line.slope):.3f} · log₁₀({_SHORT[obj]} / {unit})"
        trs.append(f"<tr><th>{_e(name)}</th><td><code>{_e(eq)}</code></td><td>each 10× more "
                   f"{_e(_SHORT[obj])} buys {line.slope:.2f} {_e(w['points'])} along the frontier "
                   f"(fitted through {line.points} frontier models)</td></tr>")
    return '<table class="eq"><tbody>' + "".join(trs) + "</tbody></table>"


def _name_html(r: dict) -> str:
    """The model name with its weights part muted (and a line-break opportunity before it)."""
    name = str(r.get("model") or "")
    arch = str(r.get("arch") or "")
    if arch and name.startswith(arch + ".") and len(name) > len(arch) + 1:
        return f'{_e(arch)}<wbr><span class="w">.{_e(name[len(arch) + 1:])}</span>'
    return _wrap(name)


def _model_cell(r: dict) -> str:
    """The table's model cell; the full name is the sort key and the tooltip."""
    name = str(r.get("model") or "")
    return f'<td class="t m" data-v="{_e(name)}" title="{_e(name)}">{_name_html(r)}</td>'


def _table(rows: list[dict], w: dict = _TOP1) -> tuple[str, list[str]]:
    sources = []
    for r in rows:
        s = r.get("top1_source") or ""
        if r.get("top1") is not None and s and s not in sources:
            sources.append(s)
    mark = {s: "abcdefghijklmnopqrstuvwxyz"[i] if i < 26 else str(i + 1)
            for i, s in enumerate(sources)}
    cols = [("Model", "t", w["what"]),
            (w["col"], "num", w["col_tip"]),
            ("Latency ms", "num", "modelled latency per batch"),
            ("DRAM MB", "num", "modelled DRAM traffic per batch"),
            ("Energy mJ", "num", "modelled energy per batch"),
            ("Frontier", "num", "on the efficient frontier for these objectives"),
            ("↓ lat", "num",
             f"{w['points']} below the latency trade-off line (negative: above)"),
            ("↓ DRAM", "num", f"{w['points']} below the DRAM trade-off line (negative: above)"),
            ("↓ energy", "num",
             f"{w['points']} below the energy trade-off line (negative: above)"),
            ("MACs G", "num", "multiply-accumulates per batch, billions"),
            ("Params M", "num", "parameters, millions"),
            ("Util %", "num", "achieved / peak ops per second")]
    parts = rows and all("latency_backbone_s" in r for r in rows)
    if parts:  # a detection or segmentation report: where each model's time goes
        cols += [(f"{label} ms", "num", f"modelled latency of the {name} per batch")
                 for label, name in _PART_COLUMNS.values()]
        cols += [("On host ms", "num", "the part of the latency on the fallback host")]
    cols += [
            ("Config", "t", "input resolution · weight / activation bits"),
            ("Fallback", "t",
             "layers the accelerator cannot run (they run on the host CPU), by op kind; and "
             "layers of unknown cost (not costed: the row's cost is a lower bound)")]

    def th(c, k, tip):
        # the unit (or the objective of a ↓ column) on a second, smaller line keeps columns narrow
        two_line = c.split()[-1] in ("%", "ms", "MB", "mJ", "M", "G") or c.startswith("↓")
        name, _, unit = c.rpartition(" ") if two_line else (c, "", "")
        label = _e(name) + (f'<br><small>{_e(unit)}</small>' if unit else "")
        left = k == "t" or c == "Frontier"
        return f'<th class="{"t" if left else ""}" data-type="{k}" title="{_e(tip)}">{label}</th>'

    head = "".join(th(*c) for c in cols)

    def td(v, shown=None, cls=""):
        dv = "" if v is None or (isinstance(v, float) and not math.isfinite(v)) else repr(float(v))
        c = f' class="{cls}"' if cls else ""
        return f'<td{c} data-v="{dv}">{_e(_num(v)) if shown is None else shown}</td>'

    body = []
    for r in sorted(rows, key=lambda r: natural_key(r.get("model") or "")):
        fb = bool(r.get("unsupported_layers"))
        n_unk, unk_ops = _unknown(r)
        t1 = r.get("top1")
        t1s = "—" if t1 is None else (f"{t1:.2f}" + (f"<sup>{mark[r['top1_source']]}</sup>"
                                                    if r.get("top1_source") in mark else ""))
        members = [o for o in OBJECTIVES if r.get(f"on_frontier_{o}")]
        chips = "".join(f'<span class="chip">✓ {_e(_CHIP[o])}</span>' for o in members)
        cells = [_model_cell(r), td(t1, t1s)]
        cells += [td(_cost(r, o)) for o in OBJECTIVES]
        rank = sum(4 >> i for i, o in enumerate(OBJECTIVES) if o in members)
        cells.append(f'<td class="t" data-v="{rank}">{chips}</td>')
        for o in OBJECTIVES:
            b = r.get(f"below_line_{o}")
            cls = "" if b is None else ("pos" if b > 0.5 else "neg" if b < -0.05 else "")
            cells.append(td(b, "—" if b is None else f"{b:+.2f}", cls))
        macs, params, util = r.get("macs"), r.get("params"), r.get("utilization")
        cells.append(td(None if macs is None else macs / 1e9))
        cells.append(td(None if params is None else params / 1e6))
        cells.append(td(None if util is None else util * 100))
        if parts:
            for col in _PART_COLUMNS:
                cells.append(td(1e3 * float(r.get(col) or 0.0)))
            cells.append(td(1e3 * float(r.get("host_latency_s") or 0.0)))
        wb, ab, res = r.get("wbits"), r.get("abits"), r.get("resolution")
        cfg = [f"{res}px" if res is not None else "",
               f"w{wb}a{ab}" if wb is not None or ab is not None else ""]
        cells.append(f'<td class="t">{_e(" · ".join(c for c in cfg if c))}</td>')
        flags = []
        if fb:
            ops = ", ".join(o for o in str(r.get("unsupported_ops") or "").split(";") if o)
            n = r.get("unsupported_layers")
            flags.append(f'<span class="fb">⚠ {_e(n)} layer{"s" if n != 1 else ""}'
                         f'{": " + _e(ops) if ops else ""}</span>')
        if n_unk:
            flags.append(f'<span class="unk">cost unknown: '
                         f'{_e(", ".join(unk_ops) or "unrecognised ops")} ({n_unk} '
                         f'layer{"s" if n_unk != 1 else ""}; lower bound)</span>')
        cells.append(f'<td class="t fbops">{"<br>".join(flags)}</td>' if flags
                     else '<td class="t"></td>')
        cls = " ".join(c for c, on in (("fb", fb), ("unk", n_unk)) if on)
        attr = f' class="{cls}"' if cls else ""
        body.append(f"<tr{attr}>" + "".join(cells) + "</tr>")
    counts = Counter(r.get("top1_source") for r in rows if r.get("top1") is not None)
    notes = [f"<sup>{mark[s]}</sup> {_e(w['short'])} {_e(s)} "
             f"({counts[s]} model{'s' if counts[s] != 1 else ''})" for s in sources]
    missing = sum(r.get("top1") is None for r in rows)
    if missing:
        notes.append(f"— no {_e(w['short'])} known for {missing} model"
                     f"{'s' if missing != 1 else ''}; "
                     f"they are left off the frontier")
    table = (f'<div class="tablewrap"><table class="rows"><thead><tr>{head}</tr></thead>'
             f"<tbody>{''.join(body)}</tbody></table></div>")
    return table, notes


def _img(path: Path) -> str:
    data = Path(path).read_bytes()
    mime = "image/svg+xml" if str(path).lower().endswith(".svg") else "image/png"
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def render_report(rows: list[dict], lines: dict, meta: dict, images: dict | None = None) -> str:
    """The report as one HTML string (what write_report writes).

    For a detection or segmentation task (meta "task", "metric_short", "metric_label") the
    rows' `accuracy` is the y value (their `top1` is None) and the words follow the metric."""
    images = images or {}
    w = task_words(meta)
    if w is not _TOP1:
        rows = [{**r, "top1": r.get("accuracy"), "top1_source": r.get("accuracy_source")}
                for r in rows]
    row_hw = next((r.get("hardware") for r in rows if r.get("hardware")), "unknown hardware")
    hw = _meta(meta, "hardware", "hardware_name", "name", default=row_hw)
    date = _meta(meta, "date", default="")
    desc = _meta(meta, "description", "hardware_description")
    peak = _meta(meta, "peak_ops_per_s", "peak_ops", "peak")
    version = _meta(meta, "tool_version", "version")
    command = _meta(meta, "command", "command_line", "cmdline")
    if isinstance(command, (list, tuple)):
        command = " ".join(str(c) for c in command)
    sub = []
    if desc:
        sub.append(f"<span>{_e(desc)}</span>")
    if peak:
        try:
            sub.append(f"<span>peak {float(peak) / 1e12:,.1f} TOPS</span>")
        except (TypeError, ValueError):
            sub.append(f"<span>peak {_e(peak)}</span>")
    if date:
        sub.append(f"<span>{_e(date)}</span>")
    batches = {r.get("batch", 1) for r in rows}
    if batches - {1, None}:
        sub.append(f"<span>batch {_e(', '.join(str(b) for b in sorted(batches, key=str)))} "
                   f"(costs are per batch)</span>")

    figs = []
    for key, path in images.items():
        cap = _IMAGE_CAPTIONS.get(key, str(key).replace("_", " ").capitalize())
        if key in _IMAGE_CAPTIONS and w is not _TOP1:
            cap = cap.replace("Top-1", w["Short"])
        if key == "parts":
            cap = _PARTS_CAPTION
        figs.append(f'<figure><img src="{_img(path)}" alt="{_e(cap)}"><figcaption>{_e(cap)}. '
                    f"Blue: the efficient frontier; dashed red: the trade-off line; the red "
                    f"shading below it marks poor trade-offs.</figcaption></figure>"
                    if key in _IMAGE_CAPTIONS else
                    f'<figure><img src="{_img(path)}" alt="{_e(cap)}"><figcaption>{_e(cap)}'
                    f"</figcaption></figure>")

    table, footnotes = _table(rows) if w is _TOP1 else _table(rows, w)
    notes = [str(n) for n in (meta.get("notes") or [])]
    title = f"Accuracy vs cost on {hw}" if w is _TOP1 else \
        f"{str(meta.get('task') or '').capitalize()}: {w['short']} vs cost on {hw}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}{' — ' + _e(date) if date else ''}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="sub">{"".join(sub)}</p>' if sub else "",
        _headline(rows, lines, w),
        "<h2>Frontier plots</h2>" if figs else "",
        "".join(figs),
        "<h2>Trade-off lines</h2>",
        f"<p class=sub>Least-squares fit of {_e(w['short'])} against log₁₀(cost) through the "
        f"frontier models; a model's “↓” column in the table is how many {_e(w['points'])} it "
        "lies below the line.</p>",
        _equations(lines, w),
        f"<h2>All models <small style='font-weight:400;color:var(--mute);font-size:13px'>"
        f"({len(rows)}; click a column header to sort)</small></h2>",
        table,
        '<p class="sub" style="margin-top:8px;font-size:12.5px">'
        + "<br>".join(footnotes) + "</p>" if footnotes else "",
        ("<h2>Notes</h2><ul class=notes>" + "".join(f"<li>{_e(n)}</li>" for n in notes)
         + "</ul>") if notes else "",
        "<footer>",
        f"netfrontier {_e(version)}" if version else "netfrontier",
        f" · <code>{_e(command)}</code>" if command else "",
        "</footer></main>",
        f"<script>{_JS}</script></body></html>",
    ]
    return "\n".join(p for p in parts if p)


def write_report(rows: list[dict], lines: dict, meta: dict, out_dir,
                 images: dict[str, Path] | None = None) -> Path:
    """Write `out_dir/report.html` atomically (temp file + os.replace) and return its path.

    `images` maps a key ("latency", "dram", "energy", "measured_latency", or any other name,
    shown as its caption) to a PNG file that is embedded as a base64 data URI, in dict order.
    """
    from netfrontier.report import write_atomic

    doc = render_report(rows, lines, meta, images)
    return write_atomic(Path(out_dir) / "report.html", doc)
