"""Import an ONNX file into the same OpGraph type, using onnx's shape inference.

MACs follow the same convention as the PyTorch capture (graph/onnx_ops.py says per operator),
so an exported torchvision model gives the same total as capturing it directly. Models with
onnxruntime contrib ops (com.microsoft) get their shapes from onnxruntime's symbolic shape
inference. An operator the importer cannot cost becomes kind `unknown` (flagged in every
output); a node whose attributes contradict its operator is one error naming the node.
"""
from __future__ import annotations

import math
from pathlib import Path

from netfrontier.errors import GraphImportError
from netfrontier.graph.aten_kinds import VECTOR_OPS_PER_ELEM
from netfrontier.graph.onnx_ops import (CONTRIB, SHAPE_OPERANDS, BadNode, check_reduce_axes,
                                        kind_hint, op_cost)
from netfrontier.graph.types import MAC_KINDS, OpGraph, OpNode

_DTYPE_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8,
                16: 2, 17: 1, 18: 1, 19: 1, 20: 1, 21: 1, 22: 1, 23: 1}


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


def _contrib_shapes(model):
    """onnxruntime's symbolic shape inference, which knows the com.microsoft ops.

    Its `infer_shapes` entry point writes `sym_shape_infer_temp.onnx` (and external-data files)
    into the working directory when some shape stays unknown, so its loop is run here instead,
    keeping whatever shapes it did infer and writing nothing.
    """
    try:
        from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

        ssi = SymbolicShapeInference(2**31 - 1, True, False, 0)
        ssi._preprocess(model)
        while ssi.run_:
            ssi._infer_impl()
        ssi._update_output_from_vi()
        return ssi.out_mp_
    except Exception:  # noqa: BLE001 — its own failure leaves the shapes onnx inferred
        return model


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
    if any(n.domain in CONTRIB for n in model.graph.node):
        model = _contrib_shapes(model)
    return model


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _ints_of(model, name: str) -> list[int] | None:
    """The values of a constant integer tensor (reduction axes given as an input)."""
    from onnx import numpy_helper

    for init in model.graph.initializer:
        if init.name == name:
            return [int(v) for v in numpy_helper.to_array(init).reshape(-1)]
    return None


