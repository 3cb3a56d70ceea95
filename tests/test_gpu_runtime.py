"""The GPU-runtime model behind calibrated profiles: pipeline arithmetic, PyTorch op mapping,
and that the shipped H100 profiles are exactly what the committed micro-benchmarks fit."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from netfrontier.cost.analytical import estimate
from netfrontier.cost.gpu_runtime import lookup, op_features, runtime_rows
from netfrontier.graph.torch_capture import capture_module
from netfrontier.hardware.registry import PRESET_DIR, get_hardware
from tests.conftest import captured

DATA = Path(__file__).resolve().parents[1] / "data" / "gpu-h100"


def test_eager_pipeline_bounds():
    hw, g = get_hardware("h100-fp16-eager"), captured("resnet18")
    host, device, latency, bound = runtime_rows(g, hw)
    total = estimate(g, hw).latency_s
    assert total == pytest.approx(hw.calibration.fixed_s + latency.sum())
    # never faster than the host issue alone, nor than the kernels alone, nor than their sum
    assert total >= hw.calibration.fixed_s + max(host.sum(), device.sum()) - 1e-12
    assert total <= hw.calibration.fixed_s + host.sum() + device.sum() + 1e-12
    assert (latency >= device - 1e-15).all() and set(bound) <= {0, 1, 2}


def test_graph_is_launch_plus_kernels_with_a_floor():
    hw, g = get_hardware("h100-fp16-cudagraph"), captured("resnet18")
    _, device, _, _ = runtime_rows(g, hw)
    cal = hw.calibration
    assert estimate(g, hw).latency_s == pytest.approx(max(cal.floor_s, cal.fixed_s + device.sum()))
    tiny = capture_module(torch.nn.ReLU(), (1, 4, 2, 2), model_name="tiny")
    assert estimate(tiny, hw).latency_s == pytest.approx(cal.floor_s)


def test_conv_bias_is_one_more_kernel():
    hw = get_hardware("h100-fp16-cudagraph")
    t = {b: estimate(capture_module(torch.nn.Conv2d(64, 64, 3, padding=1, bias=b),
                                    (8, 64, 56, 56), model_name="c"), hw).latency_s
         for b in (False, True)}
    assert t[True] > t[False]
    f = op_features(capture_module(torch.nn.Conv2d(8, 8, 1), (1, 8, 4, 4), model_name="c"), 2)
    assert [c for c, _ in f["extra"][0]] == ["add"]


def test_native_multihead_attention_runs_without_slow_path_copies():
    # batch 1: the slow path's qkv split copy; batch 8 also copies its transposed input and
    # adds the qkv bias apart (3-D mm): none of it runs in the native fast path
    for batch, skipped in ((1, 1), (8, 3)):
        f = op_features(captured("vit_b_32", batch), 2)
        assert f["cls"].count("skip") == skipped * 12
        assert f["cls"].count("attention") == 12


def test_sized_classes_fall_back_to_the_nearest_fitted_size():
    table = {"grouped_conv16": 1, "grouped_conv128": 2, "conv": 3, "depthwise_conv3": 6,
             "grouped_conv24@b8": 7, "grouped_conv24@b32": 8}
    assert lookup(table, "grouped_conv24") == 1
    assert lookup(table, "grouped_conv112") == 2
    assert lookup(table, "grouped_conv24@b16") == 7  # same width, nearest batch
    assert lookup(table, "depthwise_conv5") == 6
    assert lookup({"conv": 3}, "grouped_conv24") == 3
    assert lookup({"elementwise": 4, "add": 5}, "hardsigmoid") == 4


def test_knots_are_increasing_and_monotone():
    from netfrontier.measure.fit_runtime import knots

    pts = [(x / 10, y) for x, y in zip(range(40), [5, 1, 2, 3] * 10)]
    k = np.array(knots(pts))
    assert (np.diff(k[:, 0]) > 0).all() and (np.diff(k[:, 1]) >= 0).all()


def test_eager_profile_takes_kernel_times_from_graph_replays():
    eager, graph = get_hardware("h100-fp16-eager"), get_hardware("h100-fp16-cudagraph")
    assert "replayed as CUDA graphs" in eager.calibration.provenance
    assert eager.calibration.host_s["conv"] > 5e-6 and not graph.calibration.host_s
    assert any(k.startswith("grouped_conv") and "@b" in k for k in eager.calibration.host_s)


@pytest.mark.parametrize("runtime", ["eager", "cudagraph"])
def test_shipped_profile_is_the_fit_of_the_committed_data(runtime):
    from netfrontier.measure.calibrate import fit_profile, load_records

    name = f"h100-fp16-{runtime}"
    fitted = fit_profile(load_records(DATA / f"{name}.calibration.jsonl"), name, 50 * 2**20)
    shipped = yaml.safe_load((PRESET_DIR / f"{name}.yaml").read_text())
    assert fitted["calibration"] == shipped["calibration"]
    assert np.isclose(fitted["dram_bytes_per_s"], shipped["dram_bytes_per_s"])


def test_cpu_profile_runs_ops_one_after_another():
    hw, g = get_hardware("cpu-2core-fp32-eager"), captured("resnet18")
    assert hw.calibration.runtime == "sync"
    host, device, latency, _ = runtime_rows(g, hw)
    assert latency == pytest.approx(host + device)
    assert estimate(g, hw).latency_s == pytest.approx(hw.calibration.fixed_s + latency.sum())
    # no op beats the measured peak MAC rate, and a CPU conv's bias is no extra kernel
    peak = max(hw.macs_per_cycle.values()) * hw.clock_hz
    f = op_features(g, 4, bias_kernel=False)
    assert (device >= f["macs"] / peak * (1 - 1e-9)).all()
    assert not any(f["extra"])


def test_cpu_profile_is_the_fit_of_the_committed_data():
    from netfrontier.measure.calibrate import fit_profile, load_records

    name = "cpu-2core-fp32-eager"
    fitted = fit_profile(load_records(DATA.parent / "cpu" / f"{name}.calibration.jsonl"), name,
                         32 * 2**20)
    shipped = yaml.safe_load((PRESET_DIR / f"{name}.yaml").read_text())
    assert fitted["calibration"] == shipped["calibration"]
    # the bandwidth comes from cases over twice the 32 MiB cache (classifier-head GEMVs),
    # not from cache-resident copies (which ran at ~200 GB/s)
    assert 10e9 < shipped["dram_bytes_per_s"] < 50e9
    assert "twice the last-level cache" in shipped["sources"]["dram_bytes_per_s"]


def test_dram_bandwidth_ignores_cases_that_fit_in_cache():
    from netfrontier.measure.calibrate import dram_bandwidth

    rec = lambda case, t: {"case": case, "min_s": t}  # noqa: E731
    feats = [(rec("copy_small", 1e-5), "copy", 0.0, 4e6),  # 400 GB/s: from cache
             (rec("gemv_big", 1e-2), "matmul", 1e8, 2e8)]  # 20 GB/s over 2x a 32 MB cache
    bw, how = dram_bandwidth(feats, 32e6)
    assert bw == pytest.approx(2e10) and "gemv_big" in how
    bw, how = dram_bandwidth(feats[:1], 32e6)  # nothing that large: the largest copies
    assert bw == pytest.approx(4e11) and "largest copies" in how


def test_knots_of_a_short_class_span_its_range():
    from netfrontier.measure.fit_runtime import knots

    pts = [(-5 + i, -4.5 + i) for i in range(6)]  # six cases: not one knot, flat below
    k = knots(pts)
    assert len(k) == 6 and k[0][0] == -5 and k[-1][0] == 0


def test_fit_needs_the_repeated_op_cases():
    from netfrontier.errors import MeasurementError
    from netfrontier.measure.calibrate import fit_profile, load_records

    recs = [r for r in load_records(DATA.parent / "cpu" / "cpu-2core-fp32-eager.calibration.jsonl")
            if not r["case"].startswith("rep16_")]
    with pytest.raises(MeasurementError, match="repeated-op"):
        fit_profile(recs, "x", 32 * 2**20)
