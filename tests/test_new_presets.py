"""The presets of issue 13 (one image per DPU core, Edge TPU parameter cache, Eyeriss, Jetsons)
and the cost-model features they need: every figure sourced, each feature doing what it says."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import yaml

from netfrontier.cost.analytical import estimate
from netfrontier.errors import SpecError
from netfrontier.hardware.registry import PRESET_DIR, get_hardware
from netfrontier.hardware.spec import spec_from_dict
from tests.conftest import captured

NEW = ("dpu-b4096-zcu102", "dpu-b4096-zcu104", "kv260", "edge-tpu-usb", "edge-tpu-devboard",
       "eyeriss-v1", "jetson-agx-xavier", "jetson-nano", "jetson-agx-orin")
UNSOURCED = {"version", "name", "description", "kind", "sources", "default_wbits",
             "default_abits", "fusion", "overhead_mode", "fuse_depthwise"}


@pytest.mark.parametrize("name", NEW)
def test_every_figure_of_a_new_preset_has_a_source(name):
    d = yaml.safe_load((PRESET_DIR / f"{name}.yaml").read_text())
    for key in set(d) - UNSOURCED:
        src = str(d["sources"].get(key, "")).strip()
        assert len(src) > 20, f"{name}: '{key}' has no real source ({src!r})"
    assert "default_bits" in d["sources"] or "weight_bits" in d["sources"]
    get_hardware(name)  # and it validates


def _dpu(**changes):
    return dataclasses.replace(get_hardware("dpu-b4096-zcu104"), **changes)


def test_one_image_per_dpu_core_is_one_cores_latency():
    """Batch 1 on two cores in images mode costs what one core with its share costs."""
    g = captured("resnet18")
    two = get_hardware("dpu-b4096-zcu104")
    one = _dpu(cores=1, core_mode="split", onchip_bytes=two.onchip_bytes / 2,
               weight_buffer_bytes=two.weight_buffer_bytes / 2)
    a, b = estimate(g, two), estimate(g, one)
    assert a.latency_s == pytest.approx(b.latency_s, rel=1e-12)
    assert a.dram_bytes == pytest.approx(b.dram_bytes, rel=1e-12)
    split = estimate(g, _dpu(core_mode="split"))
    assert split.latency_s < 0.75 * a.latency_s  # splitting tiles over two cores is faster


def test_images_mode_batch_uses_every_core_and_each_fetches_weights():
    g1, g2 = captured("resnet18"), captured("resnet18", batch=2)
    hw = get_hardware("dpu-b4096-zcu104")
    b1, b2 = estimate(g1, hw), estimate(g2, hw)
    # two images on two cores: about one image's time, twice the weight traffic
    assert b2.latency_s < 1.3 * b1.latency_s
    w = g1.table.weight_elems.sum()
    assert b2.dram_bytes > b1.dram_bytes + 0.9 * w


def test_per_core_port_limit_slows_memory_bound_layers():
    g = captured("vgg16")
    fast = estimate(g, _dpu(core_dram_bytes_per_s=0.0))
    slow = estimate(g, _dpu(core_dram_bytes_per_s=2e9))
    assert slow.latency_s > fast.latency_s
    assert np.allclose(slow.columns["dram_bytes"], fast.columns["dram_bytes"])
    assert (slow.columns["memory_s"] >= fast.columns["memory_s"] * 4.7).all()


def test_parameter_cache_keeps_small_models_and_streams_the_rest():
    hw = get_hardware("edge-tpu-usb")
    small, big = captured("mobilenet_v2"), captured("vgg16")
    t = estimate(small, hw)
    # mobilenet_v2's 3.5 MB of int8 weights fit the 8 MiB cache: only activations move
    assert t.dram_bytes < 0.1 * small.table.weight_elems.sum()
    v = estimate(big, hw)
    streamed = big.table.weight_elems.sum() - hw.param_memory_bytes
    assert v.dram_bytes >= streamed
    assert v.latency_s >= streamed / hw.dram_bytes_per_s
    no_cache = estimate(big, dataclasses.replace(hw, param_memory_bytes=0.0))
    assert no_cache.dram_bytes > v.dram_bytes + 0.9 * hw.param_memory_bytes * 0.9


def test_unfused_depthwise_goes_through_dram():
    g = captured("mobilenet_v2")
    hw = get_hardware("img-series4-1core")
    fused = estimate(g, hw)
    unfused = estimate(g, dataclasses.replace(hw, fuse_depthwise=False))
    assert unfused.dram_bytes > 1.5 * fused.dram_bytes
    r = estimate(captured("resnet18"), dataclasses.replace(hw, fuse_depthwise=False))
    assert r.dram_bytes == estimate(captured("resnet18"), hw).dram_bytes  # no depthwise layers


def _base():
    return yaml.safe_load((PRESET_DIR / "dpu-b4096-zcu104.yaml").read_text())


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d.update(core_mode="pairs"), "'core_mode' must be one of split, images"),
    (lambda d: d.update(param_memory_bytes=-1), "'param_memory_bytes' = -1 is implausible"),
    (lambda d: d.update(core_dram_bytes_per_s=5), "'core_dram_bytes_per_s' = 5 is implausible"),
    (lambda d: d.update(fuse_depthwise="yes"), "'fuse_depthwise' must be a bool"),
    (lambda d: d["sources"].pop("core_mode"), "'core_mode' has no entry under 'sources'"),
    (lambda d: (d.update(param_memory_bytes=1e6), d["sources"].pop("param_memory_bytes", None)),
     "'param_memory_bytes' has no entry under 'sources'"),
    (lambda d: d.update(calibration={"anchors": {"rep16_relu": -1}}),
     "'calibration.anchors.rep16_relu' = -1"),
])
def test_new_keys_are_checked(mutate, message):
    d = _base()
    mutate(d)
    with pytest.raises(SpecError, match=message):
        spec_from_dict(d, "chip.yaml")
