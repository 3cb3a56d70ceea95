"""What each ONNX operator costs: its netfrontier kind, MACs and loop dimensions.

MACs follow the PyTorch capture's convention (one per multiply-add): Conv, ConvTranspose (each
input pixel scattered through the kernel), Gemm and the MatMul family, Einsum (the product of
every index range, per pair of operands), LSTM / GRU / RNN (gates × hidden × (input + hidden)
per step and direction) and attention (QKᵀ and the weighted sum of V). Standard element-wise,
normalisation, pooling and data-movement ops map to the vector kinds.

Anything else — control flow, data-dependent ops such as NonMaxSuppression, a custom domain's
op without a known meaning — is kind `unknown`: its tensors are counted, its compute is not,
and every output says so (its cost is a lower bound), never a silent zero.
Malformed attributes (a Conv group of 0, a reduction axis out of range) raise BadNode, which
the importer turns into one error naming the node.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Shape = tuple[int, ...]
CONTRIB = ("com.microsoft",)  # onnxruntime's contrib domain: shapes from its own inference


class BadNode(ValueError):
    """A node whose attributes or shapes contradict its operator's definition."""


@dataclass(frozen=True)
class OpCost:
    kind: str
    macs: int = 0
    loop: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)
    khw: tuple[int, int] = (0, 0)
    vector_ops: int | None = None  # None: the kind's default per output element


def _kinds(kind: str, ops: str) -> dict[str, str]:
    return {op: kind for op in ops.split()}


SIMPLE = {
    **_kinds("batchnorm", "BatchNormalization"),
    **_kinds("layernorm", "LayerNormalization RMSNormalization LpNormalization "
                          "MeanVarianceNormalization SkipLayerNormalization"),
    **_kinds("groupnorm", "GroupNormalization InstanceNormalization"),
    **_kinds("relu", "Relu Clip LeakyRelu PRelu ThresholdedRelu Elu Selu Celu Shrink"),
    **_kinds("hardswish", "HardSwish"), **_kinds("hardsigmoid", "HardSigmoid"),
    **_kinds("sigmoid", "Sigmoid"), **_kinds("tanh", "Tanh"),
    **_kinds("silu", "Swish Mish"), **_kinds("gelu", "Gelu FastGelu BiasGelu QuickGelu"),
    **_kinds("add", "Add Sub Sum Mean Max Min BiasAdd"), **_kinds("mul", "Mul Div"),
    **_kinds("softmax", "Softmax LogSoftmax Hardmax"),
    **_kinds("maxpool", "MaxPool GlobalMaxPool"),
    **_kinds("avgpool", "AveragePool GlobalAveragePool LpPool GlobalLpPool"),
    **_kinds("reduce", "ReduceMean ReduceSum ReduceMax ReduceMin ReduceProd ReduceL1 ReduceL2 "
                       "ReduceLogSum ReduceLogSumExp ReduceSumSquare ArgMax ArgMin TopK"),
    **_kinds("concat", "Concat"), **_kinds("pad", "Pad CenterCropPad"),
    **_kinds("resize", "Resize Upsample GridSample"),
    **_kinds("copy", "Transpose Gather GatherElements GatherND Tile DepthToSpace SpaceToDepth "
                     "ScatterND ScatterElements Scatter ReverseSequence MaxUnpool Col2Im "
                     "Compress"),
    **_kinds("view", "Reshape Flatten Squeeze Unsqueeze Identity Shape Size Slice Split "
                     "Constant ConstantOfShape Cast CastLike Expand Dropout Range EyeLike "
                     "BitCast"),
    **_kinds("elementwise", "Exp Log Sqrt Pow Abs Neg Reciprocal Erf Floor Ceil Round Sign "
                            "Sin Cos Tan Asin Acos Atan Sinh Cosh Asinh Acosh Atanh Softplus "
                            "Softsign Mod BitShift BitwiseAnd BitwiseOr BitwiseXor BitwiseNot "
                            "And Or Xor Not Equal Less Greater LessOrEqual GreaterOrEqual Where "
                            "IsNaN IsInf CumSum CumProd Trilu OneHot LRN AffineGrid "
                            "QuantizeLinear DequantizeLinear DynamicQuantizeLinear "
                            "RotaryEmbedding SwiGLU RandomNormal RandomUniform "
                            "RandomNormalLike RandomUniformLike"),
}
# Operands that are shapes, indices or scalars (not weights), by input position.
SHAPE_OPERANDS = {op: 1 for op in ("Reshape", "Expand", "Slice", "Pad", "Resize", "Upsample",
                                   "Split", "Tile", "Squeeze", "Unsqueeze", "TopK", "OneHot",
                                   "CenterCropPad", "ConstantOfShape", "Range")}
REDUCE_AXES = {op for op, k in SIMPLE.items() if k == "reduce" and op.startswith("Reduce")}


def _prod(xs) -> int:
    return int(math.prod(xs))