class _Importer:
    """Walks the nodes in order, tracking which tensors are weights and who produced what."""

    def __init__(self, model, path: str):
        self.model, self.path, self.g = model, path, model.graph
        self.shapes = _shapes(model)
        self.weights = {i.name for i in self.g.initializer}
        for node in self.g.node:  # constants count as weights
            if node.op_type == "Constant":
                self.weights.update(node.output)
        self.producer: dict[str, int] = {}
        self.edges: set[tuple[int, int]] = set()
        self.unknown_shape_from: dict[str, str] = {}  # tensor -> node that left it unknown

    def dims(self, name: str) -> tuple[int, ...] | None:
        s = self.shapes.get(name)
        return s[0] if s and all(d >= 0 for d in s[0]) else None

    def node(self, idx: int, node) -> OpNode:
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        label = f"node '{node.name or idx}' ({op})"
        try:
            return self._node(idx, node, op, label)
        except BadNode as exc:
            raise GraphImportError(f"{self.path}: {label}: {exc}") from None
        except (ArithmeticError, IndexError, KeyError, TypeError, ValueError) as exc:
            raise GraphImportError(f"{self.path}: {label}: cannot read it "
                                   f"({type(exc).__name__}: {exc})") from None

    def _node(self, idx: int, node, op: str, label: str) -> OpNode:
        attrs = _attrs(node)
        n_data = SHAPE_OPERANDS.get(node.op_type, len(node.input))
        data_in = [t for t in node.input[:n_data] if t]
        acts = [t for t in data_in if t not in self.weights]
        wts = [t for t in data_in if t in self.weights]
        foldable = not acts and node.op_type != "Constant"
        if foldable:
            self.weights.update(node.output)  # constant-foldable: costs nothing at inference
        for t in acts:
            if t in self.producer:
                self.edges.add((self.producer[t], idx))
        for o in node.output:
            self.producer[o] = idx
        outs = [self.dims(o) for o in node.output if o]
        known = bool(outs) and all(s is not None for s in outs)
        if foldable:
            cost = op_cost(node, attrs, self.dims, outs) if known else None
            kind = "view"
        elif not known:
            kind = self._unknown_shapes(node, label, acts)
            cost = None
        else:
            axes_in = _ints_of(self.model, node.input[1]) if len(node.input) > 1 else None
            check_reduce_axes(node.op_type, attrs, axes_in, self.dims(node.input[0]) if
                              node.input and node.input[0] else None)
            cost = op_cost(node, attrs, self.dims, outs)
            kind = cost.kind
        outs = [s for s in outs if s is not None]
        out_elems = sum(math.prod(s) for s in outs)
        in_elems = sum(math.prod(self.dims(t)) for t in acts if self.dims(t) is not None)
        w_elems = sum(math.prod(self.dims(t)) for t in wts if self.dims(t) is not None)
        if kind == "view" or cost is None:
            vec = out_elems if kind == "unknown" else 0
        elif cost.vector_ops is not None:
            vec = cost.vector_ops
        elif kind in ("maxpool", "avgpool", "reduce"):
            vec = max(in_elems, out_elems)
        else:
            vec = out_elems * VECTOR_OPS_PER_ELEM.get(kind, 1)
        etype = self.shapes.get(node.output[0], ((), 1))[1] if node.output else 1
        mac = cost is not None and kind in MAC_KINDS + ("matmul",)
        return OpNode(
            name=f"{idx}:{node.op_type}", kind=kind, target=f"onnx.{op}", module=node.name,
            input_shapes=tuple(self.dims(t) or () for t in acts), output_shapes=tuple(outs),
            dtype=str(etype), weight_shapes=tuple(self.dims(t) or () for t in wts),
            macs=int(cost.macs) if mac else 0, vector_ops=int(vec),
            input_elems=int(in_elems), output_elems=int(out_elems), weight_elems=int(w_elems),
            dims=tuple(int(x) for x in cost.loop) if mac else (0, 0, 0, 0, 0),
            kernel_hw=tuple(int(x) for x in cost.khw) if mac else (0, 0),
            bytes_per_elem=_DTYPE_BYTES.get(etype, 4))

    def _unknown_shapes(self, node, label: str, acts: list[str]) -> str:
        """Kind of a node whose output shapes shape inference could not tell.

        Shape arithmetic (Shape -> Gather -> Concat feeding a Reshape) carries no tensor data:
        a view. Anything else cannot be costed: `unknown`, remembering who left the shape
        unknown. An op with MACs there is an error naming that culprit (its cost would be a
        gross underestimate, and a static export fixes it).
        """
        upstream = next((self.unknown_shape_from[t] for t in acts
                         if t in self.unknown_shape_from), None)
        for o in node.output:
            self.unknown_shape_from[o] = upstream or label
        hint = kind_hint(node.op_type, node.domain)
        if hint == "mac":
            why = f"after {upstream}, whose output shape cannot be inferred" if upstream else \
                "shape inference could not tell its output"
            raise GraphImportError(f"{self.path}: {label}: its shapes are unknown ({why}); "
                                   "export with static shapes")
        return "view" if hint == "view" or (upstream is None and hint != "unknown") \
            else "unknown"


def capture_onnx(path: str | Path, model_name: str | None = None) -> OpGraph:
    """Import an ONNX file; every node becomes an OpNode with shapes, MACs and element counts."""
    model = load_onnx(path)
    imp = _Importer(model, str(path))
    inputs = [i for i in model.graph.input if i.name not in imp.weights]
    if not inputs:
        raise GraphImportError(f"{path}: the graph has no non-constant input")
    in_dims = [imp.dims(i.name) for i in inputs]
    bad = next((i.name for i, d in zip(inputs, in_dims) if not d), None)
    if bad is not None:
        raise GraphImportError(f"{path}: input '{bad}' needs a static shape "
                               f"(got {imp.shapes.get(bad, ((),))[0]}); export with fixed sizes")
    nodes = [imp.node(idx, node) for idx, node in enumerate(model.graph.node)]
    if all(n.kind == "view" for n in nodes):
        raise GraphImportError(f"{path}: no node computes anything from the input (all are "
                               "constants or shape arithmetic)")
    params = sum(math.prod(i.dims) for i in model.graph.initializer if len(i.dims) > 0)
    first = in_dims[0]
    return OpGraph(nodes=tuple(nodes), edges=tuple(sorted(imp.edges)), source="onnx",
                   model=model_name or Path(path).stem,
                   resolution=int(first[-1]) if len(first) == 4 else 0,
                   batch=int(first[0]), params=int(params),
                   input_elems=int(sum(math.prod(d) for d in in_dims)),
                   meta={"path": str(path)})
