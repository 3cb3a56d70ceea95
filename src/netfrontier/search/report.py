"""The end of a search: the Pareto set measured once on test images, baselines, plots, report.

`finish` takes a finished study (and its random-search twin when there is one): the measured,
feasible, non-dominated trials on the search objectives are the Pareto set; each is rebuilt
and measured once on the test images, quantized (the final rung), and costed on the chip and
on every `also_hw` chip. For the Lite family the baselines are EfficientNet-Lite0/1/2 at their
native resolution and the two nearest others, and uniformly pruned (every block's expanded
channels at 0.75) at native resolution, measured the same way; the zoo is costed on the chip at
8-bit with its published top-1. Written (atomically): `pareto.csv`, `trials.csv`,
`results.json`, `frontier.png`, `hypervolume.png` and a self-contained `report.html`.
"""
from __future__ import annotations

import base64
import csv
import html
import io
import json
import time
from pathlib import Path

import numpy as np

from netfrontier.search.run import (OBJECTIVES, SearchConfig, feasible, hv_curve,
                                    measured_trials, reference_cost, write_json)
from netfrontier.search.space import Candidate, describe, stage_table

MAX_FINAL = 4


def nondominated(rows: list[dict], objectives) -> list[dict]:
    """Rows not dominated on the objectives (top1 maximised, the rest minimised)."""
    def better(a, b):
        ge = all((a[o] >= b[o]) if o == "top1" else (a[o] <= b[o]) for o in objectives)
        gt = any((a[o] > b[o]) if o == "top1" else (a[o] < b[o]) for o in objectives)
        return ge and gt

    out, seen = [], set()
    for r in rows:
        if r["candidate_id"] in seen:
            continue
        if not any(better(q, r) for q in rows):
            out.append(r)
            seen.add(r["candidate_id"])
    return sorted(out, key=lambda r: r[objectives[1]])


def _spread(rows: list[dict], key: str, n: int) -> list[dict]:
    """At most n rows, evenly over the cost range (the ends always)."""
    if len(rows) <= n:
        return rows
    idx = sorted({int(round(i)) for i in np.linspace(0, len(rows) - 1, n)})
    return [rows[i] for i in idx]


def trial_rows(study) -> list[dict]:
    out = []
    for t in study.get_trials(deepcopy=False):
        ua = t.user_attrs
        if "candidate" not in ua:
            continue
        out.append({"study": study.study_name, "trial": t.number, "state": t.state.name,
                    "candidate_id": ua["candidate_id"], "fidelity": ua.get("fidelity", ""),
                    "measured": ua.get("measured", False), "feasible": feasible(t),
                    "select_top1": ua.get("select_top1"), **{f"cost_{k}": v for k, v in
                                                            ua.get("cost", {}).items()},
                    "seconds": ua.get("seconds"), "reused_from": ua.get("reused_from"),
                    "retry_of": t.system_attrs.get("failed_trial"),
                    "host": ua.get("environment", {}).get("host"),
                    "pid": ua.get("environment", {}).get("pid"),
                    "candidate": json.dumps(ua["candidate"]["params"], sort_keys=True)})
    return out


def _finals_path(ev, out: Path) -> Path:
    """Final (test-image) results live beside the image cache, so studies sharing it share
    them: each network is measured on the test images once."""
    return Path(ev.cache_dir or out) / "finals.json"


def _finals_cache(ev, out: Path) -> dict:
    p = _finals_path(ev, out)
    return json.loads(p.read_text()) if p.is_file() else {}


def final_eval(ev, c: Candidate, cache: dict, out: Path, bits=8) -> dict:
    key = f"{c.id}:{bits}:{ev.limit or 'all'}"
    if key not in cache:
        cache.update(_finals_cache(ev, out))  # another process may have added some
        if key not in cache:
            cache[key] = ev.final(c, wbits=bits)
            write_json(_finals_path(ev, out), cache)
    return cache[key]


