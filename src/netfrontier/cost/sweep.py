"""Design-space sweeps: one captured graph costed on many hardware configurations at once.

A configuration is a base preset with some figures changed (`VARY_KEYS`: on-chip memory,
DRAM bandwidth, cores, clock, tile sizes, depthwise support, ...). `parse_vary` reads the
command line's `--vary KEY=VALUES` into a grid, `grid_specs` turns each point into a
HardwareSpec (every value checked by the same validator as a preset file), and `sweep_costs`
costs a graph on all points in one pass: the arithmetic of `cost/analytical.py` written on
numpy arrays of shape (configurations, layer-table rows), not a Python loop over specs. Its
totals equal `estimate(graph, spec)` for every point (tests/test_sweep.py checks random ones).

Sweeps need an analytical preset (a calibrated runtime profile has no array, memories or
bandwidth to vary) and cost dense weights at the preset's default bit depths (or the ones
given). Under `onchip_mb` the weight buffer keeps the base preset's share of on-chip memory;
the fallback host's link keeps its rate when `dram_gbps` varies.
"""
from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from netfrontier.cost.analytical import _ceil_div, check_bits
from netfrontier.errors import OptionError, SpecError, suggest
from netfrontier.graph.table import LayerTable
from netfrontier.graph.types import OP_KINDS, OpGraph
from netfrontier.hardware.spec import LOOP_DIMS, HardwareSpec

MIB = 2.0 ** 20
# key -> (value type, unit / meaning); tile.<dim> and tile_depthwise.<dim> are integers
VARY_KEYS = {
    "onchip_mb": (float, "on-chip memory, MiB (the weight buffer keeps its share)"),
    "weight_buffer_mb": (float, "weight buffer, MiB"),
    "dram_gbps": (float, "DRAM bandwidth, GB/s"),
    "core_dram_gbps": (float, "per-core DRAM port limit, GB/s"),
    "param_memory_mb": (float, "on-chip parameter cache, MiB"),
    "cores": (int, "cores"),
    "clock_ghz": (float, "clock, GHz"),
    "mapping_efficiency": (float, "fraction of peak on a perfectly tiled layer"),
    "op_overhead_us": (float, "per-layer overhead, µs"),
    "depthwise": (str, "fused | unfused | none: a depthwise engine chained to its "
                       "neighbours, one whose tensors go through DRAM, or none (host)"),
}
DEPTHWISE = ("fused", "unfused", "none")
CHUNK = 128  # configurations per numpy pass (keeps the arrays near the caches, bounds memory)


def _known_keys() -> list[str]:
    return list(VARY_KEYS) + [f"{t}.{d}" for t in ("tile", "tile_depthwise") for d in LOOP_DIMS]


def _values(key: str, text: str) -> list:
    """`a..b:log:N`, `a..b:lin:N`, `a..b` (whole steps), `x,y,z` or `x|y|z`."""
    typ = int if key == "cores" or key.startswith("tile") else VARY_KEYS.get(key, (str,))[0]
    text = text.strip()
    if not text:
        raise OptionError(f"--vary {key}= has no values")
    if typ is str:
        vals = [v.strip() for v in text.replace("|", ",").split(",") if v.strip()]
        bad = [v for v in vals if v not in DEPTHWISE]
        if bad:
            raise OptionError(f"--vary depthwise: unknown value '{bad[0]}' (use "
                              f"{', '.join(DEPTHWISE)})")
        return list(dict.fromkeys(vals))
    if ".." in text:
        lo_hi, _, spec = text.partition(":")
        lo_t, _, hi_t = lo_hi.partition("..")
        try:
            lo, hi = float(lo_t), float(hi_t)
        except ValueError:
            raise OptionError(f"--vary {key}={text}: the range ends must be numbers") from None
        if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
            raise OptionError(f"--vary {key}={text}: empty range ({lo:g} to {hi:g})")
        if spec:
            scale, _, n_t = spec.partition(":")
            if scale not in ("log", "lin") or not n_t.isdigit() or int(n_t) < 1:
                raise OptionError(f"--vary {key}={text}: write a..b:log:N or a..b:lin:N with "
                                  "N at least 1")
            n = int(n_t)
            if scale == "log" and lo <= 0:
                raise OptionError(f"--vary {key}={text}: a log range needs a positive start")
            vals = list(np.geomspace(lo, hi, n) if scale == "log" else np.linspace(lo, hi, n)) \
                if n > 1 else [lo]
        else:
            vals = list(np.arange(lo, hi + 1e-9, 1.0))
        vals = [float(f"{v:.6g}") for v in vals]
    else:
        try:
            vals = [float(v) for v in text.replace("|", ",").split(",") if v.strip()]
        except ValueError:
            raise OptionError(f"--vary {key}={text}: values must be numbers separated by "
                              "commas") from None
    if not vals:
        raise OptionError(f"--vary {key}={text}: empty range")
    if typ is int:
        if any(v != int(v) for v in vals):
            raise OptionError(f"--vary {key}={text}: {key} takes whole numbers")
        vals = [int(v) for v in vals]
    if any(not math.isfinite(v) for v in vals):
        raise OptionError(f"--vary {key}={text}: values must be finite")
    return list(dict.fromkeys(vals))


