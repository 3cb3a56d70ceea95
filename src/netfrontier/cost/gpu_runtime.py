"""Latency of a network under a measured GPU runtime (PyTorch eager, or CUDA-graph replay).

A calibrated GPU profile does not model the chip; it models what the runtime does, op by op,
with figures fitted from micro-benchmarks (measure/calibrate.py):

kernels  every executed ATen op launches its kernel(s); a convolution with a bias adds one
         element-wise kernel (PyTorch adds the bias after cuDNN), and ops whose inputs are all
         weights or constants (folded to `view` by the capture, e.g. Swin's attention masks and
         relative-position tables) still run, as small element-wise kernels. Metadata-only
         ops (view, permute, slicing) launch nothing.
device   a kernel's time is a per-class curve of its roofline time,
         t_ideal = max(MACs / peak, bytes / bandwidth): knots (log10 t_ideal, log10 seconds),
         interpolated linearly in log-log, proportional (slope 1) beyond the last knot and
         `below` the first. The curve carries launch floors, tile waves and cache effects.
host     eager mode spends host time on every op (`host_s` per class, `host_view_s` per
         metadata-only op) and issues kernels asynchronously, so the device starts op i once
         it is issued and the previous kernel is done: finish_i = max(finish_(i-1), issue_i)
         + device_i. The call costs `fixed_s` more (Python entry, first launch latency).
graph    a CUDA graph launches every kernel at once: latency = fixed_s + sum of kernel times,
         and never less than `floor_s` (the host time of the launch itself).
sync     a CPU runs each op to completion before dispatching the next: latency = fixed_s +
         sum over ops of (host + device), where `device_s` curves hold each op's whole time
         (dispatch included, from repeated-op cases) and the host side is the metadata-only
         ops (`host_view_s`).
switch   a kernel that follows a kernel of another class costs `switch_s` more (new code,
         shared-memory split, launch shape): repeated-op micro-benchmarks never pay it, mixed
         sequences do.
"""
from __future__ import annotations

import numpy as np

from netfrontier.graph.aten_kinds import VIEW_OPS, kind_of
from netfrontier.graph.types import MAC_KINDS, OpGraph
from netfrontier.hardware.spec import HardwareSpec

# ATen ops that allocate or alias but launch no kernel (everything else on the GPU does).
NO_KERNEL_OPS = VIEW_OPS | {"empty", "empty_like", "empty_strided", "new_empty", "lift_fresh"}
CONV_KINDS = ("conv", "depthwise_conv", "grouped_conv")


def op_class(kind: str, op: str, channels_per_group: int = 0, batch: int = 0,
             kernel: int = 0) -> str:
    """The calibration class of an executed op: its kind, with batched matmuls and rolls apart,
    depthwise convolutions by kernel size ("depthwise_conv7": a 7×7 one has a ~4× longer
    floor than a 3×3) and grouped convolutions by group width ("grouped_conv24"): cuDNN picks
    different kernels by width. In eager mode (`batch` given) grouped ones also by batch
    ("grouped_conv24@b8"): there cuDNN loops over the groups on the host at some widths and
    small batches, which the roofline time of the op does not tell."""
    if kind == "matmul" and op in ("bmm", "baddbmm"):
        return "bmm"
    if kind == "copy" and op == "roll":
        return "roll"
    if kind == "depthwise_conv" and kernel:
        return f"depthwise_conv{kernel}"
    if kind == "grouped_conv" and channels_per_group:
        return f"grouped_conv{channels_per_group}" + (f"@b{batch}" if batch else "")
    return kind


def _split_class(key: str) -> tuple[str, int, int] | None:
    """(kind, size, batch or 0) of a sized class name such as "grouped_conv24@b8"."""
    head, _, b = key.partition("@b")
    kind = head.rstrip("0123456789")
    size = head[len(kind):]
    if not size or (b and not b.isdigit()):
        return None
    return kind, int(size), int(b or 0)


def _nearest_sized(table: dict, cls: str) -> str | None:
    """The fitted class of the same kind nearest in (log2 size, log2 batch), size first."""
    want = _split_class(cls)
    if not want:
        return None
    fitted = [k for k in map(_split_class, table)
              if k and k[0] == want[0] and (k[2] > 0) == (want[2] > 0)]
    if not fitted:
        return None
    kind, size, b = min(fitted, key=lambda k: (abs(np.log2(k[1] / want[1])),
                                               abs(np.log2(max(k[2], 1) / max(want[2], 1))), k))
    return f"{kind}{size}" + (f"@b{b}" if b else "")


