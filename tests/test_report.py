"""The report layer: frontier PNGs, grouped bars, and the self-contained, atomically written HTML."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import netfrontier.report as report_pkg
import netfrontier.report.plots as plots
from netfrontier import frontier
from netfrontier.report import (
    plot_all,
    plot_frontier,
    plot_relative_bars,
    render_report,
    short_names,
    write_atomic,
    write_report,
)

PNG = b"\x89PNG\r\n\x1a\n"

# arch, weights, top-1, GMACs, M params: published torchvision figures, rounded
_NETS = [
    ("alexnet", "IMAGENET1K_V1", 56.52, 0.71, 61.1),
    ("vgg16", "IMAGENET1K_V1", 71.59, 15.47, 138.4),
    ("resnet18", "IMAGENET1K_V1", 69.76, 1.81, 11.7),
    ("resnet50", "IMAGENET1K_V1", 76.13, 4.09, 25.6),
    ("resnet50", "IMAGENET1K_V2", 80.86, 4.09, 25.6),
    ("resnet101", "IMAGENET1K_V2", 81.89, 7.80, 44.5),
    ("mobilenet_v2", "IMAGENET1K_V2", 72.15, 0.30, 3.5),
    ("mobilenet_v3_large", "IMAGENET1K_V2", 75.27, 0.22, 5.5),
    ("mobilenet_v3_small", "IMAGENET1K_V1", 67.67, 0.06, 2.5),
    ("efficientnet_b0", "IMAGENET1K_V1", 77.69, 0.39, 5.3),
    ("efficientnet_b3", "IMAGENET1K_V1", 82.01, 1.83, 12.2),
    ("efficientnet_v2_s", "IMAGENET1K_V1", 84.23, 8.37, 21.5),
    ("regnet_x_8gf", "IMAGENET1K_V2", 81.68, 8.00, 39.6),
    ("regnet_y_400mf", "IMAGENET1K_V2", 75.80, 0.40, 4.3),
    ("shufflenet_v2_x1_0", "IMAGENET1K_V1", 69.36, 0.14, 2.3),
    ("squeezenet1_1", "IMAGENET1K_V1", 58.18, 0.35, 1.2),
    ("vit_b_16", "IMAGENET1K_V1", 81.07, 17.56, 86.6),
    ("vit_b_16", "IMAGENET1K_SWAG_E2E_V1", 85.30, 55.48, 86.9),
    ("swin_t", "IMAGENET1K_V1", 81.47, 4.49, 28.3),       # partly unsupported
    ("convnext_tiny", "IMAGENET1K_V1", None, 4.46, 28.6),  # no top-1 known
]
_UTIL = [0.6, 0.7, 0.55, 0.65, 0.65, 0.7, 0.3, 0.25, 0.2, 0.35, 0.4, 0.45, 0.6, 0.3, 0.2, 0.4,
         0.5, 0.5, 0.3, 0.5]


def _rows(measured: bool = False) -> list[dict]:
    rows = []
    for k, ((arch, weights, top1, gmacs, mparams), util) in enumerate(zip(_NETS, _UTIL)):
        macs, params = int(gmacs * 1e9), int(mparams * 1e6)
        latency = 2 * macs / (12.3e12 * util) + params / 12e9 * 0.5
        dram = params * 1.0 + macs * 0.002
        fallback = arch == "swin_t"
        rows.append(dict(
            model=f"{arch}.{weights}", arch=arch, weights=weights, source="torchvision",
            resolution=384 if "E2E" in weights else 224, batch=1, wbits=8, abits=8,
            hardware="img-series4-1core", top1=top1,
            top1_source="reference: torchvision weight metadata (ImageNet-1k val)" if top1 else "",
            macs=macs, params=params, latency_s=latency, dram_bytes=dram,
            energy_j=2 * macs * 0.5e-12 + dram * 50e-12, achieved_ops_per_s=2 * macs / latency,
            utilization=util, unsupported_layers=3 if fallback else 0,
            unsupported_ops="aten.roll;aten.native_layer_norm" if fallback else "",
            measured_latency_s=(latency * (1.3 + 0.02 * k)) if measured and k % 3 else None,
        ))
    return rows


META = dict(hardware="img-series4-1core",
            description="Imagination IMG Series4 NNA, 1 core, 1 MB on-chip memory, 12 GB/s",
            peak_ops_per_s=12.3e12, tool_version="0.1.0",
            command="netfrontier zoo --hardware img-series4-1core", date="2025-01-01",
            notes=["Costs are modelled, not measured.", "A <b>bold</b> & risky note"])


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    rows, lines = frontier.annotate(_rows(measured=True))
    images = plot_all(rows, lines, out)
    report = write_report(rows, lines, META, out, images)
    return rows, lines, images, report


def test_plots_are_pngs(rendered):
    _, _, images, _ = rendered
    assert list(images) == ["latency", "dram", "energy", "measured_latency"]
    for path in images.values():
        data = path.read_bytes()
        assert data[:8] == PNG and len(data) > 10_000


def test_report_is_self_contained_and_complete(rendered):
    rows, _, images, report = rendered
    assert report.name == "report.html"
    doc = report.read_text(encoding="utf-8")
    for r in rows:
        assert r["model"] in doc
    assert doc.count('<img src="data:image/png;base64,') == len(images)
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", doc, re.I)
    assert "http://" not in doc and "https://" not in doc
    assert "<link" not in doc and not re.search(r"<script[^>]+src", doc)
    assert "aria-sort" in doc and 'data-type="num"' in doc  # the inline sorter and its hints
    # headline, equations, footnote on where top-1 comes from, notes, meta
    assert "img-series4-1core" in doc and "2025-01-01" in doc
    assert "log₁₀(latency / ms)" in doc
    assert "reference: torchvision weight metadata" in doc
    assert "no top-1 known for 1 model" in doc
    assert "Costs are modelled, not measured." in doc


def test_report_escapes_text(rendered):
    doc = rendered[3].read_text(encoding="utf-8")
    assert "A &lt;b&gt;bold&lt;/b&gt; &amp; risky note" in doc
    assert "<b>bold</b>" not in doc


def test_fallback_rows_are_flagged(rendered):
    doc = rendered[3].read_text(encoding="utf-8")
    rows = re.findall(r"<tr[^>]*>.*?</tr>", doc, re.S)
    swin = [r for r in rows if 'data-v="swin_t.IMAGENET1K_V1"' in r]
    assert len(swin) == 1
    assert swin[0].startswith('<tr class="fb">')
    assert "3 layers: aten.roll, aten.native_layer_norm" in swin[0]
    others = [r for r in rows if 'data-v="resnet50.IMAGENET1K_V2"' in r]
    assert others and "⚠" not in others[0] and others[0].startswith("<tr>")
    assert "1 run partly on the host CPU" in doc


def test_frontier_membership_marked(rendered):
    rows, _, _, report = rendered
    doc = report.read_text(encoding="utf-8")
    trs = re.findall(r"<tr[^>]*>.*?</tr>", doc, re.S)
    for r in rows:
        tr = next(t for t in trs if f'data-v="{r["model"]}"' in t)
        assert ("✓ lat" in tr) == r["on_frontier_latency"]
        assert ("✓ DRAM" in tr) == r["on_frontier_dram"]


def test_failed_write_leaves_old_report(rendered, tmp_path, monkeypatch):
    rows, lines, _, _ = rendered
    report = write_report(rows, lines, META, tmp_path, {})
    old = report.read_bytes()

    import netfrontier.report as rep

    def boom(fd):  # the new document is in the temporary file, not yet renamed over the old
        raise OSError("disk full")

    monkeypatch.setattr(rep.os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        write_report(rows, lines, dict(META, date="2099-12-31"), tmp_path, {})
    assert report.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no temp file left


def test_failed_render_leaves_old_report(rendered, tmp_path, monkeypatch):
    rows, lines, _, _ = rendered
    report = write_report(rows, lines, META, tmp_path, {})
    old = report.read_bytes()
    import netfrontier.report.html as h

    monkeypatch.setattr(h, "_table", lambda rows: (_ for _ in ()).throw(RuntimeError("mid-way")))
    with pytest.raises(RuntimeError):
        write_report(rows, lines, META, tmp_path, {})
    assert report.read_bytes() == old


def test_write_atomic(tmp_path):
    p = write_atomic(tmp_path / "sub" / "a.txt", "héllo")
    assert p.read_text(encoding="utf-8") == "héllo"
    write_atomic(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    assert os.stat(p).st_mode & 0o044  # readable by others (not a 0600 temp file's mode)
    assert [q.name for q in p.parent.iterdir()] == ["a.txt"]


def test_plot_is_deterministic(rendered, tmp_path):
    rows, lines, images, _ = rendered
    again = plot_frontier(rows, lines["latency"], "latency", tmp_path / "again.png")
    assert again.read_bytes() == images["latency"].read_bytes()


def test_plot_without_data_or_line(tmp_path):
    rows = [dict(r, top1=None) for r in _rows()]
    p = plot_frontier(rows, None, "dram", tmp_path / "empty.png", title="nothing to see")
    assert p.read_bytes()[:8] == PNG
    with pytest.raises(ValueError):
        plot_frontier(rows, None, "speed", tmp_path / "x.png")


def test_relative_bars(tmp_path):
    table = {"resnet50": {"8-bit": 1.0, "6-bit": 1.3, "4-bit": 1.9},
             "mobilenet_v2": {"8-bit": 1.0, "6-bit": 1.2, "4-bit": None},
             "vit_b_16": {"8-bit": -0.1, "4-bit": 1.7}}
    p = plot_relative_bars(table, tmp_path / "bars.png", "DRAM traffic reduction", "× vs 16-bit")
    assert p == tmp_path / "bars.png" and p.read_bytes()[:8] == PNG


def test_short_names():
    rows = [dict(arch="resnet50", weights="IMAGENET1K_V1"), dict(arch="resnet50", weights="IMAGENET1K_V2"),
            dict(arch="vit_b_16", weights="IMAGENET1K_SWAG_E2E_V1"),
            dict(arch="vit_b_16", weights="IMAGENET1K_SWAG_LINEAR_V1"),
            dict(arch="alexnet", weights="IMAGENET1K_V1"),
            dict(arch="vgg16", weights="IMAGENET1K_V1", wbits=8, abits=8, resolution=224),
            dict(arch="vgg16", weights="IMAGENET1K_V1", wbits=4, abits=8, resolution=224),
            dict(arch="vgg16", weights="IMAGENET1K_V1", wbits=4, abits=8, resolution=320)]
    assert short_names(rows) == ["resnet50 V1", "resnet50 V2", "vit_b_16 SWAG-E2E",
                                 "vit_b_16 SWAG-LIN", "alexnet", "vgg16 V1 w8a8 @224",
                                 "vgg16 V1 w4a8 @224", "vgg16 V1 w4a8 @320"]


def test_import_does_not_load_matplotlib():
    code = "import sys, netfrontier.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _keep_figures(monkeypatch) -> dict:
    """{PNG stem: Figure} of every plot drawn from here on (the PNGs are still written)."""
    figs, save = {}, plots._save

    def keep(fig, path):
        figs[Path(path).stem] = fig
        return save(fig, path)

    monkeypatch.setattr(plots, "_save", keep)
    return figs


def _overlapping_texts(fig) -> list[tuple[str, str]]:
    """Pairs of texts on the axes closer than LABEL_GAP_PX: touching labels read as one number
    ("87.086.486.2"), so a gap is part of not overlapping."""
    renderer = fig.canvas.get_renderer()
    texts = [t for ax in fig.axes for t in ax.texts if t.get_visible() and t.get_text()]
    boxes = [t.get_window_extent(renderer).padded(1.5) for t in texts]
    return [(texts[i].get_text(), texts[j].get_text()) for i in range(len(texts))
            for j in range(i + 1, len(texts)) if boxes[i].overlaps(boxes[j])]


def test_bar_value_labels_never_overlap(tmp_path, monkeypatch):
    figs = _keep_figures(monkeypatch)
    close = {"lite0": {"W8A8": 1.0, "W6A8": 1.09, "W4A8": 1.2, "mixed": 1.2},
             "lite1": {"W8A8": 1.0, "W6A8": 1.09, "W4A8": 1.18}}
    many = {f"net{k}": {f"series {j}": 87.0 - 0.2 * j for j in range(12)} for k in range(4)}
    for name, table in (("close", close), ("many", many)):
        plot_relative_bars(table, tmp_path / f"{name}.png", name, "×")
        assert not _overlapping_texts(figs[name]), name
    assert len(figs["close"].axes[0].texts) == 7  # side by side, every label still shown


# ---- the quantization study report (compress/study_report.py) on the committed results ----

QUANT = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "quantization"
HW = ("img-series4-1core", "img-series4-8core")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """write_study on the committed results.json: (data, {stem: Figure}, {stem: (title,
    ylabel)} of each bar chart, written paths)."""
    from netfrontier.compress.study_report import write_study

    data = json.loads((QUANT / "results.json").read_text(encoding="utf-8"))
    calls, bars = {}, report_pkg.plot_relative_bars

    def record(table, path, title, ylabel, *args, **kw):
        calls[Path(path).stem] = (title, ylabel)
        return bars(table, path, title, ylabel, *args, **kw)

    with pytest.MonkeyPatch.context() as mp:
        figs = _keep_figures(mp)
        mp.setattr(report_pkg, "plot_relative_bars", record)
        paths = write_study(data["rows"], tmp_path_factory.mktemp("study"), data["meta"])
    return data, figs, calls, paths


def test_study_improvement_charts_say_what_is_plotted(study):
    _, _, calls, _ = study
    for hw in HW:
        for m, what in (("latency", "Latency"), ("dram", "DRAM traffic"), ("energy", "Energy")):
            title, ylabel = calls[f"improvement_{m}_{hw}"]
            assert title == f"{what} improvement over W8A8 (×), {hw}"
            assert ylabel.lower() == f"{what} improvement over W8A8 (×)".lower()
    assert not any("second" in t.lower() for t, _ in calls.values())


def test_study_chart_labels_never_overlap(study):
    _, figs, _, _ = study
    charts = [k for k in figs if k.startswith(("improvement_", "accuracy"))]
    assert len(charts) == 7
    for k in charts:
        assert not _overlapping_texts(figs[k]), k


def test_study_accuracy_chart_has_error_bars_and_its_whole_legend(study):
    from matplotlib.container import BarContainer
    from PIL import Image

    data, figs, _, paths = study
    fig = figs["accuracy"]
    renderer = fig.canvas.get_renderer()
    legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert legends
    for leg in legends:  # _save writes the whole canvas: the image is the figure's bbox
        bb, page = leg.get_window_extent(renderer), fig.bbox
        assert page.x0 <= bb.x0 and bb.x1 <= page.x1 and page.y0 <= bb.y0 and bb.y1 <= page.y1
    assert Image.open(paths["accuracy"]).size == (round(fig.bbox.width), round(fig.bbox.height))
    halves = []
    for c in fig.axes[0].containers:
        if isinstance(c, BarContainer) and c.errorbar is not None:
            halves += [(s[1][1] - s[0][1]) / 2 for s in c.errorbar.lines[2][0].get_segments()]
    want = [r["top1_se"] for r in data["rows"] if r.get("top1") is not None]
    assert sorted(halves) == pytest.approx(sorted(want))


def test_study_labels_carry_the_rounding(study):
    from netfrontier.compress.study_report import _label, accuracy_table

    data, _, _, paths = study
    rows = [r for r in data["rows"] if r.get("top1") is not None]
    acc = accuracy_table(rows)
    assert sum(map(len, acc.values())) == len(rows)  # no row hidden under another's label
    assert acc["efficientnet_lite0"]["PTQ W4A8 (nearest)"] == 70.0
    assert acc["efficientnet_lite0"]["PTQ W4A8 (gptq-float)"] == 83.8
    assert acc["efficientnet_lite0"]["QAT W4A8 (from gptq-float)"] == 84.2
    assert acc["efficientnet_lite1"]["PTQ W4A8 (nearest)"] == 52.2
    methods: dict[str, set] = {}
    for r in data["rows"]:
        methods.setdefault(_label(r), set()).add(r["method"])
    assert all(len(m) == 1 for m in methods.values()), methods
    from netfrontier.compress.study_report import rounding

    assert rounding(dict(method="QAT (LSQ)", qat={"init": "PTQ, gptq rounding"})) == "gptq"
    assert rounding(dict(method="PTQ", rounding="gptq")) == "gptq"
    assert rounding(dict(method="cost only")) == ""
    md = paths["md"].read_text(encoding="utf-8")
    assert "| efficientnet_lite0 | W4A8 | PTQ + GPTQ rounding toward the float outputs | " \
           "gptq-float |" in md
    assert "| efficientnet_lite1 | W4A8 | PTQ + bias correction | nearest |" in md
    assert paths["csv"].read_text().splitlines()[0].startswith("model,variant,method,rounding,")
    assert "<td>gptq-float</td>" in paths["html"].read_text(encoding="utf-8")


def test_committed_quantization_outputs_are_regenerated():
    from netfrontier.compress.study import relative_improvements
    from netfrontier.compress.study_report import markdown_summary

    data = json.loads((QUANT / "results.json").read_text(encoding="utf-8"))
    md = markdown_summary(relative_improvements(data["rows"]), data["meta"],
                          data["meta"]["hardware"])
    assert (QUANT / "summary.md").read_text(encoding="utf-8") == md
    assert "Latency improvement over W8A8" in (QUANT / "report.html").read_text(encoding="utf-8")


def test_rerender_redraws_from_results_json(tmp_path, monkeypatch):
    import netfrontier.compress.study_report as sr

    (tmp_path / "results.json").write_text(json.dumps({"meta": {"a": 1}, "rows": [{"b": 2}]}))
    calls = []
    monkeypatch.setattr(sr, "write_study", lambda *a: calls.append(a) or {})
    sr.rerender(tmp_path / "results.json")
    sr.rerender(tmp_path / "results.json", tmp_path / "elsewhere")
    assert calls == [([{"b": 2}], tmp_path, {"a": 1}),
                     ([{"b": 2}], tmp_path / "elsewhere", {"a": 1})]


# ---- the zoo report (report/html.py, report/plots.py) ----

_NAMES = ["wide_resnet101_2", "resnet18", "wide_resnet50_2", "resnet152", "resnet50",
          "regnet_x_16gf", "regnet_x_8gf"]
_NATURAL = ["regnet_x_8gf", "regnet_x_16gf", "resnet18", "resnet50", "resnet152",
            "wide_resnet50_2", "wide_resnet101_2"]


def _named(names: list[str]) -> list[dict]:
    template = _rows()[3]
    return [dict(template, model=n, arch=n, weights=None) for n in names]


def _table_names(doc: str) -> list[str]:
    return re.findall(r'<td class="t m" data-v="([^"]+)"', doc)


def test_table_starts_in_natural_name_order():
    assert _table_names(render_report(_named(_NAMES), {}, META)) == _NATURAL


# a stand-in for the DOM the inline sorter touches: one table, one column of model names
_SORTER_HARNESS = """
const [script, names] = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const body = {rows: names.map(n => ({name: n, cells: [{getAttribute: k => k === 'data-v' ? n
  : null, textContent: n}]})), appendChild(r) {this.rows.splice(this.rows.indexOf(r), 1);
  this.rows.push(r)}};
