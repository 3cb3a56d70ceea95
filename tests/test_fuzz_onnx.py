"""Property tests of the ONNX importer: thousands of random or mutated models, in seconds.

Each generated model is either imported, and then every node's MACs and every cost on three
presets (MAC array, fixed-function with host fallback, calibrated CPU runtime) are finite and
non-negative, or it is rejected with one NetfrontierError line naming the file. No other
exception escapes. A sample of rejected models also goes through the real command.
"""
from __future__ import annotations

import os
import random
import subprocess
import sys

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from netfrontier.cost.analytical import estimate
from netfrontier.errors import NetfrontierError
from netfrontier.graph.onnx_capture import capture_onnx
from netfrontier.hardware.registry import get_hardware

HW = [get_hardware(n) for n in ("img-series4-1core", "tpu-v1", "cpu-2core-fp32-eager")]
OPS = ["Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum", "LSTM", "GRU", "RNN", "Attention",
       "ReduceMean", "ReduceSum", "ArgMax", "Relu", "Add", "Mul", "Concat", "Reshape",
       "Transpose", "Softmax", "MaxPool", "AveragePool", "GlobalAveragePool",
       "BatchNormalization", "LayerNormalization", "Resize", "Pad", "Gather", "Flatten",
       "Squeeze", "Unsqueeze", "Split", "Slice", "TopK", "If", "Loop", "NonMaxSuppression",
       "Exp", "Sigmoid", "MyOp", "Clip", "InstanceNormalization", "DepthToSpace"]
ATTRS = {"group": st.integers(-2, 5), "kernel_shape": st.lists(st.integers(-1, 4), min_size=1, max_size=3),
         "strides": st.lists(st.integers(-1, 3), min_size=1, max_size=3),
         "pads": st.lists(st.integers(-1, 3), min_size=1, max_size=6), "axis": st.integers(-6, 6),
         "axes": st.lists(st.integers(-6, 6), min_size=1, max_size=3), "keepdims": st.integers(0, 1),
         "transA": st.integers(0, 1), "transB": st.integers(0, 1),
         "hidden_size": st.integers(-1, 9), "layout": st.integers(0, 1),
         "perm": st.lists(st.integers(-1, 4), min_size=1, max_size=4), "blocksize": st.integers(0, 3),
         "equation": st.sampled_from(["ij,jk->ik", "bij,bjk->bik", "...ij,...jk", "ii->i",
                                      "ij->ji", "i,i", "ab,cd->abcd", "ij,jk", "xy,yz->",
                                      ",->", "ij,jk,kl->il", "a->", "ij,kl->", "i...,...i"]),
         "num_heads": st.integers(-1, 4), "q_num_heads": st.integers(-1, 4),
         "kv_num_heads": st.integers(-1, 4), "mode": st.sampled_from(["nearest", "linear"]),
         "direction": st.sampled_from(["forward", "bidirectional", "reverse"])}
SCHEMAS = {op: onnx.defs.get_schema(op, 23) for op in OPS if onnx.defs.has(op)}
_dims = st.lists(st.integers(0, 9), min_size=0, max_size=4)

_node = st.tuples(st.sampled_from(OPS), st.lists(st.integers(0, 20), min_size=0, max_size=4),
                  st.dictionaries(st.sampled_from(sorted(ATTRS)), st.none(), max_size=3),
                  st.sampled_from(["", "", "", "com.example", "com.microsoft"]))


