"""The hardware-independent operator graph every cost model reads.

An `OpGraph` is captured once (from PyTorch or ONNX) and costed many times: `layer_table()` turns
it into numpy columns so that a cost model evaluates a whole network with a few array operations.
Element counts are kept beside bytes because a cost model rescales bytes to its own bit depths.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import cached_property


# Operator kinds. A hardware preset lists the kinds it runs natively; the rest fall back to a host.
MAC_KINDS = ("conv", "depthwise_conv", "grouped_conv", "matmul", "attention")
VECTOR_KINDS = (
    "batchnorm", "layernorm", "groupnorm",
    "relu", "hardswish", "hardsigmoid", "sigmoid", "silu", "gelu", "tanh",
    "add", "mul", "elementwise", "softmax",
    "maxpool", "avgpool", "reduce", "concat", "copy", "pad", "resize",
)
FREE_KINDS = ("view",)  # metadata-only (reshape, permute of a view, slicing): no data moves
# The data-dependent tail of detection and segmentation networks, each captured as its own kind
# at a stated number of proposals and detections (graph/postprocess.py): anchor generation, box
# decoding, score thresholding and top-k selection, non-maximum suppression, RoIAlign / RoIPool,
# mask pasting into the image and keypoint decoding. They are vector work (no MACs); a
# fixed-function preset that does not list them runs them on its fallback host.
POSTPROCESS_KINDS = ("anchors", "box_decode", "select", "nms", "roi_align", "roi_pool",
                     "mask_paste", "keypoint_decode")
# An operator the importer cannot cost (control flow, a custom domain's op): its tensors are
# counted and it runs as one vector op per output element, a lower bound flagged in every output.
UNKNOWN_KIND = "unknown"
OP_KINDS = MAC_KINDS + VECTOR_KINDS + FREE_KINDS + (UNKNOWN_KIND,) + POSTPROCESS_KINDS
# Bump when captured graphs change for the same model (stored graphs are keyed on it).
CAPTURE_REVISION = 2
ACTIVATION_KINDS = ("relu", "hardswish", "hardsigmoid", "sigmoid", "silu", "gelu", "tanh")


@dataclass(frozen=True)
class OpNode:
    """One executed operator: what it computes, on which shapes, from which module.

    The loop dimensions describe how a MAC array can fold the op: `m` output pixels (batch ×
    spatial, or matmul rows), `n` output channels per group, `c` input channels per group,
    `r` kernel taps (kh × kw), `g` groups (or batch of a batched matmul). For ops without MACs
    they are zero.
    """

    name: str
    kind: str
    target: str  # the aten (or ONNX) operator that ran, e.g. "aten.convolution"
    module: str  # owning module path, "" for the top level
    input_shapes: tuple[tuple[int, ...], ...]
    output_shapes: tuple[tuple[int, ...], ...]
    dtype: str
    weight_shapes: tuple[tuple[int, ...], ...] = ()
    macs: int = 0
    vector_ops: int = 0  # element operations for a vector unit (not MACs)
    input_elems: int = 0  # activation elements read (weights excluded)
    output_elems: int = 0
    weight_elems: int = 0
    dims: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)  # m, n, c, r, g
    kernel_hw: tuple[int, int] = (0, 0)
    bytes_per_elem: int = 4

    @property
    def input_bytes(self) -> int:
        return self.input_elems * self.bytes_per_elem

    @property
    def output_bytes(self) -> int:
        return self.output_elems * self.bytes_per_elem

    @property
    def weight_bytes(self) -> int:
        return self.weight_elems * self.bytes_per_elem


@dataclass(frozen=True)
class OpGraph:
    """A captured network: nodes in execution order plus data edges (producer → consumer).

    `edges` holds index pairs into `nodes`. `input_elems` is the element count of the network
    input(s); `params` counts parameters of the model (weights shared between ops once).
    """

    nodes: tuple[OpNode, ...]
    edges: tuple[tuple[int, int], ...]
    source: str
    model: str
    resolution: int
    batch: int
    params: int
    input_elems: int
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def macs(self) -> int:
        return int(sum(n.macs for n in self.nodes))

    @cached_property
    def digest(self) -> str:
        """Content hash: identical graphs share cached cost results."""
        h = hashlib.sha256()
        for n in self.nodes:
            h.update(repr((n.kind, n.input_shapes, n.output_shapes, n.weight_shapes, n.macs,
                           n.vector_ops, n.dims)).encode())
        h.update(repr(self.edges).encode())
        return h.hexdigest()[:16]

    @property
    def table(self) -> "LayerTable":
        """Fused layer table (conv+BN+activation and chains), as most accelerators run it."""
        return self.layer_table("full")

    def layer_table(self, fusion: str = "full") -> "LayerTable":
        """Layer table for a fusion mode: 'full' (fused groups) or 'none' (one row per op)."""
        from netfrontier.graph.table import LayerTable

        cache = self.__dict__.setdefault("_tables", {})
        if fusion not in cache:
            cache[fusion] = LayerTable.from_graph(self, fusion)
        return cache[fusion]

    def to_json(self) -> str:
        d = {k: getattr(self, k) for k in ("source", "model", "resolution", "batch", "params",
                                            "input_elems", "meta")}
        d["edges"] = [list(e) for e in self.edges]
        d["nodes"] = [asdict(n) for n in self.nodes]
        return json.dumps(d)

    @classmethod
    def from_json(cls, text: str) -> "OpGraph":
        d = json.loads(text)
        nodes = tuple(
            OpNode(**{**n,
                      "input_shapes": tuple(tuple(s) for s in n["input_shapes"]),
                      "output_shapes": tuple(tuple(s) for s in n["output_shapes"]),
                      "weight_shapes": tuple(tuple(s) for s in n["weight_shapes"]),
                      "dims": tuple(n["dims"]), "kernel_hw": tuple(n["kernel_hw"])})
            for n in d.pop("nodes"))
        edges = tuple(tuple(e) for e in d.pop("edges"))
        return cls(nodes=nodes, edges=edges, **d)


def kind_counts(graph: OpGraph) -> dict[str, int]:
    """How many ops of each kind a graph holds (for summaries and tests)."""
    out: dict[str, int] = {}
    for n in graph.nodes:
        out[n.kind] = out.get(n.kind, 0) + 1
    return out

