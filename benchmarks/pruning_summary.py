"""summary.md of the pruning study, from the JSON files benchmarks/pruning.py wrote.

    .venv/bin/python benchmarks/pruning_summary.py [benchmarks/results/pruning]
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from netfrontier.measure.accuracy import paired_correct  # noqa: E402

CHIP = "img-series4-1core"


def _table(head: list[str], rows: list[list]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out + [""]


def _ms(s: float) -> str:
    return f"{1e3 * s:.3f}"


def _lite(d: dict) -> list[str]:
    runs, small, targets = d["runs"], d.get("small", {}), d["targets"]
    chips = list(next(iter(targets.values())))
    out = ["## EfficientNet-Lite2 pruned for img-series4-1core", "",
           "Targets: the smaller compound-scaled networks' modelled latency at each preset's "
           "default weight bits (ms):", ""]
    out += _table(["target", *chips], [[k, *(_ms(v[c]) for c in chips)]
                                       for k, v in targets.items()])
    head = ["network", "params (M)", "MMAC", *(f"latency on {c} (ms)" for c in chips),
            "sample top-1 (held-out)", "drop vs Lite2 (points)", "estimated ImageNet top-1"]
    rows = []
    for tag, r in runs.items():
        if "_for_" in tag or "multiples_of" in tag:
            continue
        for v in r["rows"]:
            if tag != "lite2_to_lite1_hardware" and v["variant"].startswith("unpruned"):
                continue
            est = "" if v["estimated_top1"] is None else (
                f"{v['estimated_top1']:.1f} ± {v['top1_drop_se']:.1f} (estimated)")
            rows.append([f"{tag.replace('lite2_to_', '→ ')}: {v['variant']}",
                         f"{v['params'] / 1e6:.2f}", f"{v['macs'] / 1e6:.0f}",
                         *(_ms(v["cost"][c]["latency_s"]) for c in chips),
                         f"{v['top1']:.1f} ± {v['top1_se']:.1f}",
                         f"{v['top1_drop']:+.1f} ± {v['top1_drop_se']:.1f}", est])
    for name, s in small.items():
        rows.append([f"{name} (compound-scaled)", "", "",
                     *(_ms(s["latency_s"][c]) for c in chips),
                     f"{s['top1']:.1f} ± {s['top1_se']:.1f}", "",
                     f"{s['published_top1']:.1f} (reference)"])
        rows.append([f"{name} + PTQ W8A8", "", "", *(_ms(s["ptq8_latency_s"][c]) for c in chips),
                     f"{s['ptq8_top1']:.1f} ± {s['ptq8_top1_se']:.1f}", "", ""])
    out += ["Held-out half of imagenet-sample (images measured once); the estimated figure is "
            "Lite2's published 77.6 minus the paired drop.", ""]
    out += _table(head, rows)
    out += _versus(runs, small)
    out += _allocation(runs, chips)
    out += _rounding(runs)
    return out


def _rounding(runs: dict) -> list[str]:
    a, b = runs.get("lite2_to_lite1_hardware"), runs.get("lite2_to_lite1_multiples_of_8")
    if not (a and b):
        return []
    out = ["### What rounding to the tile buys", "",
           f"The Lite1-point allocation on {CHIP} in multiples of the array tile "
           f"({a['allocation']['quantum']}) and in multiples of 8, as frameworks round (widths "
           "between tile multiples priced by interpolation, as a FLOP-proportional model "
           "would; the plan then verified on the captured shapes). No recovery.", ""]
    rows = []
    for r in (a, b):
        v = next(v for v in r["rows"] if v["variant"].startswith("pruned"))
        rows.append([r["allocation"]["quantum"], sum(r["allocation"]["kept"].values()),
                     _ms(v["cost"][CHIP]["latency_s"]), f"{v['macs'] / 1e6:.0f}",
                     f"{v['top1']:.1f} ± {v['top1_se']:.1f}"])
    out += _table(["multiple of", "channels kept", f"latency on {CHIP} (ms)", "MMAC",
                   "sample top-1 (no recovery)"], rows)
    va = next(v for v in a["rows"] if v["variant"].startswith("pruned"))
    vb = next(v for v in b["rows"] if v["variant"].startswith("pruned"))
    d, se = paired_correct(vb["correct1"], va["correct1"])
    return out + [f"Tile-rounded minus multiples of 8: {d:+.1f} ± {se:.1f} points (paired).", ""]


def _final(run: dict, ptq: bool = False) -> dict | None:
    """The pruned network's last row: after distillation (and PTQ when asked)."""
    want = [v for v in run["rows"] if not v["variant"].startswith("unpruned")
            and (("PTQ" in v["variant"]) == ptq)]
    return want[-1] if want else None