def lookup(table: dict, cls: str):
    """The entry for a class, else the nearest size's (depthwise kernel, grouped width and
    batch; then without the batch), else its kind's, else the pooled element-wise (or the
    convolution) one; host times fall back to `add`'s."""
    base = cls.partition("@")[0]
    kind = base.rstrip("0123456789")
    keys = [cls, _nearest_sized(table, cls), base, _nearest_sized(table, base),
            {"bmm": "matmul", "roll": "copy"}.get(cls, kind),
            "conv" if kind in MAC_KINDS or cls == "bmm" else "elementwise", "add"]
    for key in keys:
        if key in table:
            return table[key]
    return None


def op_features(graph: OpGraph, elem_bytes: float, by_batch: bool = False,
                bias_kernel: bool = True) -> dict:
    """Per LayerTable('none') row: class, MACs, bytes, and the extra work PyTorch does with it.

    Views and folded ops before a row (in execution order) are charged to that row:
    `views` counts metadata-only dispatches, `extra` lists (class, bytes) of extra kernels (a
    conv's bias add when `bias_kernel`, as on CUDA; folded constant computations). Rows the
    runtime does not run (see `_native_mha_skips`) get class "skip": one dispatch, no kernel.
    `by_batch`: grouped-conv classes carry the batch (eager profiles).
    """
    cls, macs, nbytes, views, extra = [], [], [], [], []
    pending = {"views": 0, "extra": []}

    def close_row(c: str, m: float, b: float) -> None:
        cls.append(c)
        macs.append(m)
        nbytes.append(b)
        views.append(pending["views"])
        extra.append(pending["extra"])
        pending.update(views=0, extra=[])

    skipped = _native_mha_skips(graph)
    for i, n in enumerate(graph.nodes):
        op = n.target.rsplit(".", 1)[-1]
        if i in skipped:
            pending["views"] += 1
            close_row("skip", 0, 0.0)
        elif n.kind != "view":
            if bias_kernel and n.kind in CONV_KINDS and len(n.weight_shapes) >= 2:
                pending["extra"].append(("add", 2 * n.output_elems * elem_bytes))
            close_row(op_class(n.kind, op, n.dims[2], graph.batch if by_batch else 0,
                               n.kernel_hw[0]), n.macs,
                      (n.input_elems + n.output_elems + n.weight_elems) * elem_bytes)
        elif op in NO_KERNEL_OPS:
            pending["views"] += 1
        else:  # folded (all inputs constant) but still computed at every call
            k = kind_of(op)
            pending["extra"].append(("add" if k in MAC_KINDS or k == "view" else k,
                                     2 * n.output_elems * elem_bytes))
    if cls:
        views[-1] += pending["views"]
        extra[-1] = extra[-1] + pending["extra"]
    return {"cls": cls, "macs": np.array(macs, float), "bytes": np.array(nbytes, float),
            "views": np.array(views, float), "extra": extra}


def _native_mha_skips(graph: OpGraph) -> set[int]:
    """Nodes nn.MultiheadAttention's inference fast path does not run.

    The capture runs on meta tensors, where nn.MultiheadAttention takes its slow path
    (F.multi_head_attention_forward: copies of the transposed input and of the split q/k/v, and
    the qkv bias as a separate add). Under inference, PyTorch runs its native MHA instead: one
    linear with the bias fused, strided q/k/v views straight into scaled-dot-product attention,
    one copy back and the output linear. So, in a module whose ops include an attention node,
    the copies before that node and an add right after the first matmul are not run.
    """
    nodes = graph.nodes
    skip: set[int] = set()
    for j, n in enumerate(nodes):
        if n.kind != "attention" or not n.module:
            continue
        first_mm = None
        for i in range(j - 1, -1, -1):
            m = nodes[i]
            if m.module != n.module:
                break
            if m.kind == "copy":
                skip.add(i)
            elif m.kind == "matmul":
                first_mm = i
        if first_mm is not None:
            nxt = [i for i in range(first_mm + 1, j) if nodes[i].kind != "view"]
            if nxt and nodes[nxt[0]].kind == "add":
                skip.add(nxt[0])
    return skip


def class_switches(f: dict) -> np.ndarray:
    """Per row: how many of its kernels follow a kernel of another class (extras included)."""
    out = np.zeros(len(f["cls"]))
    last = None
    for i, (c, extra) in enumerate(zip(f["cls"], f["extra"])):
        for k in [e[0] for e in extra] + ([] if c == "skip" else [c]):
            out[i] += last is not None and k != last
            last = k
    return out