def build(data, ops, weights, in_shape) -> onnx.ModelProto:
    """A model from drawn (op, input picks, attribute names, domain) tuples and weight shapes."""
    tensors = ["x"] + [f"w{i}" for i in range(len(weights))]
    nodes = []
    for i, (op, picks, attr_names, domain) in enumerate(ops):
        if op in SCHEMAS and not domain and picks and picks[0] % 3:  # mostly schema-valid
            sch = SCHEMAS[op]
            picks = (picks * 4)[:max(sch.min_input, min(len(picks), sch.max_input))]
            attr_names = [a for a in attr_names if a in sch.attributes] + \
                [a for a in sorted(ATTRS) if a in sch.attributes][:picks[0] % 3]
        attrs = {k: data.draw(ATTRS[k]) for k in attr_names}
        inputs = [tensors[p % len(tensors)] for p in picks]
        if inputs and picks[0] % 4:  # mostly a chain: the first input is the latest tensor
            inputs[0] = tensors[-1] if tensors[-1].startswith("t") else "x"
        nodes.append(helper.make_node(op, inputs, [f"t{i}"], name=f"n{i}",
                                      domain=domain if op != "MyOp" else "com.example", **attrs))
        tensors.append(f"t{i}")
    inits = [numpy_helper.from_array(np.ones(s, np.float32) * 0.5, f"w{i}")
             for i, s in enumerate(weights)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                         in_shape)],
                              [helper.make_tensor_value_info(tensors[-1], TensorProto.FLOAT,
                                                             ["d0", "d1", "d2"][:len(in_shape)]
                                                             )], inits)
    domains = {n.domain for n in nodes} - {""}
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 23)] +
                             [helper.make_opsetid(d, 1) for d in sorted(domains)])


def imported_or_one_error(path) -> str | None:
    try:
        g = capture_onnx(path)
    except NetfrontierError as exc:
        msg = str(exc)
        assert msg.strip() and "\n" not in msg and msg.startswith(str(path)), msg
        return msg
    for n in g.nodes:
        assert n.macs >= 0 and n.vector_ops >= 0 and n.output_elems >= 0, n
    for hw in HW:
        try:
            table = estimate(g, hw)
        except NetfrontierError:
            continue
        for col in ("latency_s", "dram_bytes", "energy_j"):
            v = np.asarray(table.columns[col], float)
            assert np.isfinite(v).all() and (v >= 0).all(), (hw.name, col, v)
    return None


@settings(max_examples=1500, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.data(), st.lists(_node, min_size=1, max_size=4),
       st.lists(_dims, max_size=3), st.sampled_from([(1, 3, 8, 8), (2, 4, 6), (1, 3, 0, 4),
                                                     (5, 2, 3), (1, 8)]))
def test_random_models_import_or_fail_in_one_line(tmp_path_factory, data, ops, weights, shape):
    path = tmp_path_factory.getbasetemp() / "fuzz.onnx"
    onnx.save(build(data, ops, weights, shape), str(path))
    imported_or_one_error(path)


def _valid_bytes() -> bytes:
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], group=1, pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("ReduceMean", ["r"], ["m"], axes=[2, 3], keepdims=1),
             helper.make_node("Flatten", ["m"], ["f"]),
             helper.make_node("Gemm", ["f", "g"], ["y"], transB=1)]
    inits = [numpy_helper.from_array(np.ones((8, 3, 3, 3), np.float32), "w"),
             numpy_helper.from_array(np.ones((10, 8), np.float32), "g")]
    graph = helper.make_graph(nodes, "v", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, (1, 3, 16, 16))], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, (1, 10))], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]) \
        .SerializeToString()


VALID = _valid_bytes()


@settings(max_examples=1000, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)),
                min_size=1, max_size=4))
def test_corrupted_model_bytes_import_or_fail_in_one_line(tmp_path_factory, flips):
    b = bytearray(VALID)
    for pos, val in flips:
        b[pos] = val
    path = tmp_path_factory.getbasetemp() / "flip.onnx"
    path.write_bytes(bytes(b))
    imported_or_one_error(path)


def rejected_samples(n: int, tmp_path, seed: int = 0) -> list:
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        b = bytearray(VALID)
        for _ in range(rng.randint(1, 3)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        path = tmp_path / f"bad{len(out)}.onnx"
        path.write_bytes(bytes(b))
        if imported_or_one_error(path) is not None:
            out.append(path)
        else:
            path.unlink()
    return out


def test_rejected_models_through_the_command_exit_2_with_one_line(tmp_path):
    for path in rejected_samples(4, tmp_path):
        proc = subprocess.run([sys.executable, "-c", "from netfrontier.cli import main; main()",
                               "analyze", str(path)], capture_output=True, text=True,
                              env=dict(os.environ), timeout=120)
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert lines[0].startswith(f"error: {path}") and "Traceback" not in proc.stderr
        assert proc.stdout == ""


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])