def parse_vary(items: list[str]) -> dict[str, list]:
    """{key: values} from `--vary KEY=VALUES` options, in the order given."""
    out: dict[str, list] = {}
    known = _known_keys()
    for item in items:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq:
            raise OptionError(f"--vary '{item}' must be KEY=VALUES (e.g. onchip_mb=0.5..64:log:8)")
        if key not in known:
            raise OptionError(f"--vary: unknown key '{key}'{suggest(key, known)} (keys: "
                              f"{', '.join(VARY_KEYS)}, tile.<dim>, tile_depthwise.<dim>)")
        if key in out:
            raise OptionError(f"--vary {key} is given twice")
        out[key] = _values(key, text)
    return out


def config_spec(base: HardwareSpec, cfg: dict) -> HardwareSpec:
    """The base preset with a configuration's figures, validated like a preset file: a value
    the validator rejects is one SpecError naming the key and the value."""
    import json

    from netfrontier.hardware.spec import spec_from_dict

    d = _spec_dict(base)
    share = base.weight_buffer_bytes / base.onchip_bytes if base.onchip_bytes else None
    for key, v in cfg.items():
        if key == "onchip_mb":
            d["onchip_bytes"] = v * MIB
            if share is not None and "weight_buffer_mb" not in cfg:
                d["weight_buffer_bytes"] = v * MIB * share
        elif key == "weight_buffer_mb":
            d["weight_buffer_bytes"] = v * MIB
        elif key == "dram_gbps":
            d["dram_bytes_per_s"] = v * 1e9
        elif key == "core_dram_gbps":
            d["core_dram_bytes_per_s"] = v * 1e9
        elif key == "param_memory_mb":
            d["param_memory_bytes"] = v * MIB
        elif key == "clock_ghz":
            d["clock_hz"] = v * 1e9
        elif key == "op_overhead_us":
            d["op_overhead_s"] = v * 1e-6
        elif key in ("cores", "mapping_efficiency"):
            d[key] = v
        elif key == "depthwise":
            ops = [o for o in d["supported_ops"] if o != "depthwise_conv"]
            d["supported_ops"] = ops if v == "none" else ops + ["depthwise_conv"]
            d["fuse_depthwise"] = v == "fused"
        else:  # tile.<dim> / tile_depthwise.<dim>
            name, _, dim = key.partition(".")
            d[name] = {**d[name], dim: v}
    for key in ("core_dram_bytes_per_s", "param_memory_bytes", "core_mode"):
        if key in d and not d["sources"].get(key):
            d["sources"][key] = "varied by netfrontier sweep"
    try:
        spec = spec_from_dict(json.loads(json.dumps(d)), f"{base.name} --vary")
    except SpecError as exc:
        shown = ", ".join(f"{k}={v}" for k, v in cfg.items())
        raise SpecError(f"sweep configuration {shown}: {str(exc).split(': ', 1)[-1]}") from None
    return dataclasses.replace(spec, name=base.name, path=base.path)


def _spec_dict(hw: HardwareSpec) -> dict:
    """A HardwareSpec back as the mapping its YAML would be (for `spec_from_dict`): optional
    figures at their defaults are left out, as a preset file leaves them out."""
    d = dataclasses.asdict(hw)
    d.pop("path")
    for f in dataclasses.fields(HardwareSpec):
        if f.default is not dataclasses.MISSING and f.name in d and d[f.name] == f.default:
            d.pop(f.name)
    cal = d.pop("calibration", None) or {}
    if any(cal.values()):
        d["calibration"] = {k: v for k, v in cal.items() if v}
    d["supported_ops"] = list(hw.supported_ops)
    d["weight_bits"], d["activation_bits"] = list(hw.weight_bits), list(hw.activation_bits)
    d["fallback"] = dict(d["fallback"])
    d["sources"] = dict(hw.sources)
    return d