def lite_baselines(space, native_only: bool = False) -> list[tuple[str, Candidate]]:
    """(label, candidate): each Lite at native and the two nearest other resolutions, and
    uniformly pruned (0.75 of every block's expanded channels) at native resolution."""
    from dataclasses import replace

    from netfrontier.models.efficientnet_lite import VARIANTS
    from netfrontier.search.space import LITE_PARENTS

    res_all = sorted(set(space.resolutions) | {VARIANTS[p][1] for p in LITE_PARENTS})
    base = replace(space, parents=LITE_PARENTS, resolutions=tuple(res_all),
                   widths=tuple(sorted(set(space.widths) | {1.0, 0.75}, reverse=True)),
                   kernels=tuple(sorted(set(space.kernels) | {5}, reverse=True)),
                   max_drop=max(space.max_drop, 1), wbits=(8,))
    out = []
    for p in LITE_PARENTS:
        native = VARIANTS[p][1]
        others = sorted((r for r in space.resolutions if r != native),
                        key=lambda r: (abs(r - native), r))[:0 if native_only else 2]
        for r in sorted([native] + others):
            v = {n: ch[0] for n, ch in base.knobs().items()}
            v.update({"parent": p, "resolution": r})
            for n in v:
                if n.startswith("drop"):
                    v[n] = 0
                elif n.startswith("k"):
                    v[n] = 5
                elif n.startswith("w"):
                    v[n] = 1.0
            out.append((f"{p} @ {r}", base.candidate(v)))
        v = {n: (0 if n.startswith("drop") else 5 if n.startswith("k") else 0.75
                 if n.startswith("w") else ch[0]) for n, ch in base.knobs().items()}
        v.update({"parent": p, "resolution": native})
        out.append((f"{p} @ {native}, uniform 0.75 width", base.candidate(v)))
    return out


def _staircase(costs, tops):
    from netfrontier.frontier import pareto_front

    costs, tops = np.asarray(costs, float), np.asarray(tops, float)
    on = pareto_front(costs, tops)
    order = np.argsort(costs[on])
    return costs[on][order], tops[on][order]


def _fig(w=7.5, h=5.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=120)
    FigureCanvasAgg(fig)
    return fig


def _png(fig, path: Path) -> bytes:
    from netfrontier.report import write_atomic

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_atomic(path, buf.getvalue())
    return buf.getvalue()


def plot_frontier(zoo: list[dict], baselines: list[dict], searched: list[dict], hw: str,
                  cost_key: str, unit: str, path: Path, ylabel: str) -> bytes:
    fig = _fig()
    ax = fig.add_subplot(111)
    if zoo:
        zc = [r[cost_key] for r in zoo]
        zt = [r["top1"] for r in zoo]
        ax.scatter(zc, zt, s=12, c="#8796aa", label="zoo (published top-1, 8-bit cost)")
        sx, sy = _staircase(zc, zt)
        if len(sx):
            ax.step(list(sx) + [max(zc) * 1.5], list(sy) + [sy[-1]], where="post",
                    c="#1d5fa8", lw=1.2, label="zoo staircase")
    # the axes frame the searched networks; a collapsed baseline (far below) sits on the
    # bottom edge as a ▼, so it does not squash the frontier into a line
    floor = min([s["top1"] for s in searched] + [70.0]) - 5
    shown = [b for b in baselines if b["top1"] >= floor]
    under = [b for b in baselines if b["top1"] < floor]
    if shown:
        ax.errorbar([b[cost_key] for b in shown], [b["top1"] for b in shown],
                    yerr=[b.get("top1_se", 0) for b in shown], fmt="s", ms=4, c="#2a9d8f",
                    label="baselines (measured 8-bit)", capsize=2)
    if under:
        ax.scatter([b[cost_key] for b in under], [floor + 0.6] * len(under), marker="v", s=22,
                   c="#2a9d8f", label=f"baselines below {floor:.0f}% (collapsed: "
                   + ", ".join(f"{b['top1']:.0f}" for b in under) + ")")
    if searched:
        ax.errorbar([s[cost_key] for s in searched], [s["top1"] for s in searched],
                    yerr=[s.get("top1_se", 0) for s in searched], fmt="*", ms=9, c="#b8322a",
                    label="searched Pareto set (measured 8-bit)", capsize=2)
    ax.set_xscale("log")
    ax.set_xlabel(f"{cost_key.replace('_', ' ')} on {hw} ({unit}, modelled)")
    ax.set_ylabel(ylabel)
    ours = [r[cost_key] for r in searched + baselines]
    if ours and zoo:
        ax.set_ylim(floor, max([r["top1"] for r in searched + shown + zoo
                                if r[cost_key] <= 4 * max(ours)]) + 1.5)
        ax.set_xlim(min(ours + [r[cost_key] for r in zoo]) / 1.3, 4 * max(ours))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    return _png(fig, path)


