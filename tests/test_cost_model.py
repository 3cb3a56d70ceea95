"""The analytical cost model: a contract checked on every preset, then what the seeds say."""
from __future__ import annotations

import numpy as np
import pytest

from netfrontier.cost.analytical import estimate
from netfrontier.cost.base import BOUNDS, CostTable
from netfrontier.errors import OptionError
from netfrontier.hardware.registry import get_hardware, preset_names
from tests.conftest import captured


@pytest.mark.parametrize("name", preset_names())
@pytest.mark.parametrize("model", ["resnet18", "mobilenet_v2", "vit_b_32"])
def test_contract_on_every_preset(name, model):
    hw, g = get_hardware(name), captured(model)
    t = estimate(g, hw)
    assert isinstance(t, CostTable)
    c = t.columns
    assert set(c["bound"]) <= set(BOUNDS)
    assert t.latency_s > 0 and t.dram_bytes > 0 and t.energy_j > 0
    assert (c["latency_s"] >= np.maximum(c["compute_s"], c["memory_s"]) - 1e-15).all() or \
        hw.overhead_mode == "max" or (c["bound"] == "unsupported").any()
    assert c["macs"].sum() == g.macs
    assert (c["utilization"] <= 1.0 + 1e-9).all()
    # weights come from DRAM once, except those an on-chip parameter store keeps (Edge TPU)
    streamed_weights = max(g.table.weight_elems.sum() * t.wbits / 8 - hw.param_memory_bytes, 0)
    assert t.dram_bytes >= streamed_weights * 0.999 or hw.calibration.provenance
    assert estimate(g, hw).totals() == t.totals()  # pure


def test_fusion_folds_bn_and_activation():
    t = estimate(captured("resnet18"), get_hardware("img-series4-1core"))
    ops = list(t.columns["op"])
    assert ops[0] == "conv+batchnorm+relu"
    assert "conv+batchnorm+add+relu" in ops
    assert not any(o.startswith("batchnorm") for o in ops)


def test_depthwise_leaves_channel_parallel_array_idle():
    hw = get_hardware("img-series4-1core")
    mnv2 = estimate(captured("mobilenet_v2"), hw)
    c = mnv2.columns
    dw = np.array([o.startswith("depthwise") for o in c["op"]])
    dense = np.array([o.startswith("conv") for o in c["op"]]) & (c["macs"] > 0)
    assert c["array_utilization"][dw].max() < 0.5 * np.median(c["array_utilization"][dense])


def test_seed_claims_mobilenet_vs_resnet():
    hw = get_hardware("img-series4-1core")
    mnv2, r50 = estimate(captured("mobilenet_v2"), hw), estimate(captured("resnet50"), hw)
    assert mnv2.array_utilization() < 0.5 * r50.array_utilization()
    assert mnv2.achieved_ops_per_s() < 0.75 * r50.achieved_ops_per_s()
    lat_ratio, mac_ratio = mnv2.latency_s / r50.latency_s, mnv2.macs / r50.macs
    assert lat_ratio > 1.4 * mac_ratio


def test_four_bit_weights_cut_weight_heavy_traffic_most():
    hw = get_hardware("img-series4-1core")

    def cut(m):
        return estimate(captured(m), hw).dram_bytes / estimate(captured(m), hw, wbits=4).dram_bytes

    assert cut("vgg16") > 1.9
    assert cut("vgg16") > cut("efficientnet_b0") + 0.3
    assert cut("vgg16") > cut("squeezenet1_1") + 0.3


def test_eight_cores_are_faster_and_bandwidth_helps():
    one, eight = get_hardware("img-series4-1core"), get_hardware("img-series4-8core")
    for m in ("resnet50", "mobilenet_v2", "vgg16"):
        assert estimate(captured(m), eight).latency_s < estimate(captured(m), one).latency_s


def test_fixed_function_flags_transformers():
    vit = estimate(captured("vit_b_32"), get_hardware("tpu-v1"))
    assert vit.totals()["unsupported_layers"] > 0
    assert {"layernorm", "attention"} <= {k for o in vit.unsupported_ops for k in o.split("+")}
    assert estimate(captured("vit_b_32"), get_hardware("img-series4-1core")).totals()[
        "unsupported_layers"] == 0
    assert estimate(captured("resnet18"), get_hardware("tpu-v1")).totals()[
        "unsupported_layers"] == 0


def test_bits_outside_the_preset_are_rejected():
    with pytest.raises(OptionError, match="3-bit weights"):
        estimate(captured("resnet18"), get_hardware("img-series4-1core"), wbits=3)


def test_per_layer_bits_change_only_those_layers():
    hw, g = get_hardware("img-series4-1core"), captured("resnet18")
    base = estimate(g, hw)
    mixed = estimate(g, hw, layer_wbits={"layer4": 4})
    c, m = base.columns, mixed.columns
    in4 = np.array([n.startswith("layer4") for n in c["name"]])
    assert (m["wbits"][in4] == 4).all() and (m["wbits"][~in4] == 8).all()
    assert np.allclose(m["weight_bytes"][~in4], c["weight_bytes"][~in4])
    assert np.allclose(m["weight_bytes"][in4], c["weight_bytes"][in4] / 2)


def test_json_has_the_documented_fields():
    import json

    d = json.loads(estimate(captured("resnet18"), get_hardware("nvidia-t4")).to_json())
    for k in ("model", "hardware", "macs", "params", "latency_s", "dram_bytes", "energy_j"):
        assert k in d
    for k in ("name", "op", "macs", "latency_s", "dram_bytes", "energy_j", "bound"):
        assert k in d["layers"][0]