def grid(vary: dict[str, list]) -> list[dict]:
    """Every combination of the varied values, the first key varying slowest."""
    keys = list(vary)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(vary[k] for k in keys))]


def grid_specs(base: HardwareSpec, vary: dict[str, list]) -> list[HardwareSpec]:
    """A spec per grid point. Each varied value is first checked on its own (so that an
    impossible value is named before any work), then each combination."""
    if base.calibration.device_s or base.calibration.efficiency or base.calibration.overhead_s:
        raise OptionError(f"{base.name} is a calibrated runtime profile: sweeps vary an "
                          "analytical preset's array, memories and bandwidth")
    for key, vals in vary.items():
        for v in vals:
            config_spec(base, {key: v})
    points = grid(vary)
    if len(points) > 1_000_000:
        raise OptionError(f"the sweep has {len(points):,} configurations; at most 1,000,000")
    return [config_spec(base, p) for p in points]


# --- the vectorised cost model --------------------------------------------------------------

@dataclasses.dataclass
class _Configs:
    """Per-configuration figures as arrays (K,), and tiles (K, 5)."""

    clock: np.ndarray
    cores: np.ndarray
    onchip: np.ndarray
    wbuf: np.ndarray
    dram: np.ndarray
    core_bw: np.ndarray
    param: np.ndarray
    eff: np.ndarray
    overhead: np.ndarray
    tile: np.ndarray
    tile_dw: np.ndarray
    dw_ok: np.ndarray
    fuse_dw: np.ndarray


def _configs(specs: list[HardwareSpec]) -> _Configs:
    def col(f):
        return np.array([f(s) for s in specs], float)

    return _Configs(
        clock=col(lambda s: s.clock_hz), cores=col(lambda s: s.cores),
        onchip=col(lambda s: s.onchip_bytes), wbuf=col(lambda s: s.weight_buffer_bytes),
        dram=col(lambda s: s.dram_bytes_per_s), core_bw=col(lambda s: s.core_dram_bytes_per_s),
        param=col(lambda s: s.param_memory_bytes), eff=col(lambda s: s.mapping_efficiency),
        overhead=col(lambda s: s.op_overhead_s),
        tile=np.array([[s.tile[d] for d in LOOP_DIMS] for s in specs], np.int64),
        tile_dw=np.array([[s.tile_depthwise[d] for d in LOOP_DIMS] for s in specs], np.int64),
        dw_ok=np.array(["depthwise_conv" in s.supported_ops for s in specs]),
        fuse_dw=np.array([s.fuse_depthwise for s in specs]))


_FIXED = ("kind", "macs_per_cycle", "vector_ops_per_cycle", "weight_bits", "activation_bits",
          "default_wbits", "default_abits", "fallback", "energy", "calibration", "fusion",
          "overhead_mode", "core_mode")


def sweep_costs(graph: OpGraph, specs: list[HardwareSpec], wbits: int | None = None,
                abits: int | None = None) -> dict[str, np.ndarray]:
    """Totals of `graph` on every spec at once: arrays (K,) of latency_s, dram_bytes,
    energy_j, utilization (MACs / (latency × peak of the active cores)), array_utilization
    (MAC-weighted occupancy while computing) and unsupported_layers. Every spec must share
    the base's figures other than the sweepable ones (as `grid_specs` makes them)."""
    if not specs:
        raise OptionError("the sweep has no configuration")
    base = specs[0]
    for s in specs[1:]:
        for f in _FIXED:
            if getattr(s, f) != getattr(base, f):
                raise OptionError(f"sweep configurations differ in '{f}', which a sweep cannot "
                                  "vary")
        if (set(s.supported_ops) ^ set(base.supported_ops)) - {"depthwise_conv"}:
            raise OptionError("sweep configurations differ in supported_ops beyond depthwise")
    out = {k: [] for k in ("latency_s", "dram_bytes", "energy_j", "utilization",
                           "array_utilization", "unsupported_layers")}
    t = graph.layer_table(base.fusion)
    pre = _prepare(t, base, wbits, abits)
    for i in range(0, len(specs), CHUNK):
        part = _evaluate(t, base, pre, _configs(specs[i:i + CHUNK]))
        for k in out:
            out[k].append(part[k])
    return {k: np.concatenate(v) for k, v in out.items()}


