"""Import an ONNX file into the same OpGraph type, using onnx's shape inference.

MACs follow the same convention as the PyTorch capture (one MAC per multiply-add of Conv, Gemm,
MatMul), so an exported torchvision model gives the same total as capturing it directly.
"""
from __future__ import annotations

import math
from pathlib import Path

from netfrontier.errors import GraphImportError
from netfrontier.graph.aten_kinds import VECTOR_OPS_PER_ELEM
from netfrontier.graph.types import OpGraph, OpNode

KIND_OF_ONNX = {
    "Conv": "conv", "Gemm": "matmul", "MatMul": "matmul",
    "BatchNormalization": "batchnorm", "LayerNormalization": "layernorm",
    "GroupNormalization": "groupnorm", "InstanceNormalization": "groupnorm",
    "Relu": "relu", "Clip": "relu", "LeakyRelu": "relu", "HardSwish": "hardswish",
    "HardSigmoid": "hardsigmoid", "Sigmoid": "sigmoid", "Tanh": "tanh", "Gelu": "gelu",
    "Add": "add", "Sub": "add", "Mul": "mul", "Div": "mul", "Softmax": "softmax",
    "MaxPool": "maxpool", "AveragePool": "avgpool", "GlobalAveragePool": "avgpool",
    "GlobalMaxPool": "maxpool", "ReduceMean": "reduce", "ReduceSum": "reduce",
    "ReduceMax": "reduce", "Concat": "concat", "Pad": "pad", "Resize": "resize",
    "Reshape": "view", "Flatten": "view", "Transpose": "copy", "Squeeze": "view",
    "Unsqueeze": "view", "Identity": "view", "Shape": "view", "Gather": "copy",
    "Slice": "view", "Split": "view", "Constant": "view", "Cast": "view", "Expand": "view",
    "Dropout": "view", "QuantizeLinear": "elementwise", "DequantizeLinear": "elementwise",
}
_DTYPE_BYTES = {1: 4, 2: 1, 3: 1, 5: 2, 6: 4, 7: 8, 10: 2, 11: 8, 16: 2, 9: 1}


def _shapes(model) -> dict[str, tuple[tuple[int, ...], int]]:
    out = {}
    vis = list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output)
    for v in vis:
        tt = v.type.tensor_type
        if not tt.HasField("shape"):
            continue
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tt.shape.dim)
        out[v.name] = (dims, tt.elem_type)
    for init in model.graph.initializer:
        out[init.name] = (tuple(init.dims), init.data_type)
    return out


def load_onnx(path: str | Path, batch: int | None = None):
    """Read, check and shape-infer an ONNX model; raises GraphImportError naming the file."""
    import onnx

    p = Path(path)
    try:
        model = onnx.load(str(p))
        onnx.checker.check_model(model)
        model = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except FileNotFoundError as exc:
        raise GraphImportError(f"{p}: no such file") from exc
    except Exception as exc:  # onnx raises DecodeError, ValidationError, ...
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GraphImportError(f"{p}: not a valid ONNX model ({msg})") from exc
    return model


