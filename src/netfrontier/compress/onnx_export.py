"""Export a fake-quantized model to ONNX in QDQ form, and check ONNX Runtime against PyTorch.

Each quantized layer becomes DequantizeLinear(int8 weight, per-axis scale) and
QuantizeLinear → DequantizeLinear (uint8, per-tensor scale and zero point) on its input, in
front of the float Conv/Gemm: the standard QDQ form that ONNX Runtime and NPU compilers fuse
into integer kernels. Weights below 8 bits are stored in int8 containers whose values stay in
the narrow range of their bit depth (±7 at 4 bits), so the file carries the exact grid.
"""
from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path

import numpy as np
import torch
from torch import nn

from netfrontier.compress.fakequant import ActQuantizer
from netfrontier.errors import OptionError


class _ExportWeightQDQ(nn.Module):
    """Weight already on its grid → per-channel QuantizeLinear/DequantizeLinear (int8)."""

    def __init__(self, scale: torch.Tensor, per_channel: bool):
        super().__init__()
        self.register_buffer("scale", scale.detach().clone().float())
        self.per_channel = per_channel

    def forward(self, w):
        if self.per_channel:
            zp = torch.zeros(self.scale.shape, dtype=torch.int32)
            return torch.fake_quantize_per_channel_affine(w, self.scale, zp, 0, -128, 127)
        return torch.fake_quantize_per_tensor_affine(w, float(self.scale.reshape(-1)[0]), 0,
                                                     -128, 127)


class _ExportActQDQ(nn.Module):
    """Per-tensor uint8 QuantizeLinear/DequantizeLinear with constant (Python) parameters."""

    def __init__(self, q: ActQuantizer):
        super().__init__()
        self.scale = float(q.scale.detach().reshape(-1)[0])
        self.zero_point = int(torch.round(q.zero_point.reshape(-1)[0]))
        self.qmin, self.qmax = q.qmin, q.qmax

    def forward(self, x):
        return torch.fake_quantize_per_tensor_affine(x, self.scale, self.zero_point, self.qmin,
                                                     self.qmax)


def export_view(qmodel: nn.Module) -> nn.Module:
    """A copy of `qmodel` whose quantizers use only ONNX-exportable 8-bit fake-quant ops and
    compute exactly what `qmodel` computes."""
    for layer in getattr(qmodel, "quant_layers", []):
        if layer.wbits > 8:
            raise OptionError(f"ONNX QDQ export holds weights of at most 8 bits; layer "
                              f"'{layer.path}' has {layer.wbits}")
    for path, q in qmodel.named_modules():
        if isinstance(q, ActQuantizer) and q.bits != 8:
            raise OptionError(f"ONNX QDQ export needs 8-bit activations; '{path}' has {q.bits}")
    if not getattr(qmodel, "quant_layers", None):
        raise OptionError("the model has no quantized layers to export (run ptq.quantize first)")
    view = copy.deepcopy(qmodel).eval()
    for layer in view.quant_layers:
        m = view.get_submodule(layer.path)
        wq = m.parametrizations.weight[0]
        scale, per_channel = wq.scale.detach().clone(), wq.axis is not None
        with torch.no_grad():  # the weight on its grid (exact), then an 8-bit QDQ around it
            m.parametrizations.weight.original.copy_(m.weight)
        # (swap the parametrization in place: removing it would edit the class it shares
        # with `qmodel`)
        m.parametrizations.weight[0] = _ExportWeightQDQ(scale, per_channel)
        m.input_quantizer = _ExportActQDQ(m.input_quantizer)
    return view


def _fold_weight_quantize(model):
    """QuantizeLinear on a constant weight → an int8 initializer feeding DequantizeLinear."""
    import onnx
    from onnx import numpy_helper

    g = model.graph
    inits = {i.name: i for i in g.initializer}
    consts = {n.output[0]: n for n in g.node if n.op_type == "Constant"}

    def value(name):
        if name in inits:
            return numpy_helper.to_array(inits[name])
        if name in consts:
            return numpy_helper.to_array(consts[name].attribute[0].t)
        return None

    keep, folded = [], 0
    for node in g.node:
        if node.op_type == "QuantizeLinear":
            x, s = value(node.input[0]), value(node.input[1])
            zp = value(node.input[2]) if len(node.input) > 2 else None
            if x is not None and s is not None and x.ndim > 1:
                axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
                shape = [1] * x.ndim
                if s.ndim:
                    shape[axis] = -1
                zdt = zp.dtype if zp is not None else np.uint8
                info = np.iinfo(zdt)
                zpv = zp.astype(np.float32).reshape(shape) if zp is not None else 0.0
                q = np.clip(np.rint(x / s.reshape(shape)) + zpv, info.min, info.max).astype(zdt)
                name = node.output[0]
                g.initializer.append(numpy_helper.from_array(q, name))
                folded += 1
                continue
        keep.append(node)
    del g.node[:]
    g.node.extend(keep)
    used = {i for n in g.node for i in n.input}
    for init in list(g.initializer):
        if init.name not in used and init.name not in {o.name for o in g.output}:
            g.initializer.remove(init)
    kept_nodes = [n for n in g.node if not (n.op_type == "Constant" and n.output[0] not in used)]
    del g.node[:]
    g.node.extend(kept_nodes)
    onnx.checker.check_model(model)
    return folded


def export_qdq(qmodel: nn.Module, path, example: torch.Tensor, opset: int = 18) -> Path:
    """Write `qmodel` (from ptq.quantize / qat.qat) as a QDQ ONNX file for `example`'s shape
    (torch.export cannot trace fake-quant ops with a symbolic batch size)."""
    import onnx

    from netfrontier.report import write_atomic

    view = export_view(qmodel)
    buf_out = io.StringIO()
    with contextlib.redirect_stdout(buf_out), contextlib.redirect_stderr(buf_out):
        prog = torch.onnx.export(view, (example,), None, dynamo=True, opset_version=opset,
                                 input_names=["input"], output_names=["logits"],
                                 verbose=False)
    model = prog.model_proto
    _fold_weight_quantize(model)
    return write_atomic(path, model.SerializeToString())


def qdq_summary(path) -> dict:
    """Counts of QuantizeLinear / DequantizeLinear / Conv / Gemm nodes and int8 initializers."""
    import onnx

    m = onnx.load(str(path))
    ops = [n.op_type for n in m.graph.node]
    return {op: ops.count(op) for op in ("QuantizeLinear", "DequantizeLinear", "Conv", "Gemm",
                                         "MatMul")} | {
        "int8_initializers": sum(i.data_type == onnx.TensorProto.INT8 for i in m.graph.initializer)}


def onnx_parity(qmodel: nn.Module, path, x: torch.Tensor) -> dict:
    """Run the ONNX file in ONNX Runtime (CPU, no graph optimisations, which could fuse QDQ
    into integer kernels with their own rounding) and compare with the PyTorch simulation."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    b = sess.get_inputs()[0].shape[0]
    b = b if isinstance(b, int) and b > 0 else len(x)
    got = np.concatenate([sess.run(None, {name: x[i:i + b].numpy()})[0]
                          for i in range(0, len(x), b)])
    with torch.no_grad():
        ref = qmodel.eval()(x).numpy()
    diff = np.abs(got - ref)
    scale = float(np.abs(ref).max()) or 1.0
    return {"max_abs_diff": float(diff.max()), "rel_max_diff": float(diff.max()) / scale,
            "argmax_agreement": float((got.argmax(1) == ref.argmax(1)).mean()),
            "images": int(x.shape[0])}