def _prepare(t: LayerTable, hw: HardwareSpec, wbits, abits) -> dict:
    """What does not depend on the configuration: bits, rates, energies, masks, incidence."""
    wbits = wbits or hw.default_wbits
    abits = abits or hw.default_abits
    check_bits(hw, wbits, abits)
    precision = hw.precision_for(wbits, abits)
    rows = t.rows
    mask_dw = np.array([k in hw.supported_ops or k == "depthwise_conv" for k in OP_KINDS])
    mask_nodw = np.array([k in hw.supported_ops and k != "depthwise_conv" for k in OP_KINDS])
    # segment sums over the (consumer row, producer tensor) pairs, O(pairs) per configuration:
    # the pairs are sorted by consumer row; a second order groups them by producer tensor
    r_start, r_rows = _segments(t.in_rows)
    t_order = np.argsort(t.in_tensors, kind="stable")
    t_start, t_rows = _segments(t.in_tensors[t_order])
    abytes, wbytes = abits / 8.0, wbits / 8.0
    return {
        "abytes": abytes, "w": t.weight_elems * wbytes,
        "rate": float(hw.macs_per_cycle[precision]), "pj_mac": hw.pj_per_mac(precision),
        "unsup_dw": (t.kind_mask & ~mask_dw).any(axis=1),
        "unsup_nodw": (t.kind_mask & ~mask_nodw).any(axis=1),
        "r_start": r_start, "r_rows": r_rows, "t_order": t_order, "t_start": t_start,
        "t_rows": t_rows, "wbytes": wbytes,
        "dims": np.maximum(t.dims, 1), "dw_next": np.append(t.is_depthwise[1:], False),
    }