def _group(attrs: dict) -> int:
    g = attrs.get("group", 1)
    if not isinstance(g, int) or g < 1:
        raise BadNode(f"group must be a whole number of at least 1, got {g!r}")
    return g


def _conv(x: Shape | None, w: Shape, out: Shape, attrs: dict, transpose: bool) -> OpCost:
    g = _group(attrs)
    if len(w) < 3 or len(out) != len(w):
        raise BadNode(f"weight {w} and output {out} do not make a convolution")
    k = _prod(w[2:])
    khw = (w[2], w[3] if len(w) > 3 else 1)
    if transpose:  # weight (C_in, C_out / g, k...): every input pixel scattered through it
        if x is None or w[0] % g or (x[1] != w[0]):
            raise BadNode(f"input {x} and weight {w} do not match with group {g}")
        m, n, c = x[0] * _prod(x[2:]), w[1], w[0] // g
    else:  # weight (C_out, C_in / g, k...)
        if w[0] % g or (x is not None and len(x) > 1 and x[1] != w[1] * g):
            raise BadNode(f"input {x} and weight {w} do not match with group {g}")
        m, n, c = out[0] * _prod(out[2:]), w[0] // g, w[1]
    kind = "conv" if g == 1 else ("depthwise_conv" if c == 1 else "grouped_conv")
    return OpCost(kind, m * n * c * k * g, (m, n, c, k, g), khw)


def _matmul(a: Shape, b: Shape, out: Shape, trans_a: bool, trans_b: bool) -> OpCost:
    if not a or not b:
        raise BadNode(f"operands {a} and {b} cannot be multiplied")
    k = a[-2] if trans_a and len(a) >= 2 else a[-1]
    kb = (b[-1] if trans_b else b[-2]) if len(b) >= 2 else b[0]
    if k != kb:
        raise BadNode(f"inner dimensions of {a} and {b} differ ({k} vs {kb})")
    rows = out[-2] if len(out) >= 2 and len(a) >= 2 else 1
    cols = out[-1] if len(b) >= 2 and out else 1
    batch = _prod(out[:-2]) if len(out) > 2 else 1
    return OpCost("matmul", batch * rows * cols * k, (rows, cols, k, 1, batch), (1, 1))


def _einsum(eq: str, shapes: Sequence[Shape]) -> OpCost:
    """Sizes of every index (an ellipsis becomes placeholder indices, broadcast from the right);
    MACs = (operands - 1) × the product of all index ranges."""
    lhs, arrow, rhs = eq.replace(" ", "").partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise BadNode(f"equation '{eq}' names {len(terms)} operands, the node has {len(shapes)}")
    n_ell = max(len(s) - len(t.replace("...", "")) for t, s in zip(terms, shapes))
    ell = "".join(chr(0x2460 + i) for i in range(max(n_ell, 0)))
    size: dict[str, int] = {}
    letters_of = []
    for term, shape in zip(terms, shapes):
        n = len(shape) - len(term.replace("...", ""))
        letters = term.replace("...", ell[len(ell) - n:] if n > 0 else "")
        if n < 0 or (n > 0 and "..." not in term) or len(letters) != len(shape):
            raise BadNode(f"operand {shape} does not fit '{term}' in '{eq}'")
        for c, d in zip(letters, shape):
            prev = size.setdefault(c, d)
            if prev != d and 1 not in (prev, d):
                raise BadNode(f"index '{c}' has sizes {prev} and {d} in '{eq}'")
            size[c] = max(prev, d)
        letters_of.append(letters)
    if len(shapes) < 2:  # a transpose, trace or sum of one operand: data movement
        return OpCost("reduce", vector_ops=_prod(shapes[0]) if shapes else 0)
    out = set(rhs.replace("...", ell)) if arrow else \
        {c for c in size if lhs.count(c) == 1} | set(ell)

    def prod_of(pred) -> int:
        return _prod(d for c, d in size.items() if pred(c))

    batch = prod_of(lambda c: c in out and all(c in t for t in letters_of))
    rows = prod_of(lambda c: c in out and c in letters_of[0] and c not in letters_of[1])
    cols = prod_of(lambda c: c in out and c not in letters_of[0])
    inner = prod_of(lambda c: c not in out)
    return OpCost("matmul", (len(shapes) - 1) * _prod(size.values()),
                  (rows, cols, inner, 1, batch), (1, 1))


_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def _recurrent(op: str, x: Shape, w: Shape, r: Shape, attrs: dict) -> OpCost:
    if len(x) != 3 or len(w) != 3 or len(r) != 3:
        raise BadNode(f"input {x}, W {w} and R {r} must be 3-D")
    seq, batch = (x[1], x[0]) if attrs.get("layout", 0) == 1 else (x[0], x[1])
    dirs, gh, hidden = r
    gates = _GATES[op]
    if gh != gates * hidden or w[0] != dirs or w[1] != gh or w[2] != x[2]:
        raise BadNode(f"W {w} and R {r} do not fit {gates} gates over input {x}")
    steps = seq * batch * dirs
    return OpCost("matmul", steps * gh * (x[2] + hidden), (seq * batch, gh, x[2] + hidden, 1, dirs),
                  (1, 1), vector_ops=steps * hidden * (4 * gates + 4))


