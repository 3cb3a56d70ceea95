"""LayerTable: an OpGraph turned into fused rows and numpy columns, once per graph.

Everything here is independent of the hardware, so a cost model evaluates a network on a new
accelerator with array arithmetic only:

* views and folded constants are dropped; edges are resolved through them;
* fusion groups: a MAC op absorbs a directly following batchnorm (folded into its weights) and an
  epilogue of activations and one residual add/mul; a vector op absorbs following activations;
* every group writes one tensor; its consumers and its lifetime in execution order are known, so
  a cost model can decide per accelerator which tensors stay on chip;
* `peak_live` is the most activation elements alive at once during each tensor's lifetime;
  `stream_elems` is the band of rows a spatially local consumer needs to fuse with its producer
  through on-chip memory (depthwise → pointwise and other chains);
* `groups` says which part of the network each row belongs to (GROUPS: pre-processing,
  backbone, neck, head, post-processing), from its module path and kind (`layer_group`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from netfrontier.graph.types import (ACTIVATION_KINDS, MAC_KINDS, OP_KINDS, POSTPROCESS_KINDS,
                                     UNKNOWN_KIND, OpGraph)

EPILOGUE_KINDS = frozenset(ACTIVATION_KINDS) | {"add", "mul"}
KIND_INDEX = {k: i for i, k in enumerate(OP_KINDS)}
MAX_GROUP = 5
GROUPS = ("pre-processing", "backbone", "neck", "head", "post-processing")
# torchvision module names of the parts (detection: GeneralizedRCNN, RetinaNet, FCOS, SSD;
# segmentation: FCN, DeepLabV3, LRASPP; classification: the final classifier layers)
_HEAD_MODULES = frozenset({"head", "heads", "classifier", "aux_classifier", "fc", "box_head",
                           "box_predictor", "mask_head", "mask_predictor", "keypoint_head",
                           "keypoint_predictor"})
_NECK_MODULES = frozenset({"fpn", "extra"})


def layer_group(module: str, kind: str, task: str = "classification") -> str:
    """The part of the network an op belongs to, from its module path and kind.

    Post-processing kinds (and, in a detector, everything outside its backbone, neck and heads:
    proposal filtering, score thresholds, box clipping, the final resizing and pasting) are
    "post-processing"; `transform` (normalise, resize, pad) is "pre-processing"; `backbone.fpn`
    and SSD's `backbone.extra` layers are the "neck"; RPN, RoI, RetinaNet/FCOS/SSD and
    segmentation heads (auxiliary included) and a classifier's final layers are the "head".
    In a segmentation network the ops of the top level (upsampling the logits to the input
    size) are post-processing too.
    """
    if kind in POSTPROCESS_KINDS:
        return "post-processing"
    parts = module.split(".") if module else []
    top = parts[0] if parts else ""
    if top == "transform":
        return "pre-processing"
    if task == "classification":
        return "head" if top in _HEAD_MODULES else "backbone"
    if top == "backbone":
        return "neck" if len(parts) > 1 and parts[1] in _NECK_MODULES else "backbone"
    if top in ("rpn", "roi_heads"):
        return "head" if len(parts) > 1 and parts[1] in _HEAD_MODULES else "post-processing"
    if top in _HEAD_MODULES:
        return "head"
    return "post-processing"


def _label(node) -> str:
    """The kind, or `unknown:<operator>` for an op nobody could cost (e.g. unknown:LSTM)."""
    if node.kind != UNKNOWN_KIND:
        return node.kind
    return f"{UNKNOWN_KIND}:{node.target.split('.', 1)[-1]}"


@dataclass(frozen=True)
class LayerTable:
    """Column arrays, one entry per fused group (row), plus the tensor/consumer structure."""

    names: tuple[str, ...]
    ops: tuple[str, ...]  # "conv+batchnorm+relu"
    modules: tuple[str, ...]
    anchor_kind: np.ndarray  # int index into OP_KINDS
    kind_mask: np.ndarray  # bool [rows, len(OP_KINDS)]: kinds present in the group
    is_mac: np.ndarray
    is_depthwise: np.ndarray
    macs: np.ndarray
    vector_ops: np.ndarray
    dims: np.ndarray  # int [rows, 5] m, n, c, r, g
    weight_elems: np.ndarray
    out_elems: np.ndarray  # the group's output tensor (tensor id == row id)
    is_output: np.ndarray
    graph_input_elems: np.ndarray  # network-input elements each row reads
    in_rows: np.ndarray  # CSR of (consumer row, producer row) input pairs
    in_tensors: np.ndarray
    peak_live: np.ndarray  # per tensor
    stream_elems: np.ndarray  # per tensor: band a fused consumer needs, 0 if not fusable
    stream_weight_elems: np.ndarray  # per tensor: weights of that consumer
    batch: int
    groups: tuple[str, ...] = ()  # per row: one of GROUPS (layer_group)

    @property
    def rows(self) -> int:
        return len(self.names)

    @property
    def is_unknown(self) -> np.ndarray:
        """Rows holding an op whose compute could not be costed (their cost is a lower bound)."""
        return self.kind_mask[:, KIND_INDEX[UNKNOWN_KIND]]

    @classmethod
    def from_graph(cls, graph: OpGraph, fusion: str = "full") -> "LayerTable":
        nodes = graph.nodes
        n = len(nodes)
        preds: list[list[int]] = [[] for _ in range(n)]
        for a, b in graph.edges:
            preds[b].append(a)
        is_view = [nd.kind == "view" for nd in nodes]
        eff: list[list[int]] = [[] for _ in range(n)]  # effective non-view producers
        for i in range(n):
            out: list[int] = []
            for p in preds[i]:
                out.extend([p] if not is_view[p] else eff[p])
            eff[i] = list(dict.fromkeys(out))
        consumers: list[list[int]] = [[] for _ in range(n)]
        for i in range(n):
            if not is_view[i]:
                for p in eff[i]:
                    consumers[p].append(i)

        group_of = [-1] * n
        groups: list[list[int]] = []
        for i in range(n):
            if is_view[i]:
                continue
            k = nodes[i].kind
            absorbed = False
            for p in eff[i] if fusion == "full" else ():
                g = group_of[p]
                if g < 0 or groups[g][-1] != p or len(consumers[p]) != 1 or len(groups[g]) >= MAX_GROUP:
                    continue
                if any(group_of[q] > g for q in eff[i]):
                    continue  # another input is produced after this group starts
                anchor = nodes[groups[g][0]].kind
                members = [nodes[j].kind for j in groups[g]]
                if k == "batchnorm" and anchor in MAC_KINDS and len(members) == 1:
                    absorbed = True
                elif k in EPILOGUE_KINDS and (k in ACTIVATION_KINDS or
                                              not any(m in ("add", "mul") for m in members[1:])):
                    absorbed = anchor not in ("view", UNKNOWN_KIND) and \
                        anchor not in POSTPROCESS_KINDS
                if absorbed:
                    groups[g].append(i)
                    group_of[i] = g
                    break
            if not absorbed:
                group_of[i] = len(groups)
                groups.append([i])

        rows = len(groups)
        anchor_kind = np.zeros(rows, np.int16)
        kind_mask = np.zeros((rows, len(OP_KINDS)), bool)
        macs = np.zeros(rows, np.int64)
        vops = np.zeros(rows, np.int64)
        dims = np.zeros((rows, 5), np.int64)
        w_elems = np.zeros(rows, np.int64)
        out_elems = np.zeros(rows, np.int64)
        gin = np.zeros(rows, np.int64)
        names, ops, modules = [], [], []
        pairs: list[tuple[int, int]] = []
        for r, members in enumerate(groups):
            a = nodes[members[0]]
            anchor_kind[r] = KIND_INDEX[a.kind]
            mac_anchor = a.kind in MAC_KINDS
            for j in members:
                nd = nodes[j]
                kind_mask[r, KIND_INDEX[nd.kind]] = True
                macs[r] += nd.macs
                folded_bn = mac_anchor and nd.kind == "batchnorm"
                if not mac_anchor:
                    vops[r] += nd.vector_ops
                if not folded_bn:
                    w_elems[r] += nd.weight_elems
                if nd.input_elems and not eff[j]:
                    gin[r] += nd.input_elems  # reads the network input
                for p in eff[j]:
                    if group_of[p] != r:
                        pairs.append((r, group_of[p]))
            dims[r] = a.dims
            out_elems[r] = nodes[members[-1]].output_elems
            names.append(a.module or a.name)
            ops.append("+".join(_label(nodes[j]) for j in members))
            modules.append(a.module)
        pairs = sorted(set(pairs))
        in_rows = np.array([p[0] for p in pairs], np.int64)
        in_tensors = np.array([p[1] for p in pairs], np.int64)
        cons_count = np.bincount(in_tensors, minlength=rows)
        is_output = cons_count == 0
        last_use = np.arange(rows)
        np.maximum.at(last_use, in_tensors, in_rows)
        last_use[is_output] = rows - 1

        # activation elements alive at each step, then the peak over each tensor's lifetime
        delta = np.zeros(rows + 1, np.int64)
        np.add.at(delta, np.arange(rows), out_elems)
        np.add.at(delta, last_use + 1, -out_elems)
        live = np.cumsum(delta)[:rows] + gin.max(initial=0)
        peak_live = np.array([live[t:last_use[t] + 1].max() for t in range(rows)], np.int64)

        is_mac = np.array([nodes[g[0]].kind in MAC_KINDS for g in groups])
        is_dw = anchor_kind == KIND_INDEX["depthwise_conv"]
        stream = np.zeros(rows, np.int64)
        stream_w = np.zeros(rows, np.int64)
        for t in np.nonzero(cons_count == 1)[0]:
            q = int(in_rows[in_tensors == t][0])
            outs = nodes[groups[t][-1]].output_shapes
            shape = outs[0] if outs else ()  # an unknown op of unknown shape
            if q != t + 1 or len(shape) != 4 or shape[2] < 2:
                continue
            kh = max(nodes[groups[q][0]].kernel_hw[0], 1)
            stream[t] = out_elems[t] * min(kh + 1, shape[2]) // shape[2]
            stream_w[t] = w_elems[q]
        task = (graph.meta or {}).get("task") or "classification"
        groups_col = tuple(layer_group(nodes[g[0]].module, nodes[g[0]].kind, task) for g in groups)
        return cls(tuple(names), tuple(ops), tuple(modules), anchor_kind, kind_mask, is_mac,
                   is_dw, macs, vops, dims, w_elems, out_elems, is_output, gin, in_rows,
                   in_tensors, peak_live, stream, stream_w, graph.batch, groups_col)
