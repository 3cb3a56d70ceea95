"""The pruning report: results.json, variants and per-layer CSVs, frontiers, report.html.

On the frontier, pruned (and quantized) variants stand beside the zoo at their *estimated*
ImageNet top-1 (the parent's published figure minus the paired drop on the held-out images),
which is the zoo's scale; the measured sample figures are in the table beside them.
"""
from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path

from netfrontier.frontier import OBJECTIVES

_UNITS = {"latency": ("latency_s", 1e3, "ms"), "dram": ("dram_bytes", 1e-6, "MB"),
          "energy": ("energy_j", 1e3, "mJ")}


def frontier_points(result: dict, zoo: list[dict], hw: str) -> list[dict]:
    """Zoo rows plus one row per variant with an estimated top-1, costed on `hw`."""
    out = [dict(r) for r in zoo]
    for r in result["rows"]:
        if r.get("estimated_top1") is None or hw not in r["cost"]:
            continue
        c = r["cost"][hw]
        out.append({"model": f"{result['model']} {r['variant']}", "arch": "pruned",
                    "weights": "", "top1": r["estimated_top1"],
                    "top1_source": "estimated: parent's published top-1 minus the paired drop "
                                   f"on {r['images']} held-out images",
                    "params": r["params"], "macs": r["macs"], "unsupported_layers": 0, **c})
    return out


def _csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def variant_rows(result: dict) -> list[dict]:
    flat = []
    for r in result["rows"]:
        d = {k: v for k, v in r.items() if k != "cost"}
        for hw, c in r["cost"].items():
            for k, v in c.items():
                d[f"{hw}:{k}"] = v
        flat.append(d)
    return flat


def write_prune_report(result: dict, out_dir, meta: dict, zoo: list[dict] | None = None
                       ) -> dict[str, Path]:
    from netfrontier.frontier import annotate
    from netfrontier.report import plot_frontier, write_atomic

    out = Path(out_dir)
    paths = {"json": write_atomic(out / "results.json", json.dumps(
        {"meta": meta, **result}, indent=1, default=str))}
    flat = variant_rows(result)
    cols = list(dict.fromkeys(k for r in flat for k in r if not isinstance(r[k], (dict, list))))
    paths["csv"] = write_atomic(out / "variants.csv", _csv(flat, cols))
    layers = result.get("layers", [])
    if layers:
        paths["layers"] = write_atomic(out / "layers.csv", _csv(layers, list(layers[0])))
    images = []
    if zoo:
        pts, lines = annotate(frontier_points(result, zoo, result["hw"]))
        for obj in OBJECTIVES:
            p = plot_frontier(pts, lines.get(obj), obj, out / f"frontier_{obj}.png",
                              title=f"Top-1 (reference and estimated) vs {obj}, {result['hw']}")
            images.append((f"Pruned variants among the zoo, {obj} on {result['hw']}", p))
            paths[p.stem] = p
    paths["html"] = write_atomic(out / "report.html", _html(result, meta, images))
    return paths


def _html(result: dict, meta: dict, images) -> str:
    import base64

    e = html.escape
    hws = list(result["rows"][0]["cost"]) if result["rows"] else []
    head = ["variant", "top-1 (sample) %", "drop (paired SE)", "estimated ImageNet top-1",
            "MACs", "params"] + [f"{h}: latency / DRAM / energy" for h in hws]
    body = []
    for r in result["rows"]:
        cells = [e(r["variant"]), f"{r['top1']:.2f} ± {r['top1_se']:.2f}",
                 f"{r['top1_drop']:+.2f} ± {r['top1_drop_se']:.2f}",
                 "–" if r.get("estimated_top1") is None else f"{r['estimated_top1']:.2f}",
                 f"{r['macs'] / 1e6:.0f} M", f"{r['params'] / 1e6:.2f} M"]
        for h in hws:
            c = r["cost"][h]
            cells.append(f"{c['latency_s'] * 1e3:.3f} ms / {c['dram_bytes'] / 1e6:.2f} MB / "
                         f"{c['energy_j'] * 1e3:.3f} mJ")
        body.append("<tr>" + "".join(f"<td>{x}</td>" for x in cells) + "</tr>")
    a = result["allocation"]
    alloc = "".join(f"<tr><td>{e(k)}</td><td>{a['channels'][k]} → {v}</td></tr>"
                    for k, v in a["kept"].items())
    lay = "".join(
        f"<tr><td>{e(r['layer'])}</td><td>{e(r['op'])}</td>"
        f"<td>{r['latency_before_s'] * 1e6:.1f} → {r['latency_after_s'] * 1e6:.1f} µs</td>"
        f"<td>{r['dram_before'] / 1e3:.1f} → {r['dram_after'] / 1e3:.1f} kB</td></tr>"
        for r in result.get("layers", []))
    figs = "".join(
        f'<figure><img alt="{e(c)}" src="data:image/png;base64,'
        f'{base64.b64encode(Path(p).read_bytes()).decode()}"><figcaption>{e(c)}</figcaption>'
        f"</figure>" for c, p in images)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Pruning: {e(result['model'])} for {e(result['hw'])}</title><style>
body{{font:14px/1.5 system-ui,sans-serif;margin:0;background:#f5f7fa;color:#1f2630}}
main{{max-width:1280px;margin:0 auto;padding:24px}}
table{{border-collapse:collapse;background:#fff;font-size:12.5px;margin-bottom:16px}}
td,th{{border-bottom:1px solid #e3e7ec;padding:4px 8px;text-align:right;white-space:nowrap}}
td:first-child,th:first-child{{text-align:left}}
figure{{background:#fff;border:1px solid #e3e7ec;border-radius:8px;padding:8px;margin:0 0 14px}}
figure img{{max-width:100%}}
</style></head><body><main>
<h1>Pruning {e(result['model'])} for {e(result['hw'])}</h1>
<p>{e(result['objective'])} target {result['target']:.4g} (unpruned {result['base_cost']:.4g});
channel multiples of {a['quantum']}; top-1 measured on held-out images, drops paired with the
unpruned network; estimated ImageNet top-1 = the parent's published figure minus that drop.</p>
<table><thead><tr>{''.join(f'<th>{e(h)}</th>' for h in head)}</tr></thead>
<tbody>{''.join(body)}</tbody></table>
{figs}
<h2>Channels kept per group</h2><table><tbody>{alloc}</tbody></table>
<h2>Per layer on {e(result['hw'])}</h2>
<table><thead><tr><th>layer</th><th>op</th><th>latency</th><th>DRAM</th></tr></thead>
<tbody>{lay}</tbody></table>
<p>Command: <code>{e(meta.get('command', ''))}</code> · {e(str(meta.get('date', '')))}</p>
</main></body></html>
"""