def _attention(q: Shape, k: Shape, v: Shape, heads: int | None) -> OpCost:
    if len(q) == 4 and len(k) == 4 and len(v) == 4:  # (B, H, S, D)
        b, h, sq, d = q
        skv, dv = k[2], v[3]
        if k[3] != d or v[2] != skv:
            raise BadNode(f"Q {q}, K {k} and V {v} do not make an attention")
    elif len(q) == 3 and len(k) == 3 and len(v) == 3 and heads:  # (B, S, H·D)
        if q[2] % heads or v[2] % heads:
            raise BadNode(f"hidden sizes {q[2]}, {v[2]} do not split into {heads} heads")
        b, sq, h, d, skv, dv = q[0], q[1], heads, q[2] // heads, k[1], v[2] // heads
    else:
        raise BadNode(f"Q {q}, K {k}, V {v} (heads {heads}) are not an attention's shapes")
    g = b * h
    return OpCost("attention", g * sq * skv * (d + dv), (sq, skv, d + dv, 1, g), (1, 1),
                  vector_ops=5 * g * sq * skv)


def check_reduce_axes(op: str, attrs: dict, axes_input: Sequence[int] | None,
                      x: Shape | None) -> None:
    """A reduction's axes (attribute, or the second input from opset 18) lie within its input."""
    axes = attrs.get("axes", axes_input)
    if op not in REDUCE_AXES and op not in ("ArgMax", "ArgMin"):
        return
    if op in ("ArgMax", "ArgMin"):
        axes = [attrs.get("axis", 0)]
    if axes is None or x is None:
        return
    rank = len(x)
    bad = [a for a in axes if not isinstance(a, int) or not -rank <= a < rank]
    if bad or len({a % rank for a in axes}) != len(axes):
        raise BadNode(f"axes {list(axes)} do not fit a {rank}-D input")


MAC_OPS = frozenset({"Conv", "ConvInteger", "QLinearConv", "DeformConv", "FusedConv",
                     "ConvTranspose", "MatMul", "MatMulInteger", "Gemm", "FusedMatMul",
                     "QLinearMatMul", "Einsum", "LSTM", "GRU", "RNN", "Attention",
                     "MultiHeadAttention"})


def kind_hint(op: str, domain: str) -> str:
    """'mac' for an operator with MACs, else its vector kind, or 'unknown'."""
    if domain not in ("", "ai.onnx") + CONTRIB:
        return "unknown"
    if op in MAC_OPS and not (domain in CONTRIB and op == "Attention"):
        return "mac"
    return SIMPLE.get(op, "unknown")


def op_cost(node, attrs: dict, shape: Callable[[str], Shape | None],
            outs: list[Shape]) -> OpCost:
    """The cost of one node whose output shapes are known; `shape(name)` of any input."""
    op, domain = node.op_type, node.domain
    inp = list(node.input) + [""] * 6
    hint = kind_hint(op, domain)
    if hint != "mac":
        return OpCost(hint)
    if op in ("Conv", "ConvInteger", "DeformConv", "FusedConv") or (op == "QLinearConv"):
        w = shape(inp[3] if op == "QLinearConv" else inp[1])
        x = shape(inp[0])
        if not w:
            raise BadNode("its weight shape is unknown")
        return _conv(x, w, outs[0], attrs, transpose=False)
    if op == "ConvTranspose":
        w = shape(inp[1])
        if not w:
            raise BadNode("its weight shape is unknown")
        return _conv(shape(inp[0]), w, outs[0], attrs, transpose=True)
    if op in ("MatMul", "MatMulInteger", "Gemm", "FusedMatMul", "QLinearMatMul"):
        a, b = (shape(inp[0]), shape(inp[3])) if op == "QLinearMatMul" else \
            (shape(inp[0]), shape(inp[1]))
        if a is None or b is None:
            raise BadNode("an operand's shape is unknown")
        return _matmul(a, b, outs[0], bool(attrs.get("transA", 0)),
                       bool(attrs.get("transB", 0)))
    if op == "Einsum":
        shapes = [shape(t) for t in node.input if t]
        if any(s is None for s in shapes) or not isinstance(attrs.get("equation"), bytes):
            raise BadNode("an operand's shape or the equation is missing")
        return _einsum(attrs["equation"].decode(), shapes)
    if op in _GATES:
        x, w, r = shape(inp[0]), shape(inp[1]), shape(inp[2])
        if x is None or w is None or r is None:
            raise BadNode("the shape of X, W or R is unknown")
        return _recurrent(op, x, w, r, attrs)
    q, k, v = shape(inp[0]), shape(inp[1]), shape(inp[2])  # Attention, MultiHeadAttention
    if q is None or k is None or v is None:
        raise BadNode("the shape of Q, K or V is unknown")
    return _attention(q, k, v, attrs.get("num_heads", attrs.get("q_num_heads")))
