"""Capture: every torchvision weight entry's MACs against its published figure; ONNX parity."""
from __future__ import annotations

import pytest
import torch

from netfrontier.errors import CaptureError, GraphImportError, UnknownModelError
from netfrontier.graph.onnx_capture import capture_onnx
from netfrontier.graph.torch_capture import capture_module
from netfrontier.models.registry import capture, resolve, zoo_entries
from tests.conftest import captured

ENTRIES = zoo_entries()


def test_registry_has_every_torchvision_imagenet_entry():
    tv = [e for e in ENTRIES if e.source == "torchvision"]
    assert len(tv) == 114
    assert all(e.top1 and 50 < e.top1 < 95 for e in tv)
    assert {e.resolution for e in tv} >= {224, 299, 384, 518}


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e.source == "torchvision"],
                         ids=lambda e: e.name)
def test_macs_match_torchvision_metadata(entry):
    """Within 1%, or within the rounding of the published figure (3 decimals of GMACs)."""
    src, e = resolve(entry.name)
    graph = src.capture(e)
    tolerance = max(0.01 * entry.ref_macs, 0.0005e9)
    assert abs(graph.macs - entry.ref_macs) <= tolerance, (graph.macs, entry.ref_macs)
    assert graph.resolution == entry.resolution


def test_capture_allocates_no_weights():
    src, e = resolve("vit_h_14.IMAGENET1K_SWAG_E2E_V1")
    model = src.build(e)
    assert all(p.device.type == "meta" for p in model.parameters())
    graph = src.capture(e)
    assert graph.resolution == 518 and graph.params == e.params
    assert graph.macs > 1.0e12


def test_nodes_carry_shapes_modules_and_edges():
    g = captured("resnet18")
    convs = [n for n in g.nodes if n.kind == "conv"]
    assert len(convs) == 20
    first = convs[0]
    assert first.module == "conv1"
    assert first.input_shapes[0] == (1, 3, 224, 224)
    assert first.output_shapes[0] == (1, 64, 112, 112)
    assert first.weight_shapes[0] == (64, 3, 7, 7)
    assert first.macs == 64 * 3 * 49 * 112 * 112
    assert first.dims == (112 * 112, 64, 3, 49, 1)
    producers = {a for a, b in g.edges}
    assert len(g.edges) > len(convs) and max(producers) < len(g.nodes)


def test_depthwise_and_grouped_kinds():
    kinds = {n.kind for n in captured("mobilenet_v2").nodes}
    assert "depthwise_conv" in kinds
    assert "grouped_conv" in {n.kind for n in captured("resnext50_32x4d").nodes}


def test_attention_is_one_op():
    g = captured("vit_b_16")
    att = [n for n in g.nodes if n.kind == "attention"]
    assert len(att) == 12
    assert att[0].input_shapes[0] == (1, 12, 197, 64)


def test_batch_scales_macs():
    assert capture("resnet18", batch=4).macs == 4 * captured("resnet18").macs


def test_user_module_is_left_untouched():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU()).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    g = capture_module(model, (1, 3, 16, 16), model_name="tiny")
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model._forward_hooks and not model._forward_pre_hooks
    assert g.macs == 8 * 3 * 9 * 14 * 14


def test_capture_error_names_the_model():
    class Broken(torch.nn.Module):
        def forward(self, x):
            return x.view(7, -1, 5)

    with pytest.raises(CaptureError, match="broken"):
        capture_module(Broken(), (1, 3, 8, 8), model_name="broken")


def test_unknown_model_suggests_close_names():
    with pytest.raises(UnknownModelError, match="resnet50"):
        resolve("resnet5")


def test_graph_json_round_trip():
    g = captured("mobilenet_v3_small")
    from netfrontier.graph.types import OpGraph

    assert OpGraph.from_json(g.to_json()).digest == g.digest


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2"])
def test_onnx_import_gives_the_same_macs(tmp_path, name):
    import torchvision

    model = getattr(torchvision.models, name)().eval()
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(model, (torch.randn(1, 3, 224, 224),), str(path), dynamo=False,
                      opset_version=17)
    g = capture_onnx(path)
    assert g.macs == captured(name).macs
    assert g.resolution == 224 and g.batch == 1
    assert capture(str(path)).macs == g.macs


def test_malformed_onnx_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not a protobuf")
    with pytest.raises(GraphImportError, match="bad.onnx"):
        capture_onnx(bad)
    with pytest.raises(UnknownModelError, match="missing.onnx"):
        capture(str(tmp_path / "missing.onnx"))


def test_factory_source():
    g = capture("torchvision.models:squeezenet1_1")
    assert g.macs == captured("squeezenet1_1").macs
    with pytest.raises(UnknownModelError, match="nosuchmodule"):
        capture("nosuchmodule:build")
