"""The analytical cost model: array mapping, on-chip residency, DRAM streaming, fusion, energy.

Per fused layer (row of the graph's LayerTable), vectorised over rows with numpy:

compute  MAC rows fold their loop dimensions (m, n, c, r, g) onto the array's tile with ceiling
         division, so a depthwise conv on a channel-parallel array pays for the idle lanes;
         independent output tiles are spread over the cores in waves. Vector rows run on the
         vector unit. A calibrated profile replaces the tile model by fitted efficiencies.
cores    `core_mode: split` (default) spreads one inference's output tiles over the cores.
         `core_mode: images` gives each core whole images of its own (Vitis AI runs one image
         per DPU core): a batch of B uses n = min(B, cores) cores, each computing ceil(B/n)
         images with its own share of on-chip memory (onchip_bytes / cores, weight buffer
         likewise) and fetching the weights itself, so weight traffic is n times one core's;
         batch-1 latency is one core's.
memory   a tensor stays on chip when everything alive during its lifetime fits in the activation
         part of on-chip memory, or when its single consumer can stream it in row bands (fused
         chains such as depthwise → pointwise; `fuse_depthwise: false` forbids it for tensors a
         depthwise layer produces or consumes); otherwise it is written to DRAM once and read by
         each consumer. Weights are read once per inference, more when neither weights nor
         input fit and the layer must be tiled (the cheaper of weight- or input-stationary).
params   `param_memory_bytes` > 0 is an on-chip parameter store that keeps weights across
         inferences (the Edge TPU's parameter cache): the layers in execution order up to the
         first whose weights no longer fit (running total ≤ capacity) keep theirs there; they
         cost no external traffic and never force tiling. The weights of every later layer stream in from external memory
         on each inference (for an Edge TPU, host memory over USB or PCIe: dram_bytes_per_s).
bandwidth  DRAM time = bytes / min(dram_bytes_per_s, active cores × core_dram_bytes_per_s):
         one core draws at most what its own ports carry (0: no per-core limit).
latency  max(compute, memory) + per-layer overhead; ops the hardware does not run go to the
         fallback host, through DRAM, at its stated rate.
energy   MACs × pJ/MAC at the row's precision + vector ops + on-chip bytes + DRAM bytes × pJ.
sparse   `CostOptions.layer_density` (unstructured sparsity, e.g. a lottery ticket) changes a
         cost only where the preset says so: `weight_compression` stores a row's weights at
         density × bits plus the zero pattern's cost (its entropy, or a bitmap) in DRAM and in
         the weight buffer; `skip_zero_weights` scales its MAC time and MAC energy by the
         density. A dense array with neither gains nothing from zeros.
"""
from __future__ import annotations

import numpy as np

from netfrontier.cost.base import BOUNDS, CostModel, CostOptions, CostTable
from netfrontier.errors import OptionError, SpecError
from netfrontier.graph.table import KIND_INDEX, LayerTable
from netfrontier.graph.types import MAC_KINDS, OP_KINDS, OpGraph
from netfrontier.hardware.spec import LOOP_DIMS, HardwareSpec

# Bump when the model's arithmetic or its totals change: stored cost results are keyed on it.
MODEL_REVISION = 6
_BOUND_NAMES = np.array(BOUNDS, dtype=object)