def kernel_seconds(hw: HardwareSpec, cls: str, t_ideal) -> np.ndarray:
    """A class's fitted kernel time for roofline times `t_ideal` (seconds)."""
    cal = hw.calibration
    return curve_seconds(np.asarray(lookup(cal.device_s, cls), float), t_ideal, cal.below)


def curve_seconds(knots: np.ndarray, t_ideal, below: str = "flat") -> np.ndarray:
    """Seconds on a (log10 t_ideal, log10 s) knot curve: log-log interpolation, slope 1 above
    the last knot, flat (or slope 1 if `below` is "proportional") below the first."""
    x = np.log10(np.maximum(np.asarray(t_ideal, float), 1e-12))
    xs, ys = knots[:, 0], knots[:, 1]
    y = np.interp(x, xs, ys)
    y = np.where(x > xs[-1], ys[-1] + (x - xs[-1]), y)
    if below == "proportional":
        y = np.where(x < xs[0], ys[0] + (x - xs[0]), y)
    return 10.0 ** y


def roofline_s(hw: HardwareSpec, macs, nbytes) -> np.ndarray:
    peak = max(hw.macs_per_cycle.values()) * hw.cores * hw.clock_hz
    return np.maximum(np.asarray(macs, float) / peak, np.asarray(nbytes, float) /
                      hw.dram_bytes_per_s)


def op_times(graph: OpGraph, hw: HardwareSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(host seconds, kernel seconds, memory-bound flag) per LayerTable('none') row."""
    cal = hw.calibration
    f = op_features(graph, hw.default_abits / 8.0, by_batch=cal.runtime == "eager",
                    bias_kernel=cal.runtime != "sync")
    rows = len(f["cls"])
    t_ideal = roofline_s(hw, f["macs"], f["bytes"])
    device = np.zeros(rows)
    host = f["views"] * cal.host_view_s
    classes = np.array(f["cls"], dtype=object)
    for c in set(f["cls"]) - {"skip"}:
        sel = classes == c
        device[sel] = kernel_seconds(hw, c, t_ideal[sel])
        host[sel] += float(lookup(cal.host_s, c) or 0.0)
    for i, extra in enumerate(f["extra"]):
        for c, b in extra:
            device[i] += float(kernel_seconds(hw, c, roofline_s(hw, 0.0, b)))
            host[i] += float(lookup(cal.host_s, c) or 0.0)
    peak = max(hw.macs_per_cycle.values()) * hw.cores * hw.clock_hz
    # no op runs its MACs faster than the measured peak: a curve fitted on cache-resident
    # (faster than DRAM) cases may place a compute-bound op of the same roofline time below it
    device = np.maximum(device, f["macs"] / peak)
    if cal.switch_s:
        device += cal.switch_s * class_switches(f)
    memory_bound = f["bytes"] / hw.dram_bytes_per_s > f["macs"] / peak
    return host, device, memory_bound


def runtime_rows(graph: OpGraph, hw: HardwareSpec) -> tuple[np.ndarray, ...]:
    """(host_s, device_s, latency_s, bound) per row; latencies sum to the call less fixed_s.

    `bound` indexes ("compute", "memory", "overhead"): overhead where the host issue (or the
    graph floor) sets the row's finish, else the kernel's roofline side.

    Eager: each row's latency is how much later its kernel finishes than the previous one's
    (pipelined host issue, see the module doc). Graph: each row's kernel time, the shortfall
    to `floor_s` charged to the last row.
    """
    cal = hw.calibration
    host, device, memory_bound = op_times(graph, hw)
    if cal.runtime == "sync":
        latency = host + device
        host_bound = host > device
    elif cal.runtime == "eager":
        issue = np.cumsum(host)
        done = np.cumsum(device)
        finish = done + np.maximum.accumulate(issue - (done - device))
        latency = np.diff(finish, prepend=0.0)
        host_bound = issue >= np.append(0.0, finish[:-1])
    else:
        latency = device.copy()
        host_bound = np.zeros(len(device), bool)
        short = cal.floor_s - cal.fixed_s - latency.sum()
        if short > 0 and len(latency):
            latency[-1] += short
            host_bound[-1] = True
    bound = np.where(host_bound, 2, np.where(memory_bound, 1, 0))
    return host, device, latency, bound