def _segments(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(start index, key) of each run of equal values in a sorted array."""
    if not len(keys):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    start = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
    return start, keys[start]


def _evaluate(t: LayerTable, hw: HardwareSpec, pre: dict, c: _Configs) -> dict:
    """The arithmetic of AnalyticalCostModel.estimate on (K, rows) arrays (same order)."""
    k_n = len(c.clock)
    col = (slice(None), None)  # (K,) -> (K, 1)
    batch = max(t.batch, 1)
    if hw.core_mode == "images":
        active = np.minimum(batch, c.cores)
        share = _ceil_div(batch, active) / batch
        tile_cores, mem_cores = np.ones(k_n), c.cores
    else:
        active, share, tile_cores, mem_cores = c.cores, np.ones(k_n), c.cores, np.ones(k_n)
    rate, abytes, w = pre["rate"], pre["abytes"], pre["w"]

    # compute
    tile = np.where(t.is_depthwise[None, :, None], c.tile_dw[:, None, :], c.tile[:, None, :])
    folds = _ceil_div(pre["dims"][None, :, :], tile)
    tiles = folds[..., 0] * folds[..., 1] * folds[..., 4]
    per_tile = tile[..., 0] * tile[..., 1] * tile[..., 4] * folds[..., 2] * tile[..., 2] * \
        folds[..., 3] * tile[..., 3]
    cycles = _ceil_div(tiles, tile_cores.astype(np.int64)[col]) * per_tile / rate
    mac_s = cycles * share[col] / c.clock[col] / c.eff[col]
    vec_s = t.vector_ops[None, :] * share[col] / (hw.vector_ops_per_cycle * tile_cores *
                                                   c.clock)[col]
    compute = np.where(t.is_mac[None, :], mac_s, vec_s)

    # residency
    unsup = np.where(c.dw_ok[col], pre["unsup_dw"][None, :], pre["unsup_nodw"][None, :])
    wbuf = c.wbuf / mem_cores
    act_cap = np.maximum(c.onchip - c.wbuf, 0.0) / mem_cores
    t_bytes = t.out_elems * abytes
    resident = t.peak_live[None, :] * abytes * share[col] <= act_cap[col]
    cached = (np.cumsum(w)[None, :] <= c.param[col]) & (w > 0)[None, :] & (c.param > 0)[col]
    next_cached = np.concatenate([cached[:, 1:], np.zeros((k_n, 1), bool)], axis=1)
    band = (t.stream_elems > 0)[None, :] & \
        (t.stream_elems[None, :] * abytes * share[col] <= act_cap[col])
    streamed = band & (((t.stream_weight_elems * pre["wbytes"])[None, :] <= wbuf[col]) |
                       next_cached)
    dw_touch = (t.is_depthwise | pre["dw_next"])[None, :]
    streamed &= ~(~c.fuse_dw[col] & dw_touch)
    forced = np.zeros((k_n, t.rows), bool)  # tensors that an unsupported row consumes
    if len(t.in_rows):
        hit = unsup[:, t.in_rows[pre["t_order"]]].astype(np.int8)
        forced[:, pre["t_rows"]] = np.maximum.reduceat(hit, pre["t_start"], axis=1) > 0
    spilled = ~(resident | streamed) | t.is_output[None, :] | unsup | forced

    pair_bytes = t_bytes[t.in_tensors]
    gin = t.graph_input_elems * abytes
    act_in_all = np.bincount(t.in_rows, weights=pair_bytes, minlength=t.rows) + gin
    act_read = np.zeros((k_n, t.rows))
    if len(t.in_rows):
        act_read[:, pre["r_rows"]] = np.add.reduceat(
            np.where(spilled[:, t.in_tensors], pair_bytes, 0.0), pre["r_start"], axis=1)
    act_read += gin[None, :]
    act_write = np.where(spilled, t_bytes[None, :], 0.0)
    core_read = act_read * share[col]
    w_ext = np.where(cached, 0.0, w[None, :])
    sw = np.maximum(wbuf, 1.0)[col]
    sa = np.maximum(act_cap, 1.0)[col]
    tiled = (w_ext > sw) & (core_read > sa)
    refetch = np.minimum(w_ext + core_read * np.ceil(w_ext / sw),
                         core_read + w_ext * np.ceil(core_read / sa))
    core_dram = np.where(tiled, refetch, w_ext + core_read) + act_write * share[col]
    dram = core_dram * active[col] if hw.core_mode == "images" else core_dram
    bandwidth = np.where(c.core_bw > 0, np.minimum(c.dram, active * c.core_bw), c.dram)
    memory = dram / bandwidth[col]

    # latency, fallback, energy
    fb = hw.fallback
    fb_s = (t.macs + t.vector_ops)[None, :] / fb.ops_per_s + \
        (act_read + act_write + w[None, :]) / fb.transfer_bytes_per_s + fb.overhead_s
    busy = np.maximum(compute, memory)
    overhead = c.overhead[col]
    device_s = np.maximum(busy, overhead) if hw.overhead_mode == "max" else busy + overhead
    latency = np.where(unsup, fb_s, device_s)
    e = hw.energy
    sram = act_in_all + t_bytes + w
    energy_pj = np.where(unsup, ((t.macs + t.vector_ops) * fb.pj_per_op)[None, :],
                         (t.macs * pre["pj_mac"] + t.vector_ops * e["pj_per_vector_op"] +
                          sram * e["pj_per_sram_byte"])[None, :]) + dram * e["pj_per_dram_byte"]
    total_latency = latency.sum(axis=1) + hw.calibration.fixed_s
    peak = rate * active * c.clock
    macs = float(t.macs.sum())
    busy_work = np.where(t.is_mac[None, :] & (compute > 0) & (t.macs > 0)[None, :],
                         compute * peak[col], 0.0).sum(axis=1)
    return {"latency_s": total_latency, "dram_bytes": dram.sum(axis=1),
            "energy_j": energy_pj.sum(axis=1) * 1e-12,
            "utilization": macs / np.maximum(total_latency * peak, 1e-30),
            "array_utilization": np.where(busy_work > 0, macs / np.maximum(busy_work, 1e-30),
                                          0.0),
            "unsupported_layers": unsup.sum(axis=1)}


# --- studies over a sweep -----------------------------------------------------------------

def geomean(values: np.ndarray, axis=None) -> np.ndarray:
    """Geometric mean (of positive costs), as the Series4 study averages configurations."""
    return np.exp(np.mean(np.log(np.maximum(values, 1e-300)), axis=axis))


def frontier_over_configs(costs: np.ndarray, top1: np.ndarray) -> dict:
    """For costs (models, configurations) and top-1 (models,): the frontier of the geometric
    mean cost over configurations, and per model the share of configurations in which it is
    on that configuration's own frontier ("stays on the frontier")."""
    from netfrontier.frontier import pareto_front

    mean = geomean(costs, axis=1)
    on_mean = pareto_front(mean, top1)
    on_each = np.array([pareto_front(costs[:, k], top1) for k in range(costs.shape[1])]).T
    return {"geomean_cost": mean, "on_mean_frontier": on_mean,
            "share_on_frontier": on_each.mean(axis=1) if costs.shape[1] else on_each.sum(1)}
