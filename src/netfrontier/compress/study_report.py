"""Write a quantization study: results.json, results.csv, bar charts, frontiers, report.html.

Bar charts follow the seed article (Imagination's Series4 efficiency study): relative
improvement (×, over the uniform 8-bit model) in latency, DRAM traffic and energy per inference,
one group per network, one bar per bit configuration, one chart per preset and metric. Variant
labels carry the weight rounding used (nearest, gptq, gptq-float), so rows made differently never
share a label. Every file is written atomically; `rerender` redraws a committed results.json.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
from pathlib import Path

from netfrontier.compress.study import _ROUNDING_LABEL, METRICS, relative_improvements

_QUANTITY = {"latency": "latency", "dram": "DRAM traffic", "energy": "energy"}
CSV_COLUMNS = ("model", "variant", "method", "rounding", "wbits", "abits", "top1", "top1_se",
               "top1_drop", "top1_drop_se", "top5", "images", "dataset", "hardware", "latency_s",
               "dram_bytes", "energy_j", "improvement_latency", "improvement_dram",
               "improvement_energy", "layers_per_bits")


def flat_rows(rows: list[dict]) -> list[dict]:
    """One CSV row per (variant, preset); variants without cost (FP32) get one row."""
    out = []
    for r in rows:
        base = {k: r.get(k) for k in CSV_COLUMNS if k in r}
        base["rounding"] = rounding(r)
        base["layers_per_bits"] = json.dumps(r.get("layers_per_bits")) if r.get(
            "layers_per_bits") else ""
        if not r.get("cost"):
            out.append(base)
            continue
        for hw, c in r["cost"].items():
            out.append({**base, "hardware": hw, **{k: c.get(k) for k in CSV_COLUMNS if k in c}})
    return out


def rounding(r: dict) -> str:
    """The weight rounding a row's model was made with: "nearest", "gptq" or "gptq-float" (for
    QAT, that of the PTQ model it started from); "" where no weights were rounded."""
    method = r.get("method") or ""
    if r.get("rounding"):
        return str(r["rounding"])
    if not method.startswith(("PTQ", "QAT")):
        return ""
    init = re.search(r"([\w-]+) rounding$", str((r.get("qat") or {}).get("init", "")))
    if init:
        return init.group(1)
    for name, phrase in sorted(_ROUNDING_LABEL.items(), key=lambda kv: -len(kv[1])):
        if phrase in method:
            return name
    return "gptq" if "from GPTQ" in method else "nearest"


def _label(r: dict) -> str:
    """'PTQ W4A8 (gptq-float)', 'QAT W4A8 (from gptq-float)'; FP32, cost-only and mixed-precision
    rows by their variant alone."""
    kind = r["method"][:3]
    if kind not in ("PTQ", "QAT") or "mixed" in r["variant"]:
        return r["variant"]
    return f"{kind} {r['variant']} ({'from ' if kind == 'QAT' else ''}{rounding(r)})"


def _base_variant(rows: list[dict]) -> str:
    """What the improvements are relative to: the 8-bit rows' variant name (W8A8)."""
    names = {r["variant"] for r in rows if r.get("wbits") == 8 and r.get("cost")}
    return names.pop() if len(names) == 1 else "8-bit"


def bar_tables(rows: list[dict], hw: str, metric: str) -> dict[str, dict[str, float]]:
    """{network: {bit configuration: improvement ×}} (QAT and PTQ share one configuration)."""
    table: dict[str, dict[str, float]] = {}
    for r in rows:
        c = (r.get("cost") or {}).get(hw)
        if not c or c.get(f"improvement_{metric}") is None:
            continue
        table.setdefault(r["arch"], {})[r["variant"]] = c[f"improvement_{metric}"]
    return table


def accuracy_table(rows: list[dict], key: str = "top1") -> dict[str, dict[str, float]]:
    """{network: {variant label: row[key]}} over the rows with a top-1 ("top1_se": error bars)."""
    table: dict[str, dict[str, float]] = {}
    for r in rows:
        if r.get("top1") is not None:
            table.setdefault(r["arch"], {})[_label(r)] = r.get(key)
    return table


def frontier_rows(rows: list[dict], hw: str) -> list[dict]:
    out = []
    for r in rows:
        c = (r.get("cost") or {}).get(hw)
        if c is None or r.get("top1") is None:
            continue
        out.append({"model": f"{r['arch']} {_label(r)}", "arch": f"{r['arch']} {_label(r)}",
                    "top1": r["top1"], "hardware": hw, "batch": 1,
                    **{col: c[col] for col in METRICS.values()}})
    return out


