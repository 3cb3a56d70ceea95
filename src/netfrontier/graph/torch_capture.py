"""Capture a PyTorch module as an OpGraph by recording every ATen op of one forward pass.

The forward pass runs on meta tensors (shapes only, no data, no weight memory) under a
TorchDispatchMode, so vit_h_14 at 518 px captures in well under a second. MACs of matmuls,
convolutions and attention come from PyTorch's own flop formulas (`torch.utils.flop_counter`),
which is also how torchvision computed the `_ops` figure in its weight metadata.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from netfrontier.errors import CaptureError
from netfrontier.graph import postprocess as pp
from netfrontier.graph.aten_kinds import FACTORY_OPS, VECTOR_OPS_PER_ELEM, kind_of
from netfrontier.graph.types import OpGraph, OpNode


@contextlib.contextmanager
def meta_init() -> Iterator[None]:
    """Build modules with their parameters on the meta device (no weight memory, no init time).

    Like `torch.device("meta")`, but construction code that needs real values (regnet's width
    rounding calls `.tolist()`) still runs on the CPU, and buffers (batch-norm statistics,
    relative-position indices) stay real: they are small and some are computed at construction.
    """
    orig_param = torch.nn.Module.register_parameter

    def register_parameter(self, name, param):
        if param is not None and param.device.type != "meta":
            param = torch.nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)
        orig_param(self, name, param)

    torch.nn.Module.register_parameter = register_parameter
    try:
        yield
    finally:
        torch.nn.Module.register_parameter = orig_param


def _tensors(obj) -> list[torch.Tensor]:
    """The tensors in nested tuples/lists (a lighter pytree flatten for the hot path)."""
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, (tuple, list)):
        return [t for item in obj for t in _tensors(item)]
    return []


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(int(s) for s in t.shape)


def _loop_dims(kind: str, name: str, args, inputs, outputs) -> tuple[tuple, tuple]:
    """(m, n, c, r, g) and kernel (kh, kw) of a MAC op, for mapping onto a MAC array."""
    out = outputs[0]
    if kind == "conv":
        x, w = args[0], args[1]
        groups = int(args[8]) if len(args) > 8 else 1
        spatial_out = math.prod(out.shape[2:])
        m = out.shape[0] * spatial_out
        n = w.shape[0] // groups
        c = w.shape[1]
        r = math.prod(w.shape[2:])
        kh = w.shape[2] if w.dim() > 2 else 1
        kw = w.shape[3] if w.dim() > 3 else 1
        return (m, n, c, r, groups), (kh, kw)
    if kind == "matmul":
        a, b = (args[1], args[2]) if name in ("addmm", "baddbmm") else (args[0], args[1])
        if a.dim() == 3:
            return (a.shape[1], b.shape[2], a.shape[2], 1, a.shape[0]), (1, 1)
        return (a.shape[0], b.shape[1], a.shape[1], 1, 1), (1, 1)
    if kind == "attention":
        q, k, v = args[0], args[1], args[2]
        g = math.prod(q.shape[:-2])
        return (q.shape[-2], k.shape[-2], q.shape[-1] + v.shape[-1], 1, g), (1, 1)
    return (0, 0, 0, 0, 0), (0, 0)


class _Recorder(TorchDispatchMode):
    """Records each dispatched ATen op as an OpNode, with data edges and weight identity."""

    def __init__(self, weight_ids: set[int], module_stack: list[str]):
        super().__init__()
        self.weight_ids = weight_ids  # ids of tensors holding (or derived only from) weights
        self.module_stack = module_stack
        self.producer: dict[int, int] = {}  # id(tensor) -> node index
        self.keep: list[torch.Tensor] = []  # keeps ids unique while capturing
        self.nodes: list[OpNode] = []
        self.edges: set[tuple[int, int]] = set()
        self.suspended = False
        self.in_region = False
        self.nms_out: dict[int, int] = {}  # id(NMS output) -> its node: a slice sets what it keeps
        self.view_base: dict[int, int] = {}  # id(view of a constant) -> id(its base tensor)
        self.fold_literals = False  # set for detection captures (graph/postprocess.py)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.suspended:
            return func(*args, **kwargs)
        name = func.overloadpacket.__name__
        if name in ("_native_batch_norm_legit_no_training", "native_batch_norm"):
            # PyTorch's meta kernel for this op is a slow Python decomposition; the shapes are known
            x = args[0]
            out = (torch.empty_like(x), x.new_empty((0,)), x.new_empty((0,)))
        elif name in _DATA_DEPENDENT and _on_meta(args, kwargs):
            out = _DATA_DEPENDENT[name](self, func, args, kwargs)
        else:
            out = func(*args, **kwargs)
        flat_in = _tensors((args, tuple(kwargs.values())))
        flat_out = _tensors(out)
        if not flat_out:
            return out
        if self.fold_literals:
            # a real (non-meta) tensor no op produced is a literal (torch.tensor(800) in box
            # rescaling): a constant, like a weight
            self.weight_ids.update(id(t) for t in flat_in if t.device.type != "meta"
                                   and id(t) not in self.producer)
        acts = [t for t in flat_in if id(t) not in self.weight_ids]
        weights = [t for t in flat_in if id(t) in self.weight_ids]
        kind = kind_of(name)
        folded = name in FACTORY_OPS or (flat_in and not acts)
        if folded:
            # constant-foldable (every input is a weight or a constant): its outputs count as
            # weights of their consumers, and it costs nothing at inference time
            kind = "view"
            self.weight_ids.update(id(o) for o in flat_out)
            acts, weights = [], []
        else:
            # an in-place op (add_) on a constant-derived tensor with a real input makes it
            # data: without this, every later step of an LSTM (h0 = zeros) would fold away
            self.weight_ids.difference_update(id(o) for o in flat_out)
        idx = len(self.nodes)
        if folded and kind_of(name) == "view" and name not in FACTORY_OPS and flat_in:
            # a view of a constant (a slice of a zero-filled batch): remember its base, so that
            # writing data into the view (copy_) makes the base data as well
            base = id(flat_in[0])
            for o in flat_out:
                self.view_base[id(o)] = self.view_base.get(base, base)
        elif not folded and name.endswith("_"):
            for o in flat_out:
                base = self.view_base.get(id(o))
                if base is not None:
                    self.weight_ids.discard(base)
                    self.producer[base] = idx
        for t in acts:
            src = self.producer.get(id(t))
            if src is not None:
                self.edges.add((src, idx))
        for o in flat_out:
            self.producer[id(o)] = idx
            self.keep.append(o)
        out_elems = sum(o.numel() for o in flat_out)
        in_elems = sum(t.numel() for t in acts)
        macs, dims, khw = 0, (0, 0, 0, 0, 0), (0, 0)
        if kind in ("conv", "matmul", "attention"):
            formula = flop_registry.get(func.overloadpacket)
            if formula is not None:
                macs = int(formula(*args, **kwargs, out_val=out)) // 2
            dims, khw = _loop_dims(kind, name, args, flat_in, flat_out)
            if kind == "conv" and dims[4] > 1:
                kind = "depthwise_conv" if dims[2] == 1 else "grouped_conv"
        if kind in ("maxpool", "avgpool", "reduce", "select"):
            vector_ops = max(in_elems, out_elems)
            if name in ("sort", "argsort"):
                vector_ops = pp.sort_ops(in_elems)
        elif kind == "roi_align":
            vector_ops = pp.roi_align_ops(flat_out[0].numel(), int(args[5]) if len(args) > 5 else 0)
        elif kind == "roi_pool":
            vector_ops = pp.roi_pool_ops(flat_out[0].numel())
        elif kind == "nms":
            vector_ops = pp.nms_ops(flat_in[0].shape[0], flat_in[0].shape[0])
            self.nms_out[id(flat_out[0])] = idx
        else:
            vector_ops = out_elems * VECTOR_OPS_PER_ELEM.get(kind, 0)
        if name == "slice" and acts and id(acts[0]) in self.nms_out and flat_out[0].dim() == 1:
            self._nms_keeps(self.nms_out[id(acts[0])], flat_out[0].shape[0])
        self.nodes.append(OpNode(
            name=f"{idx}:{name}",
            kind=kind,
            target=f"aten.{name}",
            module=self.module_stack[-1] if self.module_stack else "",
            input_shapes=tuple(_shape(t) for t in acts),
            output_shapes=tuple(_shape(o) for o in flat_out),
            dtype=str(flat_out[0].dtype).replace("torch.", ""),
            weight_shapes=tuple(_shape(t) for t in weights),
            macs=macs,
            vector_ops=int(vector_ops),
            input_elems=int(in_elems),
            output_elems=int(out_elems),
            weight_elems=int(sum(t.numel() for t in weights)),
            dims=tuple(int(d) for d in dims),
            kernel_hw=tuple(int(k) for k in khw),
            bytes_per_elem=flat_out[0].element_size(),
        ))
        return out

    def _nms_keeps(self, idx: int, k: int) -> None:
        """The model keeps the first k boxes of an NMS output: charge NMS for keeping k."""
        nd = self.nodes[idx]
        n = nd.input_shapes[0][0] if nd.input_shapes else 0
        self.nodes[idx] = dataclasses.replace(nd, vector_ops=pp.nms_ops(n, k))

    @contextlib.contextmanager
    def quiet(self) -> Iterator[None]:
        """Run ops without recording them (a node for their result is recorded by hand)."""
        was = self.suspended
        self.suspended = True
        try:
            yield
        finally:
            self.suspended = was

    def _module(self) -> str:
        return self.module_stack[-1] if self.module_stack else ""

    def record(self, kind: str, target: str, inputs: list, outputs: list,
               vector_ops: int) -> int:
        """One node of `kind` reading `inputs` (weights among them are left out) and writing
        `outputs`: for post-processing steps recorded whole (graph/postprocess.py)."""
        idx = len(self.nodes)
        acts = [t for t in inputs if id(t) not in self.weight_ids]
        for t in acts:
            src = self.producer.get(id(t))
            if src is not None:
                self.edges.add((src, idx))
        for o in outputs:
            self.producer[id(o)] = idx
            self.keep.append(o)
            self.weight_ids.discard(id(o))
        self.nodes.append(OpNode(
            name=f"{idx}:{target.rsplit('.', 1)[-1]}", kind=kind, target=target,
            module=self._module(), input_shapes=tuple(_shape(t) for t in acts),
            output_shapes=tuple(_shape(o) for o in outputs),
            dtype=str(outputs[0].dtype).replace("torch.", "") if outputs else "float32",
            vector_ops=int(vector_ops), input_elems=int(sum(t.numel() for t in acts)),
            output_elems=int(sum(o.numel() for o in outputs)),
            bytes_per_elem=outputs[0].element_size() if outputs else 4))
        return idx

    def begin_region(self) -> int:
        self.in_region = True
        return len(self.nodes)

    def collapse(self, start: int, kind: str, target: str, inputs: list, outputs: list) -> int:
        """Fold the nodes recorded since `start` into one node of `kind` that did their work."""
        inner = self.nodes[start:]
        del self.nodes[start:]
        inbound = {a for a, b in self.edges if b >= start and a < start}
        self.edges = {(a, b) for a, b in self.edges if b < start}
        for key, v in self.producer.items():
            if v >= start:
                self.producer[key] = start
        for key, v in list(self.nms_out.items()):
            if v >= start:
                del self.nms_out[key]
        idx = self.record(kind, target, inputs, outputs,
                          vector_ops=sum(n.vector_ops for n in inner))
        self.edges |= {(a, idx) for a in inbound}
        return idx


    def record_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """One fused attention node for F.scaled_dot_product_attention (as runtimes run it)."""
        self.suspended = True
        try:
            out = torch.empty(q.shape[:-1] + (v.shape[-1],), device="meta", dtype=q.dtype)
        finally:
            self.suspended = False
        idx = len(self.nodes)
        acts = [t for t in (q, k, v) if id(t) not in self.weight_ids]
        for t in acts:
            if id(t) in self.producer:
                self.edges.add((self.producer[id(t)], idx))
        self.producer[id(out)] = idx
        self.keep.append(out)
        g = math.prod(q.shape[:-2])
        macs = g * q.shape[-2] * k.shape[-2] * (q.shape[-1] + v.shape[-1])
        self.nodes.append(OpNode(
            name=f"{idx}:scaled_dot_product_attention", kind="attention",
            target="aten.scaled_dot_product_attention",
            module=self.module_stack[-1] if self.module_stack else "",
            input_shapes=tuple(_shape(t) for t in acts), output_shapes=(_shape(out),),
            dtype=str(q.dtype).replace("torch.", ""), macs=int(macs),
            vector_ops=int(5 * g * q.shape[-2] * k.shape[-2]),
            input_elems=int(sum(t.numel() for t in acts)), output_elems=int(out.numel()),
            dims=(int(q.shape[-2]), int(k.shape[-2]), int(q.shape[-1] + v.shape[-1]), 1, int(g)),
            kernel_hw=(1, 1), bytes_per_elem=q.element_size()))
        return out


def _on_meta(args, kwargs) -> bool:
    return any(t.device.type == "meta" for t in _tensors((args, tuple(kwargs.values()))))


def _all_selected(rec: _Recorder, func, args, kwargs):
    """nonzero on meta: every element is selected (the stated worst case, graph/postprocess)."""
    x = args[0]
    with rec.quiet():
        return torch.empty((x.numel(), x.dim()), dtype=torch.long, device="meta")


def _bool_index(rec: _Recorder, func, args, kwargs):
    """x[mask] on meta: every element of the mask selected (long indices in its place)."""
    x, indices = args[0], list(args[1])
    if not any(i is not None and i.dtype == torch.bool for i in indices):
        return func(*args, **kwargs)
    new = []
    for i in indices:
        if i is not None and i.dtype == torch.bool:
            with rec.quiet():
                every = torch.empty((i.numel(),), dtype=torch.long, device="meta")
            new.extend([every] * i.dim())
        else:
            new.append(i)
    return func(x, new, *args[2:], **kwargs)


def _nothing_suppressed(rec: _Recorder, func, args, kwargs):
    """torchvision::nms on meta keeps every box; the slice after it sets how many count."""
    with rec.quiet():
        return torch.empty((args[0].shape[0],), dtype=torch.long, device="meta")


def _no_value(rec: _Recorder, func, args, kwargs):
    raise CaptureError("the model reads a tensor's value (.item() or int()), which meta tensors "
                       "do not have")


# data-dependent ops and what a meta capture makes of them (see graph/postprocess.py)
_DATA_DEPENDENT = {"nonzero": _all_selected, "index": _bool_index, "nms": _nothing_suppressed,
                   "_local_scalar_dense": _no_value}


@contextlib.contextmanager
def _attention_as_one_op(rec: _Recorder) -> Iterator[None]:
    """Keep F.scaled_dot_product_attention whole (as runtimes run it), not its decomposition."""
    import torch.nn.functional as F

    orig = F.scaled_dot_product_attention

    def sdpa(q, k, v, attn_mask=None, *args, **kwargs):
        if attn_mask is None and kwargs.get("attn_mask") is None:
            return rec.record_attention(q, k, v)
        return orig(q, k, v, attn_mask, *args, **kwargs)

    F.scaled_dot_product_attention = sdpa
    try:
        yield
    finally:
        F.scaled_dot_product_attention = orig


@contextlib.contextmanager
def _module_paths(model: torch.nn.Module, stack: list[str]) -> Iterator[None]:
    names = {id(m): n for n, m in model.named_modules()}
    handles = []

    def pre(mod, _inputs):
        stack.append(names.get(id(mod), stack[-1] if stack else ""))

    def post(mod, _inputs, _output):
        if stack:
            stack.pop()

    for mod in model.modules():
        handles.append(mod.register_forward_pre_hook(pre))
        handles.append(mod.register_forward_hook(post))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def capture_module(model: torch.nn.Module, input_shape: tuple[int, ...], *, model_name: str,
                   source: str = "torch", meta: dict | None = None,
                   postprocess: bool = False) -> OpGraph:
    """Trace one forward pass of `model` on a meta input of `input_shape` (N, C, H, W).

    The caller's module is not modified: parameters are swapped for meta tensors with
    `torch.func.functional_call`, and the temporary hooks are removed afterwards.
    `postprocess`: run torchvision's detection post-processing at its stated counts
    (graph/postprocess.py), each data-dependent step one node of its own kind.
    """
    state = {k: (v if v.device.type == "meta" else torch.empty_like(v, device="meta"))
             for k, v in list(model.named_parameters()) + list(model.named_buffers())}
    params = sum(p.numel() for _, p in model.named_parameters())
    weight_ids = {id(t) for t in state.values()}
    stack: list[str] = []
    rec = _Recorder(weight_ids, stack)
    rec.fold_literals = postprocess
    x = torch.empty(input_shape, device="meta")
    was_training = model.training
    model.eval()
    try:
        tail = pp.stated_postprocessing(rec, tuple(input_shape[-2:])) if postprocess \
            else contextlib.nullcontext()
        with torch.no_grad(), _module_paths(model, stack), rec, _attention_as_one_op(rec), tail:
            torch.func.functional_call(model, state, (x,), strict=False)
    except CaptureError as exc:
        raise CaptureError(f"cannot capture {model_name}: {exc}") from exc
    except Exception as exc:  # a model that cannot run on meta tensors
        raise CaptureError(f"cannot capture {model_name}: {type(exc).__name__}: {exc}") from exc
    finally:
        model.train(was_training)
    batch, res = input_shape[0], input_shape[-1]
    return OpGraph(nodes=tuple(rec.nodes), edges=tuple(sorted(rec.edges)), source=source,
                   model=model_name, resolution=int(res), batch=int(batch), params=int(params),
                   input_elems=int(math.prod(input_shape)), meta=dict(meta or {}))