def capture_onnx(path: str | Path, model_name: str | None = None) -> OpGraph:
    """Import an ONNX file; every node becomes an OpNode with shapes, MACs and element counts."""
    model = load_onnx(path)
    g = model.graph
    shapes = _shapes(model)
    weights = {i.name for i in g.initializer}
    for node in g.node:  # constants count as weights
        if node.op_type == "Constant":
            weights.update(node.output)
    inputs = [i for i in g.input if i.name not in weights]
    if not inputs:
        raise GraphImportError(f"{path}: the graph has no non-constant input")
    in_dims = shapes.get(inputs[0].name, ((),))[0]
    if any(d <= 0 for d in in_dims) or len(in_dims) != 4:
        raise GraphImportError(f"{path}: input '{inputs[0].name}' needs a static NCHW shape, "
                               f"got {in_dims}")
    producer: dict[str, int] = {}
    nodes: list[OpNode] = []
    edges: set[tuple[int, int]] = set()
    for idx, node in enumerate(g.node):
        kind = KIND_OF_ONNX.get(node.op_type, "elementwise")
        acts = [t for t in node.input if t and t not in weights]
        wts = [t for t in node.input if t and t in weights]
        if node.op_type in ("Reshape", "Expand", "Slice", "Pad", "Resize", "Split"):
            wts = []  # shape/index operands, not weights
        if not acts and node.op_type != "Constant":
            weights.update(node.output)  # constant-foldable
            kind = "view"
        for t in acts:
            if t in producer:
                edges.add((producer[t], idx))
        for o in node.output:
            producer[o] = idx

        def dims(name):
            return shapes.get(name, ((), 1))[0]

        outs = [dims(o) for o in node.output]
        unknown = not outs or any(d < 0 for s in outs for d in s) or not outs[0]
        if unknown and node.op_type in ("Conv", "Gemm", "MatMul"):
            raise GraphImportError(
                f"{path}: shape inference left the output of node '{node.name or idx}' "
                f"({node.op_type}) unknown; export with static shapes")
        if unknown:  # shape arithmetic (Shape -> Gather -> Concat): no tensor data
            kind, outs = "view", []
        out_elems = sum(math.prod(s) for s in outs if s)
        in_elems = sum(math.prod(dims(t)) for t in acts if dims(t))
        w_elems = sum(math.prod(dims(t)) for t in wts)
        macs, loop, khw = 0, (0, 0, 0, 0, 0), (0, 0)
        if kind == "conv":
            w = dims(node.input[1])
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            o = outs[0]
            m = o[0] * math.prod(o[2:])
            n, c, r = w[0] // group, w[1], math.prod(w[2:])
            macs = m * n * c * r * group
            loop, khw = (m, n, c, r, group), (w[2], w[3] if len(w) > 3 else 1)
            if group > 1:
                kind = "depthwise_conv" if c == 1 else "grouped_conv"
        elif kind == "matmul":
            a, b = dims(node.input[0]), dims(node.input[1])
            trans_b = next((x.i for x in node.attribute if x.name == "transB"), 0)
            k = a[-1]
            ncols = b[0] if (node.op_type == "Gemm" and trans_b) else b[-1]
            batch_dims = math.prod(outs[0][:-2]) if len(outs[0]) > 2 else 1
            rows = outs[0][-2] if len(outs[0]) >= 2 else 1
            macs = batch_dims * rows * ncols * k
            loop, khw = (rows, ncols, k, 1, batch_dims), (1, 1)
        vec = out_elems * VECTOR_OPS_PER_ELEM.get(kind, 0)
        if kind in ("maxpool", "avgpool", "reduce"):
            vec = max(in_elems, out_elems)
        etype = shapes.get(node.output[0], ((), 1))[1] if node.output else 1
        nodes.append(OpNode(
            name=f"{idx}:{node.op_type}", kind=kind, target=f"onnx.{node.op_type}",
            module=node.name, input_shapes=tuple(dims(t) for t in acts),
            output_shapes=tuple(outs), dtype=str(etype), weight_shapes=tuple(dims(t) for t in wts),
            macs=int(macs), vector_ops=int(vec) if kind != "view" else 0,
            input_elems=int(in_elems), output_elems=int(out_elems), weight_elems=int(w_elems),
            dims=tuple(int(x) for x in loop), kernel_hw=tuple(int(x) for x in khw),
            bytes_per_elem=_DTYPE_BYTES.get(etype, 4)))
    params = sum(math.prod(i.dims) for i in g.initializer if len(i.dims) > 0)
    return OpGraph(nodes=tuple(nodes), edges=tuple(sorted(edges)), source="onnx",
                   model=model_name or Path(path).stem, resolution=int(in_dims[-1]),
                   batch=int(in_dims[0]), params=int(params), input_elems=int(math.prod(in_dims)),
                   meta={"path": str(path)})