def _versus(runs: dict, small: dict) -> list[str]:
    out = ["### Does the pruned Lite2 beat the smaller compound-scaled network?", "",
           "Paired on the same held-out images (pruned Lite2 − the small network, sample "
           "top-1); and on the ImageNet scale, the estimated figure against the small "
           "network's published one.", ""]
    rows = []
    for tag, name in (("lite2_to_lite1_hardware", "efficientnet_lite1"),
                      ("lite2_to_lite1_uniform", "efficientnet_lite1"),
                      ("lite2_to_lite0_hardware", "efficientnet_lite0")):
        if tag not in runs or name not in small or "correct1" not in small[name]:
            continue
        for ptq in (False, True):
            p = _final(runs[tag], ptq)
            if p is None:
                continue
            s_corr = small[name]["ptq8_correct1" if ptq else "correct1"]
            d, se = paired_correct(s_corr, p["correct1"])
            est = "" if p["estimated_top1"] is None else (
                f"{p['estimated_top1']:.1f} ± {p['top1_drop_se']:.1f} vs "
                f"{small[name]['published_top1']:.1f}")
            rows.append([tag, name, "W8A8 PTQ both" if ptq else "FP32",
                         f"{d:+.1f} ± {se:.1f}", est])
    return out + _table(["pruned run", "against", "bits", "sample top-1 difference",
                         "estimated vs reference ImageNet top-1"], rows)


def _allocation(runs: dict, chips: list[str]) -> list[str]:
    allocs = {t: r for t, r in runs.items() if t == "lite2_to_lite1_hardware" or "_for_" in t}
    if len(allocs) < 2:
        return []
    out = ["### The allocation depends on the chip", "",
           "Each allocation was made for one chip at Lite1's modelled latency there (no "
           "recovery), then costed on every chip; sample top-1 before recovery, held-out "
           "(ms).", ""]
    rows = []
    first = {c: r for r in allocs.values() for c in [r["hw"]]}
    for tag, r in allocs.items():
        made = r["hw"]
        v = next(v for v in r["rows"] if v["variant"].startswith("pruned"))
        kept = sum(r["allocation"]["kept"].values())
        cells = []
        for c in chips:
            lat, goal = v["cost"][c]["latency_s"], first[c]["target"] if c in first else None
            mark = "" if goal is None else (" (meets)" if lat <= goal * (1 + 1e-9) else
                                           f" ({100 * (lat / goal - 1):+.1f}% over)")
            cells.append(_ms(lat) + mark)
        rows.append([made, kept, *cells, f"{v['top1']:.1f} ± {v['top1_se']:.1f}"])
    out += _table(["allocated for", "channels kept", *(f"on {c} (vs its Lite1 target)"
                                                       for c in chips),
                   "sample top-1 (no recovery)"], rows)
    base = next(iter(allocs.values()))
    vb = next(v for v in base["rows"] if v["variant"].startswith("pruned"))
    for tag, r in list(allocs.items())[1:]:
        v = next(v for v in r["rows"] if v["variant"].startswith("pruned"))
        d, se = paired_correct(vb["correct1"], v["correct1"])
        out += [f"- allocated for {r['hw']} minus allocated for {base['hw']}, before "
                f"recovery: {d:+.1f} ± {se:.1f} points (paired)."]
    out += [""]
    h, u = runs.get("lite2_to_lite1_hardware"), runs.get("lite2_to_lite1_uniform")
    if h and u:
        vh = next(v for v in h["rows"] if v["variant"].startswith("pruned"))
        vu = next(v for v in u["rows"] if v["variant"].startswith("pruned"))
        d, se = paired_correct(vu["correct1"], vh["correct1"])
        out += [f"Hardware-aware minus uniform at the same modelled latency on {CHIP}, before "
                f"recovery: {d:+.1f} ± {se:.1f} points (paired)."]
        fh, fu = _final(h), _final(u)
        if fh is not fu and "distillation" in fh["variant"] and "distillation" in fu["variant"]:
            d, se = paired_correct(fu["correct1"], fh["correct1"])
            out += [f"After distillation: {d:+.1f} ± {se:.1f} points."]
        out += [""]
    return out