def plot_hypervolume(curves: dict[str, list[float]], path: Path, title: str) -> bytes:
    fig = _fig(6.5, 4.0)
    ax = fig.add_subplot(111)
    colors = ["#b8322a", "#1d5fa8", "#2a9d8f", "#8796aa", "#e9c46a"]
    for i, (label, ys) in enumerate(curves.items()):
        ax.plot(range(1, len(ys) + 1), ys, label=label, c=colors[i % len(colors)])
    ax.set_xlabel("measured trials")
    ax.set_ylabel("hypervolume (top-1 points × decades of cost)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return _png(fig, path)


def zoo_costs(hw, wbits: int = 8) -> list[dict]:
    """The classification zoo on `hw` at `wbits` with published (reference) top-1."""
    from netfrontier.zoo import zoo_rows

    bits = wbits if wbits in hw.weight_bits else None
    rows = zoo_rows(hw, wbits=bits, abits=8 if 8 in hw.activation_bits else None)
    out = []
    for r in rows:
        if r.get("top1") is None or not str(r.get("top1_source", "")).startswith("reference"):
            continue
        out.append({"model": r["model"], "top1": r["top1"], "latency_ms": r["latency_s"] * 1e3,
                    "dram_mb": r["dram_bytes"] / 1e6, "energy_mj": r["energy_j"] * 1e3,
                    "params": r["params"]})
    return out


def beats_zoo(searched: list[dict], zoo: list[dict], cost_key: str = "latency_ms",
              saving: float = 0.2, name_key: str = "model") -> dict:
    """Against the staircase: for each searched network, the cheapest network of `zoo` at
    least as accurate within one SE (top-1 ≥ searched − SE; the one a user would otherwise
    ship at that accuracy). Returns the searched network that saves most against it, with
    `above` true when it matches that network (searched ≥ its top-1 − SE) and saves ≥
    `saving`; and `literal`, the issue's weaker test (any network it matches, the most
    accurate of those it beats by `saving`), which a slow zoo network can satisfy."""
    best, literal = None, None
    # the Lite parents in the zoo are compared as baselines, not as zoo networks
    rows = [z for z in zoo
            if name_key != "model" or not z["model"].startswith("efficientnet_lite")]
    for s in searched:
        se = s.get("top1_se", 0)
        peers = [z for z in rows if z["top1"] >= s["top1"] - se]
        if peers:
            z = min(peers, key=lambda z: z[cost_key])
            cut = 1 - s[cost_key] / z[cost_key]
            v = {"searched": s["candidate_id"], "against": z[name_key], "searched_top1": s["top1"],
                 "searched_se": se, "against_top1": z["top1"], "searched_cost": s[cost_key],
                 "against_cost": z[cost_key], "saving": cut,
                 "above": bool(s["top1"] >= z["top1"] - se and cut >= saving)}
            if best is None or (v["above"], cut) > (best["above"], best["saving"]):
                best = v
        for z in rows:
            if s["top1"] >= z["top1"] - se and s[cost_key] <= (1 - saving) * z[cost_key]:
                cut = 1 - s[cost_key] / z[cost_key]
                if literal is None or (z["top1"], cut) > (literal["against_top1"],
                                                          literal["saving"]):
                    literal = {"searched": s["candidate_id"], "against": z[name_key],
                               "against_top1": z["top1"], "searched_top1": s["top1"],
                               "saving": cut}
    return {**best, "literal": literal} if best else {}


def finish(out: Path, study, cfg: SearchConfig, ev, space, random_study=None, also_hw=(),
           zoo: bool = True, baselines: bool = True, say=lambda s: None, extra_meta=None,
           started: float | None = None) -> dict:
    from netfrontier.hardware.registry import get_hardware

    out = Path(out)
    obj_cost = cfg.objectives[1]
    ckey = OBJECTIVES[obj_cost][0]
    unit = OBJECTIVES[obj_cost][2]
    ref = reference_cost(space, ev, cfg)
    cache = _finals_cache(ev, out)
    rows = []
    for t in measured_trials(study):
        if not feasible(t):
            continue
        rows.append({"trial": t.number, "candidate_id": t.user_attrs["candidate_id"],
                     **t.user_attrs["objectives"], "select_top1_se":
                     t.user_attrs.get("select_top1_se", 0), "cost": t.user_attrs["cost"],
                     "candidate": t.user_attrs["candidate"]})
    pareto = _spread(nondominated(rows, cfg.objectives), ckey, MAX_FINAL)
    lite = space.family == "efficientnet_lite"
    others = [get_hardware(h) for h in also_hw if h != ev.hw.name]
    searched = []
    for r in pareto:
        c = Candidate.from_json(r["candidate"])
        say(f"final: {c.id} on the test images ({describe(c)})")
        f = final_eval(ev, c, cache, out)
        row = {"kind": "searched", "candidate_id": c.id, "trial": r["trial"],
               "description": describe(c), "stages": stage_table(c),
               "select_top1": r["top1"], "select_top1_se": r["select_top1_se"],
               "test_top1": f["test_top1"], "bits": f["bits"],
               "top1": f["estimated_top1"] if lite else f["test_top1"],
               "top1_se": f["drop_se"] if lite else f["test_top1_se"],
               "top1_label": "estimated ImageNet top-1 (published parent − paired 8-bit drop "
                             "on test images)" if lite else "test top-1 (measured, 8-bit)",
               **{k: r["cost"][k] for k in ("latency_ms", "dram_mb", "energy_mj", "params",
                                            "macs", "activation_mb")},
               "other_hw": {h.name: ev.cost(c, h) for h in others},
               "candidate": c.to_json()}
        if lite:
            row.update({"drop": f["drop"], "drop_se": f["drop_se"]})
        searched.append(row)
    base_rows = []
    if lite and baselines:
        for label, c in lite_baselines(space):
            say(f"baseline: {label} on the test images")
            f = final_eval(ev, c, cache, out)
            cost = ev.cost(c)
            base_rows.append({"kind": "baseline", "label": label, "candidate_id": c.id,
                              "description": describe(c), "top1": f["estimated_top1"],
                              "top1_se": f["drop_se"], "test_top1": f["test_top1"],
                              "drop": f["drop"], "bits": f["bits"],
                              **{k: cost[k] for k in ("latency_ms", "dram_mb", "energy_mj",
                                                      "params", "macs")},
                              "other_hw": {h.name: ev.cost(c, h) for h in others}})
    zoo_rows_ = zoo_costs(ev.hw) if (lite and zoo) else []
    curves = {f"{cfg.sampler} ({study.study_name})": hv_curve(study, cfg, ref)}
    if random_study is not None:
        rcfg = SearchConfig.from_json(random_study.user_attrs["netfrontier_config"])
        curves[f"random ({random_study.study_name})"] = hv_curve(random_study, rcfg, ref)
    ylabel = "ImageNet top-1 % (zoo: published; ours: estimated, 8-bit)" if lite \
        else "test top-1 % (8-bit)"
    png_front = plot_frontier(zoo_rows_, base_rows, searched, ev.hw.name, ckey, unit,
                              out / "frontier.png", ylabel)
    png_hv = plot_hypervolume(curves, out / "hypervolume.png",
                              f"{space.family} on {ev.hw.name}: hypervolume vs measured trials")
    verdict = beats_zoo(searched, zoo_rows_, ckey) if zoo_rows_ else {}
    vs_base = beats_zoo(searched, base_rows, ckey, name_key="label") if base_rows else {}
    result = {"study": study.study_name, "config": cfg.to_json(), "hardware": ev.hw.name,
              "pareto": searched, "baselines": base_rows, "zoo": zoo_rows_,
              "hypervolume": {k: (v[-1] if v else 0.0) for k, v in curves.items()},
              "hypervolume_curves": curves, "reference_cost": ref, "beats_zoo": verdict,
              "beats_baselines": vs_base,
              "trials": trial_rows(study) + (trial_rows(random_study) if random_study else []),
              **(extra_meta or {})}
    if started is not None:  # the whole run: search and the final measurements
        result["wall_s"] = time.time() - started
    write_json(out / "results.json", result)
    _write_csv(out / "pareto.csv", [{k: v for k, v in r.items()
                                     if k not in ("stages", "other_hw", "candidate")}
                                    for r in searched + base_rows])
    _write_csv(out / "trials.csv", result["trials"])
    _write_html(out / "report.html", result, png_front, png_hv, obj_cost, unit)
    return result


def _write_csv(path: Path, rows: list[dict]) -> None:
    from netfrontier.report import write_atomic

    cols = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    for r in rows:
        w.writerow({k: (json.dumps(v) if isinstance(v, (dict, list)) else v)
                    for k, v in r.items()})
    write_atomic(path, buf.getvalue())


def _f(v, d=2):
    return "" if v is None else (f"{v:.{d}f}" if isinstance(v, float) else html.escape(str(v)))


def _write_html(path: Path, res: dict, png_front: bytes, png_hv: bytes, obj: str,
                unit: str) -> None:
    from netfrontier.report import write_atomic

    ckey = OBJECTIVES[obj][0]
    e = html.escape
    parts = [f"<!doctype html><meta charset='utf-8'><title>search: {e(res['study'])}</title>",
             "<style>body{font:14px system-ui,sans-serif;max-width:1100px;margin:2em auto;"
             "color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid "
             "#ccc;padding:3px 6px;font-size:12px}th{background:#f3f3f3}</style>",
             f"<h1>Architecture search on {e(res['hardware'])}</h1>",
             f"<p>Study <code>{e(res['study'])}</code>: sampler {e(res['config']['sampler'])},"
             f" {res['config']['trials']} measured trials, objectives "
             f"{', '.join(res['config']['objectives'])}, constraints "
             f"{e(json.dumps(res['config']['constraints'])) or 'none'}.</p>"]
    hv = res["hypervolume"]
    parts.append("<p>Final hypervolume: " + "; ".join(f"{e(k)} {v:.3f}" for k, v in hv.items())
                 + ".</p>")
    for key, what in (("beats_zoo", "the zoo's staircase"), ("beats_baselines",
                                                             "the Lite baselines")):
        b = res.get(key)
        if b:
            verdict = "Above" if b["above"] else "Not above"
            parts.append(f"<p><b>{verdict} {what}</b> (≥ 20% lower {e(obj)} than the cheapest "
                         "network at least as accurate within one SE): best is "
                         f"{e(b['searched'])} at {b['searched_top1']:.2f} ± "
                         f"{b['searched_se']:.2f} (estimated) against {e(str(b['against']))} "
                         f"({b['against_top1']:.2f}): {100 * b['saving']:+.0f}% lower "
                         f"{e(obj)}.</p>")
            lit = b.get("literal")
            if key == "beats_zoo" and lit and not b["above"]:
                parts.append(f"<p>(The weaker test, any zoo network it matches: "
                             f"{e(lit['searched'])} against {e(lit['against'])} "
                             f"({lit['against_top1']:.2f}), {100 * lit['saving']:.0f}% lower; "
                             "that network is not on the staircase.)</p>")
    img = base64.b64encode(png_front).decode()
    parts.append(f"<img alt='frontier' src='data:image/png;base64,{img}' width='800'>")
    parts.append("<h2>Pareto set (measured once on the test images)</h2>")
    for r in res["pareto"]:
        parts.append(f"<h3>{e(r['candidate_id'])} (trial {r['trial']})</h3><p>"
                     f"{e(r['description'])}. {e(r['top1_label'])}: {r['top1']:.2f} ± "
                     f"{r['top1_se']:.2f}; select top-1 {r['select_top1']:.2f}; test top-1 "
                     f"{r['test_top1']:.2f} ({e(r['bits'])}); {obj} {r[ckey]:.4g} {unit}, "
                     f"{r['params'] / 1e6:.2f} M parameters, {r['macs'] / 1e6:.0f} M MACs."
                     + "".join(f" On {e(h)}: {v['latency_ms']:.4g} ms."
                               for h, v in r["other_hw"].items()) + "</p>")
        st = r["stages"]
        cols = list(st[0]) if st else []
        parts.append("<table><tr>" + "".join(f"<th>{e(c)}</th>" for c in cols) + "</tr>"
                     + "".join("<tr>" + "".join(f"<td>{_f(s[c])}</td>" for c in cols) + "</tr>"
                               for s in st) + "</table>")
    if res["baselines"]:
        parts.append("<h2>Baselines (measured the same way, 8-bit)</h2><table><tr><th>network"
                     "</th><th>estimated top-1</th><th>± SE</th><th>test top-1</th>"
                     f"<th>{e(obj)} ({unit})</th><th>parameters (M)</th></tr>")
        for b in res["baselines"]:
            parts.append(f"<tr><td>{e(b['label'])}</td><td>{b['top1']:.2f}</td>"
                         f"<td>{b['top1_se']:.2f}</td><td>{b['test_top1']:.2f}</td>"
                         f"<td>{b[ckey]:.4g}</td><td>{b['params'] / 1e6:.2f}</td></tr>")
        parts.append("</table>")
    img = base64.b64encode(png_hv).decode()
    parts.append("<h2>Hypervolume against measured trials</h2>"
                 f"<img alt='hypervolume' src='data:image/png;base64,{img}' width='650'>")
    parts.append("<p>Hypervolume: of the measured, feasible trials' (select top-1, "
                 "log10 cost) against top-1 0 and 1.1 × the largest candidate's cost.</p>")
    write_atomic(path, "\n".join(parts))