def improvement_text(c: dict) -> str:
    """'1.23 / 1.45 / 1.30' (× latency / DRAM / energy), '–' where there is no 8-bit base."""
    vals = [c.get(f"improvement_{m}") for m in METRICS]
    return " / ".join("–" if v is None else f"{v:.2f}" for v in vals)


def _png(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def write_study(rows: list[dict], out_dir, meta: dict) -> dict[str, Path]:
    """Write everything for `rows` (from study.run_study, possibly several networks)."""
    from netfrontier.frontier import annotate
    from netfrontier.report import plot_frontier, plot_relative_bars, write_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = relative_improvements(rows)  # rows may come from separate runs
    hardware = list(meta.get("hardware") or [])
    paths: dict[str, Path] = {}
    paths["json"] = write_atomic(out / "results.json", json.dumps(
        {"meta": meta, "rows": rows}, indent=1, default=str))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
    w.writeheader()
    w.writerows(flat_rows(rows))
    paths["csv"] = write_atomic(out / "results.csv", buf.getvalue())
    images: list[tuple[str, Path]] = []
    base = _base_variant(rows)
    for hw in hardware:
        for m in METRICS:
            table = bar_tables(rows, hw, m)
            if table:
                what = f"{_QUANTITY[m]} improvement over {base} (×)"
                title = what[0].upper() + what[1:]
                p = plot_relative_bars(table, out / f"improvement_{m}_{hw}.png",
                                       f"{title}, {hw}", what)
                images.append((f"{title}: {base}'s {_QUANTITY[m]} per inference ÷ the "
                               f"variant's, {hw}", p))
    acc = accuracy_table(rows)
    if acc:
        p = plot_relative_bars(acc, out / "accuracy.png", "Top-1 on the held-out images",
                               "top-1 (%), ± 1 standard error", accuracy_table(rows, "top1_se"))
        images.append(("Top-1 of each variant (same held-out images), error bars ± one "
                       "standard error; the rounding of the weights in brackets", p))
    frontier_hw = hardware[0] if hardware else None
    if frontier_hw:
        fr = frontier_rows(rows, frontier_hw)
        if len(fr) >= 2:
            fr, lines = annotate(fr)
            for obj in METRICS:
                p = plot_frontier(fr, lines.get(obj), obj, out / f"frontier_{obj}.png",
                                  title=f"Top-1 vs {_QUANTITY[obj]} per inference, "
                                        f"{frontier_hw}")
                images.append((f"Frontier ({obj}) with quantized variants, {frontier_hw}", p))
    for cap, p in images:
        paths[p.stem] = p
    paths["html"] = write_atomic(out / "report.html", _html(rows, meta, hardware, images))
    paths["md"] = write_atomic(out / "summary.md", markdown_summary(rows, meta, hardware))
    return paths


def rerender(results_json, out_dir=None) -> dict[str, Path]:
    """Redraw everything from a results.json write_study wrote (into its folder by default),
    without rerunning the study."""
    path = Path(results_json)
    data = json.loads(path.read_text(encoding="utf-8"))
    return write_study(data["rows"], path.parent if out_dir is None else out_dir, data["meta"])


def markdown_summary(rows: list[dict], meta: dict, hardware: list[str]) -> str:
    """The figures as Markdown tables (generated, never typed in)."""
    lines = ["# Quantization results", "", str(meta.get("summary", "")), ""]
    acc = [r for r in rows if r.get("top1") is not None]
    if acc:
        lines += ["## Accuracy (same held-out images for every variant of a network)", "",
                  "| network | variant | method | rounding | top-1 % (± SE) "
                  "| drop vs FP32 (± paired SE) | top-5 % | images |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in acc:
            drop = "" if r.get("top1_drop") is None else \
                f"{r['top1_drop']:.2f} ± {r.get('top1_drop_se', 0):.2f}"
            lines.append(f"| {r['arch']} | {r['variant']} | {r['method']} | "
                         f"{rounding(r) or '–'} | {r['top1']:.2f} ± "
                         f"{r['top1_se']:.2f} | {drop} | {r['top5']:.2f} | {r['images']} |")
        lines.append("")
    for hw in hardware:
        lines += [f"## Modelled cost per inference on {hw}", "",
                  "| network | variant | method | rounding | latency ms | DRAM MB | energy mJ "
                  f"| × latency / DRAM / energy vs {_base_variant(rows)} |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            c = (r.get("cost") or {}).get(hw)
            if c:
                lines.append(f"| {r['arch']} | {r['variant']} | {r['method']} | "
                             f"{rounding(r) or '–'} | {c['latency_s'] * 1e3:.4g} | "
                             f"{c['dram_bytes'] / 1e6:.4g} | {c['energy_j'] * 1e3:.4g} | "
                             f"{improvement_text(c)} |")
        lines.append("")
    par = [r for r in rows if isinstance(r.get("onnx"), dict) and "file" in r["onnx"]]
    if par:
        lines += ["## QDQ ONNX export: ONNX Runtime vs the PyTorch simulation", "",
                  "| network | variant | method | images | argmax agreement | max abs diff "
                  "| max diff / max logit |", "|---|---|---|---|---|---|---|"]
        for r in par:
            o = r["onnx"]
            lines.append(f"| {r['arch']} | {r['variant']} | {r['method']} | {o['images']} | "
                         f"{o['argmax_agreement']:.3f} | {o['max_abs_diff']:.3g} | "
                         f"{o['rel_max_diff']:.3g} |")
        lines.append("")
    mixed = [r for r in rows if r.get("mixed")]
    for r in mixed:
        m = r["mixed"]
        lines += [f"## Mixed precision, {r['arch']}", "",
                  f"Objective {m['objective']} on {m['hardware']}, budget "
                  f"{m['budget_top1_drop']} points of top-1 (measured on the tuning images: "
                  f"{m['tune_top1_drop']}); layers per weight depth: {m['layers_per_bits']}.", ""]
    notes = meta.get("notes") or []
    lines += [f"- {n}" for n in notes]
    cmds = meta.get("commands") or {"all": meta.get("command", "")}
    lines += ["", "Commands:", ""] + [f"- {k}: `{v}`" for k, v in cmds.items()] + [""]
    return "\n".join(lines)


def _html(rows, meta, hardware, images) -> str:
    e = html.escape
    th = "".join(f"<th>{e(h)}</th>" for h in ("model", "variant", "method", "rounding",
                                               "top-1 %", "drop vs FP32 (paired SE)", "images"))
    for hw in hardware:
        th += f"<th>{e(hw)}: latency</th><th>DRAM</th><th>energy</th><th>× t / DRAM / E</th>"
    body = []
    for r in rows:
        drop = "" if r.get("top1_drop") is None else \
            f"{r['top1_drop']:+.2f} ± {r.get('top1_drop_se', 0):.2f}"
        top1 = "" if r.get("top1") is None else f"{r['top1']:.2f} ± {r['top1_se']:.2f}"
        cells = [e(r["model"]), e(r["variant"]), e(r["method"]), e(rounding(r) or "–"), top1,
                 drop, str(r.get("images", ""))]
        for hw in hardware:
            c = (r.get("cost") or {}).get(hw)
            if c:
                cells += [f"{c['latency_s'] * 1e3:.3f} ms", f"{c['dram_bytes'] / 1e6:.2f} MB",
                          f"{c['energy_j'] * 1e3:.3f} mJ",
                          improvement_text(c)]
            else:
                cells += ["–"] * 4
        body.append("<tr>" + "".join(f"<td>{x}</td>" for x in cells) + "</tr>")
    figs = "".join(f'<figure><img alt="{e(c)}" src="{_png(p)}"><figcaption>{e(c)}'
                   f"</figcaption></figure>" for c, p in images)
    notes = "".join(f"<li>{e(n)}</li>" for n in meta.get("notes", []))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Quantization study</title><style>
body{{font:14px/1.5 system-ui,sans-serif;margin:0;background:#f5f7fa;color:#1f2630}}
main{{max-width:1280px;margin:0 auto;padding:24px}}
table{{border-collapse:collapse;background:#fff;font-size:12.5px}}
td,th{{border-bottom:1px solid #e3e7ec;padding:4px 8px;text-align:right;white-space:nowrap}}
td:nth-child(-n+4),th:nth-child(-n+4){{text-align:left}}
figure{{background:#fff;border:1px solid #e3e7ec;border-radius:8px;padding:8px;margin:0 0 14px}}
figure img{{max-width:100%}} code{{background:#fff;padding:1px 4px}}
</style></head><body><main>
<h1>Quantization: accuracy and what it saves</h1>
<p>{e(meta.get("summary", ""))}</p>
<div style="overflow:auto"><table><thead><tr>{th}</tr></thead><tbody>{''.join(body)}</tbody></table></div>
<ul>{notes}</ul>
{figs}
<p>Command: <code>{e(meta.get("command", ""))}</code> · netfrontier {e(str(meta.get("tool_version", "")))}
· {e(str(meta.get("date", "")))}</p>
</main></body></html>
"""
