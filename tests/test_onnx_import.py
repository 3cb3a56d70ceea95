"""The ONNX importer: MACs of every standard MAC operator, unknown ops flagged, bad nodes named.

Models are built with onnx.helper (no export, milliseconds); MAC counts are checked against
the PyTorch capture of the same layer or a hand formula.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from netfrontier.cost.analytical import estimate
from netfrontier.errors import GraphImportError
from netfrontier.graph.onnx_capture import capture_onnx
from netfrontier.graph.torch_capture import capture_module
from netfrontier.hardware.registry import get_hardware

F = TensorProto.FLOAT


def save(tmp_path, nodes, inputs, outputs, inits=(), name="m", opset=21, domains=()):
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info(n, F, s)
                                            for n, s in inputs],
                              [helper.make_tensor_value_info(n, F, s) for n, s in outputs],
                              [numpy_helper.from_array(np.zeros(s, np.float32), n)
                               for n, s in inits])
    imports = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, 1) for d in domains]
    model = helper.make_model(graph, opset_imports=imports)
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def export(tmp_path, module, shape, name="t"):
    path = tmp_path / f"{name}.onnx"
    torch.onnx.export(module.eval(), (torch.randn(*shape),), str(path), dynamo=False)
    return path


def test_conv_transpose_counts_the_scattered_kernel(tmp_path):
    m = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.ReLU(),
                      nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1, groups=2))
    g = capture_onnx(export(tmp_path, m, (1, 3, 56, 56)))
    assert g.macs == capture_module(m, (1, 3, 56, 56), model_name="m").macs
    ct = next(n for n in g.nodes if n.target == "onnx.ConvTranspose")
    assert ct.kind == "grouped_conv" and ct.macs == 56 * 56 * 64 * 16 * 16


@pytest.mark.parametrize("cell, gates", [(nn.LSTM, 4), (nn.GRU, 3), (nn.RNN, 1)])
def test_recurrent_layers_count_every_gate_and_step(tmp_path, cell, gates):
    m = cell(24, 40, bidirectional=True)
    g = capture_onnx(export(tmp_path, m, (7, 2, 24)))
    assert g.macs == 7 * 2 * 2 * gates * 40 * (24 + 40)
    assert g.resolution == 0 and g.batch == 7  # not an image: no resolution
    assert not [n for n in g.nodes if n.kind == "unknown"]


def test_gemm_matmul_einsum_and_attention(tmp_path):
    nodes = [helper.make_node("Gemm", ["a", "w"], ["g"], transB=1),
             helper.make_node("MatMul", ["g", "w2"], ["m"]),
             helper.make_node("Einsum", ["m", "m"], ["e"], equation="bi,bj->bij"),
             helper.make_node("Reshape", ["e", "shape"], ["q"]),
             helper.make_node("Attention", ["q", "q", "q"], ["y"])]
    path = save(tmp_path, nodes, [("a", (4, 32))], [("y", (1, 4, 8, 8))],
                [("w", (16, 32)), ("w2", (16, 8))], opset=23)
    m = onnx.load(str(path))
    m.graph.initializer.append(numpy_helper.from_array(np.array([1, 4, 8, 8], np.int64),
                                                       "shape"))
    onnx.save(m, str(path))
    g = capture_onnx(path)
    by = {n.target: n for n in g.nodes}
    assert by["onnx.Gemm"].macs == 4 * 16 * 32 and by["onnx.MatMul"].macs == 4 * 8 * 16
    assert by["onnx.Einsum"].macs == 4 * 8 * 8 and by["onnx.Einsum"].kind == "matmul"
    assert by["onnx.Attention"].kind == "attention"
    assert by["onnx.Attention"].macs == 4 * 8 * 8 * (8 + 8)


def _custom_model(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]),
             helper.make_node("MyOp", ["c"], ["u"], domain="com.example"),
             helper.make_node("Relu", ["u"], ["y"])]
    path = save(tmp_path, nodes, [("x", (1, 3, 16, 16))], [("y", (1, 8, 14, 14))],
                [("w", (8, 3, 3, 3))], name="custom", domains=["com.example"])
    m = onnx.load(str(path))  # the exporter recorded the custom op's output shape
    m.graph.value_info.append(helper.make_tensor_value_info("u", F, (1, 8, 14, 14)))
    onnx.save(m, str(path))
    return path


def test_custom_domain_op_is_flagged_unknown_not_a_silent_zero(tmp_path):
    g = capture_onnx(_custom_model(tmp_path))
    kinds = {n.target: n.kind for n in g.nodes}
    assert kinds["onnx.com.example.MyOp"] == "unknown"
    for hw in ("img-series4-1core", "tpu-v1", "cpu-2core-fp32-eager"):
        t = estimate(g, get_hardware(hw)).totals()
        assert t["unknown_layers"] == 1 and t["unknown_ops"] == ["com.example.MyOp"], hw
        assert t["lower_bound"] and t["bound_counts"]["unknown"] == 1
        row = next(r for r in estimate(g, get_hardware(hw)).rows() if r["cost_unknown"])
        assert row["bound"] == "unknown" and row["latency_s"] > 0 and row["dram_bytes"] >= 0


def test_unknown_ops_show_in_the_table_and_json(tmp_path):
    path = str(_custom_model(tmp_path))
    run = [sys.executable, "-c", "from netfrontier.cli import main; main()", "analyze", path]
    table = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert table.returncode == 0, table.stderr
    row = next(ln for ln in table.stdout.splitlines() if "MyOp" in ln)
    assert "unknown:com.example.MyOp" in row and row.rstrip().endswith("unknown")
    assert "lower bounds" in table.stdout
    d = json.loads(subprocess.run(run + ["--json"], capture_output=True, text=True).stdout)
    assert d["unknown_ops"] == ["com.example.MyOp"] and d["lower_bound"] is True
    assert [r["bound"] for r in d["layers"] if r["cost_unknown"]] == ["unknown"]


@pytest.mark.parametrize("group, message", [(0, "group must be a whole number of at least 1"),
                                            (2, "do not match with group 2")])
def test_conv_with_a_bad_group_names_the_node(tmp_path, group, message):
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv1", group=group)]
    path = save(tmp_path, nodes, [("x", (1, 3, 8, 8))], [("y", (1, 4, 6, 6))],
                [("w", (4, 3, 3, 3))])
    with pytest.raises(GraphImportError, match=f"node 'conv1' \\(Conv\\): .*{message}"):
        capture_onnx(path)


def test_reduce_mean_axes(tmp_path):
    ok = save(tmp_path, [helper.make_node("ReduceMean", ["x"], ["y"], keepdims=0)],
              [("x", (1, 3, 8, 8))], [("y", ())], opset=13, name="all")
    g = capture_onnx(ok)  # no axes: every axis reduced
    assert g.nodes[0].kind == "reduce" and g.nodes[0].vector_ops == 192
    bad = save(tmp_path, [helper.make_node("ReduceMean", ["x"], ["y"], axes=[5], name="rm")],
               [("x", (1, 3, 8, 8))], [("y", (1, 3, 8, 8))], opset=13, name="bad")
    with pytest.raises(GraphImportError, match="node 'rm' \\(ReduceMean\\): axes \\[5\\] do not "
                                               "fit a 4-D input"):
        capture_onnx(bad)


def test_a_mac_op_after_an_uninferable_shape_names_the_culprit(tmp_path):
    nodes = [helper.make_node("MyOp", ["x"], ["u"], domain="com.example", name="mystery"),
             helper.make_node("Conv", ["u", "w"], ["y"], name="head")]
    path = save(tmp_path, nodes, [("x", (1, 3, 8, 8))], [("y", ["n", "c", "h", "w"])],
                [("w", (4, 3, 3, 3))], domains=["com.example"])
    with pytest.raises(GraphImportError, match="node 'head' \\(Conv\\): its shapes are unknown "
                                               "\\(after node 'mystery' \\(com.example.MyOp\\)"):
        capture_onnx(path)


def test_contrib_shape_inference_writes_nothing(tmp_path, monkeypatch):
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"]),
             helper.make_node("Mystery", ["y"], ["z"], domain="com.microsoft")]
    path = save(tmp_path, nodes, [("x", (2, 8))], [("z", ["a", "b"])], [("w", (8, 4))],
                domains=["com.microsoft"])
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    g = capture_onnx(path)
    assert g.macs == 2 * 4 * 8 and [n.kind for n in g.nodes] == ["matmul", "unknown"]
    assert list(work.iterdir()) == []  # onnxruntime's infer_shapes would dump files here