def _ceil_div(a, b):
    return -(-a // b)


def check_bits(hw: HardwareSpec, wbits: int, abits: int) -> None:
    """Raise OptionError unless the hardware accepts these bit depths."""
    if wbits not in hw.weight_bits:
        raise OptionError(f"{hw.name} does not support {wbits}-bit weights "
                          f"(it supports {_ranges(hw.weight_bits)})")
    if abits not in hw.activation_bits:
        raise OptionError(f"{hw.name} does not support {abits}-bit activations "
                          f"(it supports {_ranges(hw.activation_bits)})")


def _row_density(t: LayerTable, layer_density) -> np.ndarray:
    """Fraction of each row's weights that are nonzero (1 unless a prefix says otherwise)."""
    d = np.ones(t.rows)
    for prefix, frac in layer_density:
        if not 0 < frac <= 1:
            raise OptionError(f"weight density of '{prefix}' must be in (0, 1], got {frac:g}")
        d[np.array([m == prefix or m.startswith(prefix + ".") for m in t.modules], bool)] = frac
    return d


def _storage(mode: str, density: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Stored bits per weight relative to dense: zeros kept ("none"), the nonzeros plus the
    entropy of the zero pattern ("entropy": a lossless coder's bound), or plus one bit per
    weight ("bitmap"); a coder never stores a layer larger than dense."""
    if mode == "none":
        return np.ones_like(density)
    p = np.clip(density, 1e-12, 1.0)
    side = np.where(p < 1, -(p * np.log2(p) + (1 - p) * np.log2(np.maximum(1 - p, 1e-12))), 0.0) \
        if mode == "entropy" else np.ones_like(p)
    return np.minimum(1.0, density + side / bits)


def _ranges(bits) -> str:
    b = sorted(bits)
    return f"{b[0]}-{b[-1]}" if b == list(range(b[0], b[-1] + 1)) and len(b) > 2 else \
        ", ".join(map(str, b))


class AnalyticalCostModel(CostModel):
    """Roofline per layer with array-mapping, residency and tiling effects (see module doc)."""

    def estimate(self, graph: OpGraph, hw: HardwareSpec,
                 options: CostOptions = CostOptions()) -> CostTable:
        t: LayerTable = graph.layer_table(hw.fusion)
        wbits = options.wbits or hw.default_wbits
        abits = options.abits or hw.default_abits
        check_bits(hw, wbits, abits)
        rows = t.rows
        row_wbits = np.full(rows, wbits, np.int64)
        for prefix, bits in options.layer_wbits:
            check_bits(hw, bits, abits)
            hit = np.array([m == prefix or m.startswith(prefix + ".") for m in t.modules], bool)
            row_wbits[hit] = bits
        abytes = abits / 8.0
        density = _row_density(t, options.layer_density)
        wbytes = row_wbits / 8.0 * _storage(hw.weight_compression, density, row_wbits)

        # precision, peak rate and MAC energy per row (few distinct bit depths)
        rate = np.empty(rows)
        pj_mac = np.empty(rows)
        precisions = {}
        for b in np.unique(row_wbits):
            p = hw.precision_for(int(b), abits, options.precision)
            precisions[int(b)] = p
            sel = row_wbits == b
            rate[sel] = hw.macs_per_cycle[p]
            pj_mac[sel] = hw.pj_per_mac(p)
        precision = precisions.get(wbits) or hw.precision_for(wbits, abits, options.precision)

        hw_mask = np.array([k in hw.supported_ops for k in OP_KINDS])
        unsupported = (t.kind_mask & ~hw_mask).any(axis=1)

        # cores: split one inference's tiles, or give each core whole images of its own
        images = hw.core_mode == "images"
        if images:
            active = min(max(t.batch, 1), hw.cores)
            share = _ceil_div(max(t.batch, 1), active) / max(t.batch, 1)  # of the batch, per core
            tile_cores, mem_cores = 1, hw.cores
        else:
            active, share, tile_cores, mem_cores = hw.cores, 1.0, hw.cores, 1

        # compute time
        tile = np.where(t.is_depthwise[:, None],
                        np.array([hw.tile_depthwise[d] for d in LOOP_DIMS]),
                        np.array([hw.tile[d] for d in LOOP_DIMS]))
        d = np.maximum(t.dims, 1)
        folds = _ceil_div(d, tile)
        tiles = folds[:, 0] * folds[:, 1] * folds[:, 4]
        per_tile = tile[:, 0] * tile[:, 1] * tile[:, 4] * folds[:, 2] * tile[:, 2] * \
            folds[:, 3] * tile[:, 3]
        cycles = _ceil_div(tiles, tile_cores) * per_tile / rate
        mac_s = cycles * share / hw.clock_hz / hw.mapping_efficiency
        if hw.skip_zero_weights:  # multiplications by zero weights are skipped
            mac_s = mac_s * density
        vec_s = t.vector_ops * share / (hw.vector_ops_per_cycle * tile_cores * hw.clock_hz)
        compute = np.where(t.is_mac, mac_s, vec_s)
        overhead = np.full(rows, hw.op_overhead_s)

        # which tensors stay on chip (per core in images mode, for that core's share)
        wbuf = hw.weight_buffer_bytes / mem_cores
        act_cap = max(hw.onchip_bytes - hw.weight_buffer_bytes, 0.0) / mem_cores
        t_bytes = t.out_elems * abytes
        resident = t.peak_live * abytes * share <= act_cap
        w = t.weight_elems * wbytes
        cached = _param_cached(w, hw.param_memory_bytes)
        next_wbytes = np.append(wbytes[1:], wbytes[-1:])
        next_cached = np.append(cached[1:], False)
        streamed = (t.stream_elems > 0) & (t.stream_elems * abytes * share <= act_cap) & \
            ((t.stream_weight_elems * next_wbytes <= wbuf) | next_cached)
        if not hw.fuse_depthwise:
            streamed &= ~(t.is_depthwise | np.append(t.is_depthwise[1:], False))
        spilled = ~(resident | streamed) | t.is_output | unsupported
        spilled[t.in_tensors[unsupported[t.in_rows]]] = True

        pair_bytes = t_bytes[t.in_tensors]
        act_in_all = np.bincount(t.in_rows, weights=pair_bytes, minlength=rows) + \
            t.graph_input_elems * abytes
        act_read = np.bincount(t.in_rows, weights=np.where(spilled[t.in_tensors], pair_bytes, 0.0),
                               minlength=rows) + t.graph_input_elems * abytes
        act_write = np.where(spilled, t_bytes, 0.0)
        # one core's traffic for its share of the batch, then all active cores' (images mode)
        core_read, w_ext = act_read * share, np.where(cached, 0.0, w)
        sw = max(wbuf, 1.0)
        sa = max(act_cap, 1.0)
        tiled = (w_ext > sw) & (core_read > sa)
        refetch = np.minimum(w_ext + core_read * np.ceil(w_ext / sw),
                             core_read + w_ext * np.ceil(core_read / sa))
        core_dram = np.where(tiled, refetch, w_ext + core_read) + act_write * share
        dram = core_dram * active if images else core_dram
        bandwidth = hw.dram_bytes_per_s
        if hw.core_dram_bytes_per_s:
            bandwidth = min(bandwidth, active * hw.core_dram_bytes_per_s)
        memory = dram / bandwidth

        cal = hw.calibration
        if (cal.efficiency or cal.overhead_s) and not cal.device_s:
            compute, memory, overhead = _apply_calibration(
                hw, t, compute, memory, overhead, rate, act_in_all + t_bytes + w)

        fb = hw.fallback
        fb_s = (t.macs + t.vector_ops) / fb.ops_per_s + (act_read + act_write + w) / \
            fb.transfer_bytes_per_s + fb.overhead_s
        busy = np.maximum(compute, memory)
        device_s = np.maximum(busy, overhead) if hw.overhead_mode == "max" else busy + overhead
        latency = np.where(unsupported, fb_s, device_s)
        bound_idx = np.where(unsupported, 3, np.where(overhead >= busy, 2,
                                                      np.where(memory > compute, 1, 0)))
        if cal.device_s:  # a measured GPU runtime: per-op host issue and kernel times
            from netfrontier.cost.gpu_runtime import runtime_rows

            memory, compute, latency, bound_idx = runtime_rows(graph, hw)

        e = hw.energy
        sram = act_in_all + t_bytes + w
        energy_pj = np.where(
            unsupported, (t.macs + t.vector_ops) * fb.pj_per_op,
            t.macs * pj_mac * (density if hw.skip_zero_weights else 1.0) +
            t.vector_ops * e["pj_per_vector_op"] + sram * e["pj_per_sram_byte"]
        ) + dram * e["pj_per_dram_byte"]
        peak_row = rate * active * hw.clock_hz
        util = np.where(t.is_mac & (latency > 0), t.macs / np.maximum(latency * peak_row, 1e-30), 0.0)
        # the array's own occupancy while computing (mapping losses only, no memory stalls)
        array_util = np.where(t.is_mac & (compute > 0), t.macs / np.maximum(compute * peak_row,
                                                                            1e-30), 0.0)

        names, ops = np.array(t.names, dtype=object), np.array(t.ops, dtype=object)
        bounds = _BOUND_NAMES[np.where(t.is_unknown, 4, bound_idx)]
        on_host, cost_unknown = unsupported.copy(), t.is_unknown.copy()
        if hw.calibration.fixed_s:
            # the runtime's cost per call (graph launch, framework entry) as one more row
            names = np.append(names, "(per-call runtime overhead)")
            ops = np.append(ops, "overhead")
            bounds = np.append(bounds, "overhead")
            z = np.zeros(1)
            t_macs, w, dram, compute, memory = (np.append(a, 0) for a in
                                                (t.macs, w, dram, compute, memory))
            latency = np.append(latency, hw.calibration.fixed_s)
            energy_pj, util, array_util, row_wbits = (
                np.append(a, z) for a in (energy_pj, util, array_util, row_wbits))
            on_host, cost_unknown = np.append(on_host, False), np.append(cost_unknown, False)
        else:
            t_macs = t.macs
        _check_finite(hw, names, latency, dram, energy_pj)
        columns = {
            "name": names, "op": ops, "macs": t_macs, "weight_bytes": w, "dram_bytes": dram,
            "compute_s": compute, "memory_s": memory, "latency_s": latency,
            "energy_j": energy_pj * 1e-12, "utilization": util, "array_utilization": array_util,
            "bound": bounds,
            "wbits": row_wbits, "on_host": on_host, "cost_unknown": cost_unknown,
        }
        return CostTable(model=graph.model, hardware=hw.name, batch=graph.batch,
                         resolution=graph.resolution, wbits=wbits, abits=abits,
                         precision=precision, macs=int(t.macs.sum()), params=graph.params,
                         columns=columns, graph_digest=graph.digest, spec_digest=hw.digest)


def _param_cached(w: np.ndarray, capacity: float) -> np.ndarray:
    """Rows whose weights the on-chip parameter store keeps: the layers in execution order
    up to the first one that no longer fits (the running total of weight bytes ≤ capacity)."""
    return (np.cumsum(w) <= capacity) & (w > 0) if capacity > 0 else np.zeros(len(w), bool)


def _check_finite(hw: HardwareSpec, names, *columns) -> None:
    """Every cost is a finite, non-negative number; otherwise name the layer, never print inf."""
    for col, what in zip(columns, ("latency", "DRAM traffic", "energy")):
        bad = ~np.isfinite(col) | (col < 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise SpecError(f"{hw.path or hw.name}: {what} of layer '{names[i]}' comes out as "
                            f"{col[i]:g}; check the preset's figures")


def _apply_calibration(hw: HardwareSpec, t: LayerTable, compute, memory, overhead, rate, touched):
    """Replace the tile model by fitted efficiency curves for the kinds a profile calibrated.

    MAC kinds: time = MACs / (peak × eff(log10 MACs)). Other kinds: time = bytes touched /
    (DRAM bandwidth × eff(log10 bytes)); memory time is then folded into that figure.
    """
    compute, memory, overhead = compute.copy(), memory.copy(), overhead.copy()
    for kind, knots in hw.calibration.efficiency.items():
        sel = t.anchor_kind == KIND_INDEX[kind]
        if not sel.any():
            continue
        xs, ys = np.array(knots, float).T
        if kind in MAC_KINDS:
            work = np.maximum(t.macs[sel], 1)
            eff = np.clip(np.interp(np.log10(work), xs, ys), 1e-6, 1.0)
            compute[sel] = work / (rate[sel] * hw.cores * hw.clock_hz * eff)
        else:
            work = np.maximum(touched[sel], 1)
            eff = np.clip(np.interp(np.log10(work), xs, ys), 1e-6, None)  # >1: cache-resident
            compute[sel] = work / (hw.dram_bytes_per_s * eff)
            memory[sel] = 0.0
    for kind, secs in hw.calibration.overhead_s.items():
        overhead[t.anchor_kind == KIND_INDEX[kind]] = float(secs)
    return compute, memory, overhead


DEFAULT_MODEL = AnalyticalCostModel()


def estimate(graph: OpGraph, hw: HardwareSpec, wbits: int | None = None, abits: int | None = None,
             precision: str | None = None, layer_wbits: dict[str, int] | None = None,
             layer_density: dict[str, float] | None = None) -> CostTable:
    """Cost `graph` on `hw` with the analytical model (the one-call library API)."""
    opts = CostOptions(wbits=wbits, abits=abits, precision=precision,
                       layer_wbits=tuple(sorted((layer_wbits or {}).items())),
                       layer_density=tuple(sorted((layer_density or {}).items())))
    return DEFAULT_MODEL.estimate(graph, hw, opts)
