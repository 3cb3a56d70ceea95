"""Architecture search: the space and its chip filter, real candidates, the ladder, a tiny
search end to end (SQLite), resume, export, and bad input as one line with exit 2."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from netfrontier.errors import InfeasibleError, OptionError
from netfrontier.hardware.registry import get_hardware
from netfrontier.search.space import Candidate, SearchSpace, describe, load_space

TINY_SCRATCH = """family: convnet
channels: [8, 16]
depths: [1]
conv_kernels: [3]
ops: [conv, dwsep]
epochs: 1
train_images: 300
deploy_resolution: 32
"""
IMAGES = Path(__file__).resolve().parents[2] / "shared" / "data" / "imagenet-sample"


def _cli(*args, env=None, timeout=600):
    e = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-c", "from netfrontier.cli import main; main()",
                           *args], capture_output=True, text=True, timeout=timeout, env=e)


class _Done:
    def __init__(self, rc, out, err):
        self.returncode, self.stdout, self.stderr = rc, out, err


def _run(capsys, *args):
    """The CLI in this process (no interpreter start-up): exit code, stdout, stderr."""
    from netfrontier.cli import main

    capsys.readouterr()
    try:
        main(list(args))
        rc = 0
    except SystemExit as exc:
        rc = exc.code or 0
    o = capsys.readouterr()
    return _Done(rc, o.out, o.err)


def test_space_is_filtered_by_the_chip_and_candidates_are_stable():
    s4 = get_hardware("img-series4-1core")
    sp = SearchSpace(wbits=(4, 8, 32)).for_chip(s4)
    assert sp.wbits == (4, 8)  # the preset takes 4-16 bits
    with pytest.raises(OptionError, match="supports none"):
        SearchSpace(wbits=(32,)).for_chip(s4)
    spec = dataclasses.replace(s4, supported_ops=tuple(o for o in s4.supported_ops
                                                       if o != "depthwise_conv"))
    with pytest.raises(OptionError, match="depthwise_conv"):
        SearchSpace().for_chip(spec)  # every Lite block is depthwise
    assert SearchSpace(allow_fallback=True).for_chip(spec).family == "efficientnet_lite"
    conv = SearchSpace(family="convnet").for_chip(spec)
    assert conv.ops == ("conv",) and "o0" not in conv.knobs()
    # normalised: the width of a dropped block does not change the candidate
    full = SearchSpace(widths=(1.0, 0.75, 0.5), kernels=(5, 3))
    assert "w5_3" in full.knobs() and "w5_3" not in SearchSpace().knobs()  # one choice: fixed
    base = {n: ch[0] for n, ch in full.knobs().items()}
    base.update(parent="efficientnet_lite0", drop5=2)
    a = full.candidate({**base, "w5_3": 1.0})
    b = full.candidate({**base, "w5_3": 0.5})
    assert a == b and a.id == b.id and a.id.startswith("lite-")
    assert Candidate.from_json(json.loads(json.dumps(a.to_json()))).id == a.id
    assert "EfficientNet-Lite0" in describe(a)
    with pytest.raises(OptionError, match="not among"):
        full.candidate({**base, "resolution": 17})


def test_space_yaml_unknown_key_is_an_error(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(TINY_SCRATCH)
    assert load_space(p).channels == (8, 16)
    p.write_text(TINY_SCRATCH + "colour: red\n")
    with pytest.raises(OptionError, match="unknown search-space key 'colour'"):
        load_space(p)


def test_lite_candidate_is_a_real_network_with_inherited_weights():
    from netfrontier.search.build import build_lite, kept_channels, load_parent, shape_lite

    torch.set_num_threads(2)
    sp = SearchSpace(parents=("efficientnet_lite0",), resolutions=(96,), widths=(1.0, 0.75, 0.5),
                     kernels=(5, 3))
    full = {n: (0 if n.startswith("drop") else 5 if n.startswith("k") else 1.0
                if n.startswith("w") else ch[0]) for n, ch in sp.knobs().items()}
    x = torch.randn(2, 3, 96, 96)
    parent = load_parent("efficientnet_lite0", 96)
    with torch.no_grad():
        assert torch.equal(build_lite(sp.candidate(full))(x), parent(x))
    c = sp.candidate({**full, "drop5": 2, "k4": 3, "w3_1": 0.5, "w4_0": 0.75})
    m = build_lite(c, means_from=[x])
    assert len(m._blocks) == 14  # two of stage 5's four blocks dropped
    dw = m._blocks[8]._depthwise_conv  # stage 4's first block: 3×3 centre of the 5×5
    assert dw.kernel_size == (3, 3)
    assert m._blocks[6]._depthwise_conv.out_channels == kept_channels(480, 0.5, 8) == 240
    with torch.no_grad():
        y = m(x)
    assert y.shape == (2, 1000) and torch.isfinite(y).all()
    twin = shape_lite(c)  # the cost model's meta copy has exactly these weight shapes
    real = {k: v.shape for k, v in m.state_dict().items() if not k.endswith("_project_conv.bias")}
    meta = {k: v.shape for k, v in twin.state_dict().items()}
    assert real == {k: meta[k] for k in real}


def test_constraints_and_objectives_parse_and_refuse():
    from netfrontier.search.ladder import parse_constraints
    from netfrontier.search.run import parse_objectives

    c = parse_constraints("max-latency-ms=2,min_top1=70", max_params=5e6)
    assert (c.max_latency_ms, c.min_top1, c.max_params) == (2.0, 70.0, 5e6)
    assert c.cost_violations({"latency_ms": 3, "params": 1e6, "activation_mb": 1}) == {
        "max_latency_ms": 1, "max_params": 1e6 - 5e6}
    for bad in ("speed=3", "max_latency_ms", "max_latency_ms=x", "min_top1=120"):
        with pytest.raises(OptionError):
            parse_constraints(bad)
    assert parse_objectives("latency,top1") == ("top1", "latency")
    for bad in ("top1", "top1,speed", "latency,energy"):
        with pytest.raises(OptionError):
            parse_objectives(bad)


def test_predictor_rank_correlation_and_hypervolume():
    from netfrontier.search.predictor import held_out_rank_correlation, spearman
    from netfrontier.search.run import hypervolume

    rng = np.random.default_rng(0)
    X = rng.uniform(size=(60, 4))
    y = 3 * X[:, 0] + X[:, 1] + rng.normal(scale=0.1, size=60)
    r = held_out_rank_correlation(X, y)
    assert r["held_out"] == 30 and r["spearman"] > 0.8
    assert held_out_rank_correlation(X, rng.normal(size=60))["spearman"] < 0.5
    assert spearman([1, 2, 3, 4], [2, 4, 6, 9]) == pytest.approx(1.0)
    # two points (top-1 80 at 1 decade below the reference, 90 at half a decade)
    pts = np.array([[-80.0, -1.0], [-90.0, -0.5]])
    assert hypervolume(pts) == pytest.approx(80 * 1.0 + 10 * 0.5)
    assert hypervolume(np.array([[-80.0, 0.2]])) == 0.0  # beyond the reference: nothing


def test_staircase_verdict_compares_with_the_cheapest_network_as_accurate():
    from netfrontier.search.report import beats_zoo

    zoo = [{"model": "a", "top1": 70.0, "latency_ms": 1.0},
           {"model": "slow", "top1": 76.0, "latency_ms": 2.0},
           {"model": "stair", "top1": 77.0, "latency_ms": 1.2},
           {"model": "efficientnet_lite0", "top1": 90.0, "latency_ms": 0.1}]  # a baseline
    good = {"candidate_id": "s1", "top1": 76.5, "top1_se": 0.5, "latency_ms": 0.9}
    v = beats_zoo([good], zoo)
    assert v["against"] == "stair" and v["above"] and abs(v["saving"] - 0.25) < 1e-9
    # 20% faster than a slow network it matches, but slower than the staircase: not above
    weak = {"candidate_id": "s2", "top1": 75.9, "top1_se": 0.2, "latency_ms": 1.7}
    v = beats_zoo([weak], zoo)
    assert v["against"] == "stair" and not v["above"] and v["saving"] < 0
    assert v["literal"] is None  # 1.7 ms is not 20% below slow's 2.0 ms
    weak["latency_ms"] = 1.3
    v = beats_zoo([weak], zoo)
    assert not v["above"] and v["literal"]["against"] == "slow"
    assert beats_zoo([weak, good], zoo)["searched"] == "s1"
    assert beats_zoo([{**good, "top1": 99.0}], zoo) == {}  # nothing as accurate


def test_impossible_constraint_is_said_from_the_cost_model(tmp_path):
    from netfrontier.search.ladder import Constraints, Evaluator
    from netfrontier.search.run import check_feasible

    hw = get_hardware("img-series4-1core")
    sp = SearchSpace(family="convnet").for_chip(hw)
    ev = Evaluator(sp, hw, "digits")
    with pytest.raises(InfeasibleError, match="nothing in the space meets max_latency_ms"):
        check_feasible(sp, ev, Constraints(max_latency_ms=1e-6))
    check_feasible(sp, ev, Constraints(max_latency_ms=100))


def test_tiny_search_end_to_end_resume_export_and_clash(tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text(TINY_SCRATCH)
    out = tmp_path / "out"
    args = ["search", "--hw", "img-series4-1core", "--data", "digits", "--space", str(space),
            "--trials", "3", "--compare-random", "--threads", "1", "--out", str(out),
            "--max-latency-ms", "10"]
    r = _run(capsys, *args)
    assert r.returncode == 0, r.stderr
    assert "Pareto set on img-series4-1core" in r.stdout and "hypervolume" in r.stderr
    for f in ("report.html", "pareto.csv", "trials.csv", "frontier.png", "hypervolume.png",
              "results.json", "study.sqlite3"):
        assert (out / f).is_file(), f
    res = json.loads((out / "results.json").read_text())
    assert len(res["hypervolume_curves"]) == 2  # TPE and random at the same budget
    measured = [t for t in res["trials"] if t["measured"]]
    assert len([t for t in measured if t["study"].endswith("-random")]) == 3
    import optuna

    from netfrontier.search.run import measured_trials, open_storage

    st = open_storage(f"sqlite:///{out / 'study.sqlite3'}")
    study = optuna.load_study(study_name="convnet-img-series4-1core-tpe-s0", storage=st)
    t = measured_trials(study)[0]
    for key in ("candidate", "candidate_id", "objectives", "cost", "fidelity", "environment",
                "select_top1"):
        assert key in t.user_attrs, key
    assert t.constraints["max_latency_ms"] <= 0 and set(t.user_attrs["objectives"]) == {
        "top1", "latency"}
    # resume: the same command finds the budget spent and runs nothing more
    n = len(study.trials)
    r = _run(capsys, *args)
    assert r.returncode == 0 and "resuming study" in r.stderr
    assert len(optuna.load_study(study_name=study.study_name, storage=st).trials) == n
    # a name clash: the same study with another configuration
    r = _run(capsys, *[a if a != "3" else "5" for a in args])
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "already exists" in r.stderr
    # export a Pareto trial
    trial = res["pareto"][0]["trial"]
    r = _run(capsys, "search", "export", str(trial), "--dir", str(out), "--out",
             str(tmp_path / "n.pt"))
    assert r.returncode == 0, r.stderr
    state = torch.load(tmp_path / "n.pt", weights_only=True)
    assert state["candidate"] == res["pareto"][0]["candidate_id"]
    r = _run(capsys, "search", "export", str(trial), "--dir", str(out), "--out",
             str(tmp_path / "n.onnx"))
    assert r.returncode == 0 and (tmp_path / "n.onnx").stat().st_size > 1000


@pytest.mark.parametrize("extra, needle", [
    (["--objectives", "top1,speed"], "unknown objective 'speed'"),
    (["--constraints", "max_flops=3"], "unknown constraint"),
    (["--max-latency-ms", "1e-9"], "nothing in the space meets max_latency_ms"),
    (["--storage", "postgresql://nobody@127.0.0.1:1/none"], "cannot open storage"),
    (["--sampler", "grid"], "unknown sampler"),
])
def test_bad_input_is_one_line_and_nothing_half_written(tmp_path, capsys, extra, needle):
    out = tmp_path / "out"
    r = _run(capsys, "search", "--hw", "img-series4-1core", "--data", "digits", "--trials", "2",
             "--out", str(out), *extra)
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and needle in r.stderr, r.stderr
    assert not (out / "study.sqlite3").exists() and not (out / "results.json").exists()


@pytest.mark.skipif(not IMAGES.is_dir(), reason="needs ../shared/data/imagenet-sample")
def test_tiny_imagenet_track_search(tmp_path):
    """Two trials over Lite0 on 9 images: build, measure, final rung, report."""
    space = tmp_path / "lite.yaml"
    space.write_text("family: efficientnet_lite\nparents: [efficientnet_lite0]\n"
                     "resolutions: [96]\nmax_drop: 1\nwidths: [1.0, 0.5]\nkernels: [5, 3]\n")
    out = tmp_path / "out"
    r = _cli("search", "--hw", "img-series4-1core", "--data", str(IMAGES), "--limit", "9",
             "--space", str(space), "--trials", "2", "--no-baselines", "--no-zoo",
             "--also-hw", "img-series4-8core", "--threads", "2", "--out", str(out))
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "results.json").read_text())
    p = res["pareto"][0]
    assert p["bits"] == "W8A8" and "img-series4-8core" in p["other_hw"]
    assert p["top1_label"].startswith("estimated ImageNet top-1")
    assert p["top1"] == pytest.approx(75.1 - p["drop"])  # Lite0's published top-1 − drop