let click;
const th = {a: {}, dataset: {type: 't'}, getAttribute(k) {return k in this.a ? this.a[k] : null},
  setAttribute(k, v) {this.a[k] = v}, removeAttribute(k) {delete this.a[k]},
  addEventListener(e, f) {if (e === 'click') click = f}};
global.document = {querySelectorAll: () => [{tHead: {rows: [{cells: [th]}]}, tBodies: [body]}]};
eval(script);
click();
const up = body.rows.map(r => r.name);
click();
console.log(JSON.stringify([up, body.rows.map(r => r.name)]));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="runs the inline sorter under node")
def test_inline_sorter_orders_names_naturally():
    doc = render_report(_named(_NAMES), {}, META)
    script = re.search(r"<script>(.*?)</script>", doc, re.S).group(1)
    out = subprocess.run(["node", "-e", _SORTER_HARNESS], input=json.dumps([script, _NAMES]),
                         capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout) == [_NATURAL, _NATURAL[::-1]]


def test_headline_counts_what_is_plotted(tmp_path, monkeypatch):
    from matplotlib.collections import PathCollection

    measured = [dict(_rows()[9], model=f"efficientnet_lite{k}", arch=f"efficientnet_lite{k}",
                     weights=None, top1=87.0 + k,
                     top1_source="measured: imagenet-sample (1000 images), FP32")
                for k in range(3)]
    rows, lines = frontier.annotate(_rows() + measured)
    figs = _keep_figures(monkeypatch)
    plot_frontier(rows, lines["latency"], "latency", tmp_path / "latency.png")
    points = sum(len(c.get_offsets()) for c in figs["latency"].axes[0].collections
                 if isinstance(c, PathCollection))
    doc = render_report(rows, lines, META)
    assert points == 19
    assert "19 with a reference top-1 are plotted · 3 measured on imagenet-sample are listed " \
           "but not plotted" in doc
    assert "1 without a top-1, left off the frontier" in doc


