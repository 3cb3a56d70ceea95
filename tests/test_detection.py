"""Detection and segmentation zoo (issue 15): every torchvision weight's MACs against its
published `_ops`, post-processing captured as its own kinds at stated counts, the parts of the
network, fallback per preset, the task's frontier and report, and bad input."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from netfrontier.graph.types import POSTPROCESS_KINDS, kind_counts
from netfrontier.models.registry import resolve, zoo_entries
from tests.conftest import captured

ENTRIES = zoo_entries(task="detection") + zoo_entries(task="segmentation")

# Where torchvision's `_ops` counts something else. Its figure comes from one forward pass of the
# trained weights (PR #6936: FlopCounterMode over every model of torchvision.models.detection and
# .segmentation); the data-dependent heads ran on however many boxes that pass produced, while
# netfrontier states the model's own caps (graph/postprocess.py). Each entry: (module prefix of
# the head that runs per box, what it runs on, how many torchvision's pass had, why).
TORCHVISION_RAN = {
    "fasterrcnn_mobilenet_v3_large_320_fpn.COCO_V1": (
        "roi_heads.box", "proposals", 0,
        "rpn_score_thresh 0.05 (only the MobileNet configs set one): no proposal of "
        "torchvision's pass scored above it, so the box head ran on 0 RoIs (netfrontier: 150)"),
    "fasterrcnn_mobilenet_v3_large_fpn.COCO_V1": (
        "roi_heads.box", "proposals", 0,
        "rpn_score_thresh 0.05: no proposal passed in torchvision's pass (netfrontier: 1000)"),
    "maskrcnn_resnet50_fpn.COCO_V1": (
        "roi_heads.mask", "detections", 0,
        "no detection passed box_score_thresh 0.05 in torchvision's pass, so the mask head never "
        "ran (its figure equals Faster R-CNN's, 134.38); netfrontier: 100 detections"),
    "keypointrcnn_resnet50_fpn.COCO_LEGACY": (
        "roi_heads.keypoint", "detections", 0,
        "no person detected in torchvision's pass: the keypoint head never ran (netfrontier: 100)"),
    "keypointrcnn_resnet50_fpn.COCO_V1": (
        "roi_heads.keypoint", "detections", 1,
        "one person detected in torchvision's pass: one keypoint-head run (netfrontier: 100)"),
}


def test_registry_has_every_detection_and_segmentation_weight():
    from torchvision import models

    names = {f"{a}.{w.name}" for mod in (models.detection, models.segmentation)
             for a in models.list_models(module=mod) for w in models.get_model_weights(a)}
    assert {e.name for e in ENTRIES} == names and len(names) == 19
    assert {e.resolution for e in ENTRIES} == {300, 320, 520, 800}
    for e in ENTRIES:
        assert e.top1 is None and e.metrics_source.startswith("reference: torchvision")
        assert e.metric() is not None and 20 < e.metric() < 95
    assert resolve("maskrcnn_resnet50_fpn")[1].metrics == {"box_map": 37.9, "mask_map": 34.6}
    assert resolve("deeplabv3_resnet50")[1].metric("pixel_acc") == 92.4
    assert len(zoo_entries()) == 117  # classification stays the default, and unchanged


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_macs_match_torchvision_metadata(entry):
    """Within 1% (or the published rounding), or, where torchvision's figure counts another
    number of boxes, within 1% once that difference (boxes × the head's MACs per box) is
    accounted for, and then not without it."""
    graph = captured(entry.name)
    tolerance = max(0.01 * entry.ref_macs, 0.0005e9)
    assert graph.resolution == entry.resolution and graph.params == entry.params
    if entry.name not in TORCHVISION_RAN:
        assert abs(graph.macs - entry.ref_macs) <= tolerance, (graph.macs, entry.ref_macs)
        return
    prefix, what, ran, _why = TORCHVISION_RAN[entry.name]
    stated = graph.meta["postprocess"][what]
    head = sum(n.macs for n in graph.nodes if n.module.startswith(prefix))
    per_box = head / stated
    assert per_box > 1e6
    assert abs(graph.macs - entry.ref_macs) > tolerance  # the difference is real ...
    adjusted = graph.macs - (stated - ran) * per_box  # ... and it is exactly those boxes
    assert abs(adjusted - entry.ref_macs) <= tolerance, (adjusted, entry.ref_macs)


def test_native_size_is_the_transform_s():
    for e in ENTRIES:
        src, _ = resolve(e.name)
        model = src.build(e)
        t = getattr(model, "transform", None)
        if t is None:
            continue
        size = t.fixed_size[0] if t.fixed_size else t.min_size[-1]  # eval: the last
        assert size == e.resolution, e.name
        if e.extra.get("max_side"):
            assert t.max_size == e.extra["max_side"], e.name


def test_post_processing_is_its_own_kinds_at_stated_counts():
    g = captured("fasterrcnn_resnet50_fpn")
    assert g.meta["postprocess"]["proposals"] == 1000 and g.meta["postprocess"]["detections"] == 100
    kinds = kind_counts(g)
    assert {"anchors", "box_decode", "select", "nms", "roi_align"} <= set(kinds)
    roi = [n for n in g.nodes if n.kind == "roi_align"]
    assert [n.output_shapes[0] for n in roi] == [(1000, 256, 7, 7)]
    assert len(roi[0].input_shapes) == 5  # four pyramid levels and the RoIs
    rpn_nms, final_nms = [n for n in g.nodes if n.kind == "nms"]
    from netfrontier.graph.postprocess import nms_ops

    assert rpn_nms.module == "rpn" and rpn_nms.vector_ops == nms_ops(4507, 1000)
    assert final_nms.input_shapes[0] == (90000, 4) and final_nms.vector_ops == nms_ops(90000, 100)
    m = captured("maskrcnn_resnet50_fpn")
    paste = [n for n in m.nodes if n.kind == "mask_paste"]
    assert paste and paste[0].output_shapes[0] == (100, 1, 800, 800)
    k = captured("keypointrcnn_resnet50_fpn")
    kp = [n for n in k.nodes if n.kind == "keypoint_decode"]
    assert kp and kp[0].output_shapes == ((100, 17, 3), (100, 17))
    ssd = captured("ssdlite320_mobilenet_v3_large")
    assert ssd.meta["postprocess"] == {"candidates_per_level_or_class": 300, "detections": 300,
                                       "rule": ssd.meta["postprocess"]["rule"]}
    assert not set(kind_counts(captured("lraspp_mobilenet_v3_large"))) & set(POSTPROCESS_KINDS)


def test_parts_of_the_network():
    g = captured("fasterrcnn_resnet50_fpn")
    t = g.table
    by = {}
    for grp, mod, op in zip(t.groups, t.modules, t.ops):
        by.setdefault(grp, []).append((mod, op))
    assert set(by) == {"pre-processing", "backbone", "neck", "head", "post-processing"}
    assert all(m.startswith("backbone.body") for m, _ in by["backbone"])
    assert all(m.startswith("backbone.fpn") for m, _ in by["neck"])
    assert {m.split(".")[0] + "." + m.split(".")[1] for m, _ in by["head"]} == {
        "rpn.head", "roi_heads.box_head", "roi_heads.box_predictor"}
    assert any(op.startswith("nms") for _, op in by["post-processing"])
    seg = captured("deeplabv3_resnet50").table
    assert set(seg.groups) == {"backbone", "head", "post-processing"}  # upsampling the logits
    assert set(captured("resnet18").table.groups) == {"backbone", "head"}


PRESETS_RUNNING_POSTPROCESSING = {  # on the device; every other shipped preset: on its host
    "cpu-2core-fp32-eager", "h100-fp16-cudagraph", "h100-fp16-eager", "jetson-agx-orin",
    "jetson-agx-xavier", "jetson-nano", "jetson-xavier-nx", "nvidia-h100-sxm", "nvidia-t4"}


def test_each_preset_runs_post_processing_where_its_docs_say():
    from netfrontier.hardware.registry import get_hardware, preset_names

    for name in preset_names():
        ops = set(get_hardware(name).supported_ops)
        on_device = set(POSTPROCESS_KINDS) <= ops
        assert on_device == (name in PRESETS_RUNNING_POSTPROCESSING), name
        if not on_device:
            assert not set(POSTPROCESS_KINDS) & ops, name
    doc = open(os.path.join(os.path.dirname(__file__), "..", "docs",
                            "hardware-presets.md")).read()
    for name in preset_names():
        assert f"| `{name}` |" in doc.split("## Detection post-processing")[1], name


def test_cost_shows_where_time_goes_and_what_falls_back():
    from netfrontier.cost.analytical import estimate
    from netfrontier.hardware.registry import get_hardware
    from netfrontier.zoo import group_totals

    g = captured("fasterrcnn_resnet50_fpn")
    for hw, host_post in (("tpu-v1", True), ("img-series4-1core", True), ("nvidia-t4", False)):
        spec = get_hardware(hw)
        table = estimate(g, spec)
        parts = group_totals(g, table, spec.fusion)
        assert abs(sum(p["latency_s"] for p in parts.values()) - table.latency_s) < 1e-12
        post = parts["post-processing"]
        assert ("nms" in post["host_ops"]) == host_post, hw
        assert (post["host_latency_s"] > 0) == host_post
        assert parts["backbone"]["macs"] > 0.3 * table.macs  # FPN and RPN head: most of the rest
    # img-series4 runs the backbone on the NNA and only the post-processing on the host
    s4 = group_totals(g, estimate(g, get_hardware("img-series4-1core")))
    assert s4["backbone"]["host_latency_s"] == 0 and s4["head"]["host_latency_s"] == 0


def test_task_rows_frontier_and_recommend(tmp_path):
    from netfrontier.errors import InfeasibleError, OptionError
    from netfrontier.frontier import annotate, recommend
    from netfrontier.store import Store
    from netfrontier.zoo import zoo_rows

    store = Store(tmp_path / "s.sqlite")
    rows = zoo_rows("tpu-v1", "ssd*", store=store, task="detection", workers=2)
    assert {r["model"] for r in rows} == {"ssd300_vgg16.COCO_V1",
                                         "ssdlite320_mobilenet_v3_large.COCO_V1"}
    r = rows[0]
    assert r["task"] == "detection" and r["metric"] == "box_map" and r["top1"] is None
    assert r["accuracy"] == r["box_map"] and r["latency_post_s"] > 0
    parts = sum(r[f"latency_{c}_s"] for c in ("pre", "backbone", "neck", "head", "post"))
    assert abs(parts - r["latency_s"]) < 1e-9
    annotated, _ = annotate(rows, metric="accuracy")
    assert any(a["on_frontier_latency"] for a in annotated)
    best = recommend(rows, 25, metric="accuracy", label="box mAP")
    assert best["model"] == "ssd300_vgg16.COCO_V1"
    with pytest.raises(InfeasibleError, match="box mAP ≥ 30"):
        recommend(rows, 30, metric="accuracy", label="box mAP")
    classifier = {**rows[0], "model": "resnet18", "task": "classification", "top1": 69.8,
                  "top1_source": "reference: torchvision weight metadata"}
    with pytest.raises(OptionError, match="several tasks"):
        annotate(rows + [classifier])
    with pytest.raises(OptionError, match="unknown task 'pose'"):
        zoo_rows("tpu-v1", store=store, task="pose")
    with pytest.raises(OptionError, match="not a detection metric"):
        zoo_rows("tpu-v1", store=store, task="detection", metric="miou")

    # bench and validate work on a detector (random weights, fixed input)
    from netfrontier.hardware.registry import get_hardware
    from netfrontier.measure.bench import bench_model
    from netfrontier.measure.timing import Budget
    from netfrontier.measure.validate import validate

    m = bench_model("ssdlite320_mobilenet_v3_large", budget=Budget(warmup=1, min_runs=2,
                                                                   max_runs=2, min_time_s=0))
    assert m.model == "ssdlite320_mobilenet_v3_large.COCO_V1" and m.resolution == 320
    assert m.median_s > 0
    vrows, stats = validate(get_hardware("cpu-2core-fp32-eager"), [m.to_dict()], 1,
                            store=store)
    assert [r["model"] for r in vrows] == [m.model] and np.isfinite(vrows[0]["predicted_s"])
    assert stats["models"] == 1


def nf(*args, store=None):
    env = dict(os.environ, COLUMNS="200")
    if store:
        env["NETFRONTIER_STORE"] = str(store)
    return subprocess.run([sys.executable, "-c", "from netfrontier.cli import main; main()",
                           *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=600)


def test_zoo_task_report(tmp_path):
    out = tmp_path / "rep"
    proc = nf("zoo", "--task", "segmentation", "--filter", "lraspp*", "--hw", "tpu-v1", "--out",
              out, store=tmp_path / "s.sqlite")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 1 and rows[0]["metric"] == "miou" and rows[0]["accuracy"] == "57.9"
    assert "top1" not in rows[0] and float(rows[0]["latency_post_s"]) > 0
    html = (out / "report.html").read_text()
    assert "Segmentation: mIoU vs cost on tpu-v1" in html and "Backbone" in html
    assert "Top-1" not in html and (out / "latency_parts.png").exists()


@pytest.mark.parametrize("args, message", [
    (("zoo", "--task", "pose"), "unknown task 'pose' (use classification, detection, "
                                "segmentation)"),
    (("zoo", "--task", "detection", "--metric", "top1"), "'top1' is not a detection metric"),
    (("recommend", "--min-map", "30"), "--min-map is for the detection and segmentation tasks"),
    (("recommend", "--task", "detection", "--min-top1", "30"), "--min-top1 is for the "
                                                               "classification task"),
    (("recommend", "--task", "detection"), "needs --min-map"),
    (("recommend", "--task", "detection", "--min-map", "101"), "--min-map must be at most 100"),
    (("analyze", "ssd300_vgg16", "--resolution", "512"), "takes 300 px input only"),
])
def test_bad_task_input_is_one_line_and_exit_2(args, message, tmp_path):
    proc = nf(*args, store=tmp_path / "s.sqlite")
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and message in lines[0], lines[0]


@pytest.mark.parametrize("name, res, message", [
    ("ssd300_vgg16", 512, "takes 300 px input only: its transform resizes every image"),
    ("fasterrcnn_resnet50_fpn", 500, "multiples of 32"),
    ("fasterrcnn_resnet50_fpn", 1600, "at most 1333 px"),
    ("fasterrcnn_mobilenet_v3_large_320_fpn", 704, "at most 640 px"),
    ("deeplabv3_resnet50", 16, "needs at least 32 px"),
])
def test_a_resolution_a_model_cannot_take(name, res, message):
    from netfrontier.errors import OptionError
    from netfrontier.models.registry import capture

    with pytest.raises(OptionError, match=message):
        capture(name, resolution=res)


def test_other_resolutions_capture():
    from netfrontier.models.registry import capture

    g = capture("fasterrcnn_mobilenet_v3_large_320_fpn", resolution=448)
    assert g.resolution == 448 and g.nodes[0].input_shapes[0] == (1, 3, 448, 448)
    assert g.macs > captured("fasterrcnn_mobilenet_v3_large_320_fpn").macs
    assert capture("lraspp_mobilenet_v3_large", resolution=256).resolution == 256


def test_analyze_shows_the_groups():
    proc = nf("analyze", "ssdlite320_mobilenet_v3_large", "--hw", "tpu-v1")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "# where the time goes: ssdlite320_mobilenet_v3_large.COCO_V1 on tpu-v1" in out
    summary = out.split("# where the time goes")[1].splitlines()
    assert [ln.split()[0] for ln in summary[2:7]] == ["pre-processing", "backbone", "neck",
                                                    "head", "post-processing"]
    assert "nms" in summary[6] and "detections 300" in out


def test_committed_cpu_measurements_validate(tmp_path):
    """The committed detection/segmentation measurements load and validate (figures in
    docs/calibration.md)."""
    from netfrontier.measure.validate import load_measurements

    path = os.path.join(os.path.dirname(__file__), "..", "data", "cpu",
                        "tasks-cpu-2core-fp32-eager-b1.jsonl")
    meas = load_measurements(path)
    names = {m["model"] for m in meas}
    assert len(names) >= 4 and names <= {e.name for e in ENTRIES}
    summary = json.load(open(os.path.join(os.path.dirname(path), "validation",
                                          "validation_cpu-2core-fp32-eager_tasks_b1.json")))
    assert summary["models"] == len(names)