def _pitfall(d: dict) -> list[str]:
    out = ["## The folding pitfall (EfficientNet-Lite0, 5% of every expanded group)", "",
           f"FP32 held-out sample top-1 {d['fp32']:.1f}; "
           f"{sum(d['removed'].values())} channels removed in {len(d['removed'])} groups.", ""]
    rows = [[k, f"{v['top1']:.1f}", f"−{v['drop']:.1f} ± {v['drop_se']:.1f}"]
            for k, v in d.items() if isinstance(v, dict) and "top1" in v]
    return out + _table(["variant", "top-1", "drop (paired)"], rows)


def _lottery(name: str, d: dict) -> list[str]:
    m = d["meta"]
    out = [f"## Lottery tickets: {m['model']} on {m['dataset']}", "",
           f"{len(d['summary']) // 3} rounds × 3 conditions × {len(m['config']['seeds'])} seeds, "
           f"{m['config']['epochs']} epochs per training, rewind to "
           f"{'initialisation' if not m['rewind_iter'] else 'iteration ' + str(m['rewind_iter'])}; "
           f"{m['seconds'] / 60:.0f} min. Test accuracy (%), mean ± std over seeds [min, max].", ""]
    by = {}
    for r in d["summary"]:
        by.setdefault(r["round"], {})[r["condition"]] = r
    conds = sorted({r["condition"] for r in d["summary"]})
    rows = []
    for rnd, cs in sorted(by.items()):
        dens = next(iter(cs.values()))["density"]
        rows.append([rnd, f"{100 * dens:.1f}%", *(
            f"{cs[c]['accuracy_mean']:.2f} ± {cs[c]['accuracy_std']:.2f} "
            f"[{cs[c]['accuracy_min']:.2f}, {cs[c]['accuracy_max']:.2f}]" if c in cs else ""
            for c in conds)])
    out += _table(["round", "weights left", *conds], rows)
    if d.get("costs"):
        out += ["What a winning ticket buys (first seed, relative to the dense network):", ""]
        rows = [[c["hardware"], f"{100 * c['density']:.1f}%", c["weight_compression"],
                 c["skip_zero_weights"], f"{c['latency_vs_dense']:.3f}",
                 f"{c['dram_vs_dense']:.3f}", f"{c['energy_vs_dense']:.3f}"]
                for c in d["costs"]]
        out += _table(["chip", "weights left", "compression", "skips zeros", "latency ×",
                       "DRAM ×", "energy ×"], rows)
    out += [f"Plot: `{name}/tickets.png`.", ""]
    return out


def write_summary(out: Path) -> Path | None:
    out = Path(out)
    parts = ["# Pruning study", "",
             "Generated by `benchmarks/pruning_summary.py` from the JSON files "
             "`benchmarks/pruning.py` wrote here.", ""]
    if (out / "lite.json").is_file():
        parts += _lite(json.loads((out / "lite.json").read_text()))
    if (out / "pitfall.json").is_file():
        parts += _pitfall(json.loads((out / "pitfall.json").read_text()))
    for p in sorted(out.glob("lottery_*/results.json")):
        parts += _lottery(p.parent.name, json.loads(p.read_text()))
    if len(parts) == 4:
        return None
    path = out / "summary.md"
    path.write_text("\n".join(parts))
    return path


if __name__ == "__main__":
    print(write_summary(Path(sys.argv[1]) if len(sys.argv) > 1
                        else ROOT / "benchmarks" / "results" / "pruning"))