def test_unknown_layers_are_flagged():
    rows = _rows()
    rows[3].update(unknown_layers=2, unknown_ops="LSTM;com.example.MyOp")  # resnet50 V1
    rows[18].update(unknown_layers=1, unknown_ops="")  # swin_t, which also has fallback
    rows[4].update(unknown_layers=None, unknown_ops=None)  # as good as absent
    rows, lines = frontier.annotate(rows)
    doc = render_report(rows, lines, META)
    trs = {m: t for t in re.findall(r"<tr[^>]*>.*?</tr>", doc, re.S)
           for m in re.findall(r'data-v="([^"]+)" title', t)}
    resnet = trs["resnet50.IMAGENET1K_V1"]
    assert resnet.startswith('<tr class="unk">')
    assert "cost unknown: LSTM, com.example.MyOp (2 layers; lower bound)" in resnet
    swin = trs["swin_t.IMAGENET1K_V1"]
    assert swin.startswith('<tr class="fb unk">') and "3 layers: aten.roll" in swin
    assert "cost unknown: unrecognised ops (1 layer; lower bound)" in swin
    assert trs["resnet50.IMAGENET1K_V2"].startswith("<tr>")
    assert "cost unknown" not in trs["alexnet.IMAGENET1K_V1"]
    assert "2 have layers netfrontier cannot cost (unknown ops): their costs are lower " \
           "bounds" in doc


def test_no_unknown_note_without_unknown_layers(rendered):
    doc = rendered[3].read_text(encoding="utf-8")
    assert "cannot cost" not in doc and "cost unknown" not in doc
