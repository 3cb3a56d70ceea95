"""HardwareSpec: an accelerator described in YAML, validated into a frozen dataclass.

Every number carries its source (a `sources:` entry per figure, saying where it was published
or how it was derived). Unknown keys, missing keys and implausible values are errors naming the
key and the file; nothing falls back silently.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

from netfrontier.errors import SpecError
from netfrontier.hardware import checks as chk
from netfrontier.graph.types import OP_KINDS

LOOP_DIMS = ("m", "n", "c", "r", "g")
PRECISION_BITS = {"int4": 4, "int8": 8, "fp8": 8, "int16": 16, "fp16": 16, "bf16": 16,
                  "tf32": 32, "fp32": 32}
# Horowitz, "Computing's energy problem", ISSCC 2014, 45 nm: multiply + add energies per MAC,
# 32 KB SRAM read 64 bit = 10 pJ (1.25 pJ/byte), DRAM 64 bit = 1.3-2.6 nJ (~160 pJ/byte, low end).
DEFAULT_ENERGY = {
    "pj_per_mac": {"int4": 0.1, "int8": 0.23, "fp8": 0.5, "int16": 0.9, "fp16": 1.5,
                   "bf16": 1.5, "tf32": 3.0, "fp32": 4.6},
    "pj_per_vector_op": 0.9,
    "pj_per_sram_byte": 1.25,
    "pj_per_dram_byte": 160.0,
}


@dataclass(frozen=True)
class Fallback:
    """Where ops the accelerator cannot run go, and what that costs."""

    host: str
    ops_per_s: float  # MACs or vector ops per second on the host
    overhead_s: float  # per fallen-back op: synchronisation, driver, cache flush
    transfer_bytes_per_s: float  # link between accelerator memory and the host
    pj_per_op: float


@dataclass(frozen=True)
class Calibration:
    """Per-kind corrections fitted from micro-benchmarks (empty for purely analytical presets).

    `efficiency[kind]` is a list of (log10 work, fraction of peak) knots, work being MACs for MAC
    kinds and bytes moved for the rest; `overhead_s[kind]` the fixed time per op of that kind.
    """

    efficiency: dict = field(default_factory=dict)
    overhead_s: dict = field(default_factory=dict)
    fixed_s: float = 0.0  # once per inference call (graph launch, Python entry)
    provenance: str = ""
    # The GPU-runtime model (cost/gpu_runtime.py); empty for analytical presets.
    # `device_s[cls]`: (log10 roofline seconds, log10 kernel seconds) knots per op class;
    # `host_s[cls]`: host seconds to issue one op (eager); `host_view_s`: per metadata-only op;
    # `floor_s`: shortest possible call; `runtime`: "eager" (host issue pipelined with kernels)
    # or "graph" (one launch replays every kernel). The roofline time on the curves' abscissa
    # uses the profile's own measured peak (macs_per_cycle) and bandwidth (dram_bytes_per_s).
    device_s: dict = field(default_factory=dict)
    host_s: dict = field(default_factory=dict)
    host_view_s: float = 0.0
    floor_s: float = 0.0
    switch_s: float = 0.0  # more kernel time when a kernel follows one of another class
    runtime: str = ""
    below: str = "flat"  # below the first knot: "flat" (a floor) or "proportional"
    # Reference micro-benchmarks timed when the profile was fitted (case name -> median
    # seconds): `calibrate --reanchor` re-times them and rescales the profile, `validate`
    # re-times them to say when the machine has drifted from the profile (measure/calibrate.py).
    anchors: dict = field(default_factory=dict)


@dataclass(frozen=True)
class HardwareSpec:
    """An accelerator: MAC array, clock, memories, bandwidth, bit depths, operators, energy."""

    name: str
    description: str
    kind: str  # npu | dpu | tpu | gpu | cpu
    clock_hz: float
    cores: int
    macs_per_cycle: dict  # per core, per precision name
    tile: dict  # loop dim -> tile size per core at which the array quantises work
    tile_depthwise: dict
    vector_ops_per_cycle: float  # per core
    mapping_efficiency: float  # fraction of peak a perfectly tiled layer reaches
    onchip_bytes: float  # total over all cores
    weight_buffer_bytes: float  # part of on-chip memory (or a separate FIFO) for weights
    dram_bytes_per_s: float
    op_overhead_s: float  # fixed cost per fused op group (launch, pass set-up)
    weight_bits: tuple[int, ...]
    activation_bits: tuple[int, ...]
    default_wbits: int
    default_abits: int
    supported_ops: tuple[str, ...]
    fallback: Fallback
    energy: dict
    sources: dict
    calibration: Calibration = field(default_factory=Calibration)
    fusion: str = "full"  # "full": conv+BN+activation and chains fused; "none": one row per op
    overhead_mode: str = "add"  # "add": overhead + busy; "max": host issue overlaps device work
    # "split": one inference's output tiles are spread over the cores; "images": each core runs
    # whole images of its own (Vitis AI on a multi-core DPU), so batch-1 latency is one core's
    core_mode: str = "split"
    core_dram_bytes_per_s: float = 0.0  # the most one core can draw (its AXI ports); 0: no limit
    param_memory_bytes: float = 0.0  # on-chip parameter store kept across inferences (Edge TPU)
    fuse_depthwise: bool = True  # a depthwise layer streams to/from its neighbours on chip
    # sparse weights: how zeros are stored ("none": dense; "entropy": lossless coding at the
    # entropy of the zero pattern plus the nonzero weights; "bitmap": one bit per weight plus
    # the nonzeros) and whether the array skips multiplications by zero weights
    weight_compression: str = "none"
    skip_zero_weights: bool = False
    path: str = ""

    @cached_property
    def digest(self) -> str:
        d = asdict(self)
        d.pop("path")
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def precision_for(self, wbits: int, abits: int, precision: str | None = None) -> str:
        """The compute precision the array uses for these bit depths (or the one asked for)."""
        if precision is not None:
            if precision not in self.macs_per_cycle:
                raise SpecError(f"{self.name} has no {precision} peak; it has "
                                f"{', '.join(self.macs_per_cycle)}")
            return precision
        need = max(wbits, abits)
        fits = [(PRECISION_BITS[p], i, p) for i, p in enumerate(self.macs_per_cycle)
                if PRECISION_BITS[p] >= need]
        if not fits:
            raise SpecError(f"{self.name} cannot compute at {need} bits "
                            f"(precisions: {', '.join(self.macs_per_cycle)})")
        return min(fits)[2]

    def peak_macs_per_s(self, precision: str) -> float:
        return self.macs_per_cycle[precision] * self.cores * self.clock_hz

    def pj_per_mac(self, precision: str) -> float:
        return float(self.energy["pj_per_mac"][precision])


KINDS = ("npu", "dpu", "tpu", "gpu", "cpu")
_REQUIRED = {
    "name": str, "description": str, "kind": str, "clock_hz": float, "cores": int,
    "macs_per_cycle": dict, "tile": dict, "vector_ops_per_cycle": float,
    "mapping_efficiency": float, "onchip_bytes": float, "weight_buffer_bytes": float,
    "dram_bytes_per_s": float, "op_overhead_s": float, "weight_bits": list,
    "activation_bits": list, "default_wbits": int, "default_abits": int,
    "supported_ops": list, "fallback": dict, "sources": dict,
}
_OPTIONAL = {"tile_depthwise": dict, "energy": dict, "calibration": dict, "version": int,
             "fusion": str, "overhead_mode": str, "core_mode": str,
             "core_dram_bytes_per_s": float, "param_memory_bytes": float, "fuse_depthwise": bool,
             "weight_compression": str, "skip_zero_weights": bool}
# optional figures that need a `sources:` entry when a preset sets them
_SOURCED_IF_SET = ("core_mode", "core_dram_bytes_per_s", "param_memory_bytes",
                   "weight_compression", "skip_zero_weights")
WEIGHT_COMPRESSIONS = ("none", "entropy", "bitmap")
CORE_MODES = ("split", "images")
_SOURCED = ("clock_hz", "cores", "macs_per_cycle", "tile", "vector_ops_per_cycle",
            "mapping_efficiency", "onchip_bytes", "weight_buffer_bytes", "dram_bytes_per_s",
            "op_overhead_s", "weight_bits", "supported_ops", "fallback")
# plausible bounds (lo, hi, lo excluded): a typo of three orders of magnitude is an error
_RANGES = {
    "clock_hz": (1e6, 1e10), "cores": (1, 100_000), "vector_ops_per_cycle": (1, 1e7),
    "mapping_efficiency": (0.01, 1.0), "onchip_bytes": (0, 1e11),
    "weight_buffer_bytes": (0, 1e11), "dram_bytes_per_s": (1e6, 1e14),
    "op_overhead_s": (0, 1e-1), "version": (1, 1),
    "core_dram_bytes_per_s": (1e6, 1e14), "param_memory_bytes": (0, 1e11),
}
_FALLBACK_RANGES = {"ops_per_s": (1e3, 1e17, True), "overhead_s": (0, 10, False),
                    "transfer_bytes_per_s": (1e3, 1e14, True), "pj_per_op": (0, 1e6, False)}
_ENERGY_HI = 1e6  # pJ: no MAC, vector op or byte costs a microjoule
_SECONDS_HI = 10.0  # no fixed per-call or per-op time of a calibrated runtime is 10 s
_LOG10_S = (-15.0, 3.0)  # device_s curves: log10 seconds on both axes
_CAL_KEYS = {"efficiency", "overhead_s", "fixed_s", "provenance", "device_s", "host_s",
             "host_view_s", "floor_s", "switch_s", "runtime", "below", "anchors"}


def _typed(path: str, d: dict) -> dict:
    """Every known top-level key, type-checked; unknown or missing keys are errors."""
    unknown = sorted(str(k) for k in set(d) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise chk.fail(path, f"unknown key '{unknown[0]}'")
    missing = [k for k in _REQUIRED if k not in d]
    if missing:
        raise chk.fail(path, f"missing key '{missing[0]}'")
    vals = {}
    for key, typ in {**_REQUIRED, **_OPTIONAL}.items():
        if key not in d:
            continue
        v = d[key]
        if typ in (int, float):
            lo, hi = _RANGES.get(key, (None, None))
            v = chk.number(path, key, v, typ, lo, hi)
        elif typ is dict:
            v = chk.mapping(path, key, v)
        elif typ is str:
            v = chk.text(path, key, v)
        elif not isinstance(v, typ):
            raise chk.fail(path, f"'{key}' must be a {typ.__name__}, got {type(v).__name__}")
        vals[key] = v
    return vals


def _bits(path: str, vals: dict) -> None:
    for key in ("weight_bits", "activation_bits"):
        bits = vals[key]
        if not bits or any(isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= 32
                           for b in bits) or len(set(bits)) != len(bits):
            raise chk.fail(path, f"'{key}' must list distinct bit depths between 1 and 32")
    for key, bkey in (("default_wbits", "weight_bits"), ("default_abits", "activation_bits")):
        if vals[key] not in vals[bkey]:
            raise chk.fail(path, f"'{key}' = {vals[key]} is not among '{bkey}'")


def _macs_and_tiles(path: str, vals: dict) -> tuple[dict, dict]:
    if not vals["macs_per_cycle"]:
        raise chk.fail(path, "'macs_per_cycle' must name at least one precision")
    mpc = {}
    for p, v in vals["macs_per_cycle"].items():
        if p not in PRECISION_BITS:
            raise chk.fail(path, f"unknown precision '{p}' in macs_per_cycle "
                                 f"(known: {', '.join(PRECISION_BITS)})")
        mpc[p] = chk.number(path, f"macs_per_cycle.{p}", v, float, 0, 1e9, lo_open=True)
    tiles = {}
    for name in ("tile", "tile_depthwise"):
        t = chk.mapping(path, name, vals.get(name, vals["tile"]))
        for dim, size in t.items():
            if dim not in LOOP_DIMS:
                raise chk.fail(path, f"unknown loop dimension '{dim}' in {name} "
                                     f"(use {', '.join(LOOP_DIMS)})")
            chk.number(path, f"{name}.{dim}", size, int, 1, 1e6)
        tiles[name] = {k: int(t.get(k, 1)) for k in LOOP_DIMS}
    return mpc, tiles


def _ops(path: str, vals: dict) -> list[str]:
    ops = vals["supported_ops"]
    if not ops:
        raise chk.fail(path, "'supported_ops' is empty: list the operator kinds the chip runs "
                             "(or [all])")
    if ops == ["all"]:
        return list(OP_KINDS)
    bad = [o for o in ops if o not in OP_KINDS]
    if bad:
        raise chk.fail(path, f"unknown operator kind '{bad[0]}' in supported_ops")
    return ops


def _fallback(path: str, fb: dict) -> Fallback:
    keys = {"host"} | set(_FALLBACK_RANGES)
    if set(fb) != keys:
        extra = sorted(str(k) for k in set(fb) ^ keys)
        raise chk.fail(path, f"fallback must have exactly {sorted(keys)}; check '{extra[0]}'")
    return Fallback(host=chk.text(path, "fallback.host", fb["host"], empty_ok=False),
                    **{k: chk.number(path, f"fallback.{k}", fb[k], float, lo, hi, lo_open=op)
                       for k, (lo, hi, op) in _FALLBACK_RANGES.items()})


def _energy(path: str, given: dict, precisions) -> dict:
    energy = json.loads(json.dumps(DEFAULT_ENERGY))
    for k, v in given.items():
        if k not in energy:
            raise chk.fail(path, f"unknown key 'energy.{k}'")
        if isinstance(energy[k], dict):
            for p, x in chk.mapping(path, f"energy.{k}", v).items():
                energy[k][p] = chk.number(path, f"energy.{k}.{p}", x, float, 0, _ENERGY_HI)
        else:
            energy[k] = chk.number(path, f"energy.{k}", v, float, 0, _ENERGY_HI)
    missing = [p for p in precisions if p not in energy["pj_per_mac"]]
    if missing:
        raise chk.fail(path, f"no energy.pj_per_mac for precision '{missing[0]}'")
    return energy


def _calibration(path: str, cal: dict) -> Calibration:
    unknown = sorted(set(cal) - _CAL_KEYS)
    if unknown:
        raise chk.fail(path, f"unknown key 'calibration.{unknown[0]}'")

    def seconds(key):
        return chk.number(path, f"calibration.{key}", cal.get(key, 0.0), float, 0, _SECONDS_HI)

    def per_class(key, check):
        return {c: check(f"calibration.{key}.{c}", v)
                for c, v in chk.mapping(path, f"calibration.{key}", cal.get(key, {})).items()}

    def secs(key, v):
        return chk.number(path, key, v, float, 0, _SECONDS_HI)

    efficiency = per_class("efficiency", lambda k, v: chk.knots(path, k, v, (-15, 20), (0, 1e3),
                                                                y_lo_open=True))
    device_s = per_class("device_s", lambda k, v: chk.knots(path, k, v, _LOG10_S, _LOG10_S))
    calibration = Calibration(
        efficiency=efficiency, overhead_s=per_class("overhead_s", secs),
        fixed_s=seconds("fixed_s"),
        provenance=chk.text(path, "calibration.provenance", cal.get("provenance", "")),
        device_s=device_s, host_s=per_class("host_s", secs), host_view_s=seconds("host_view_s"),
        floor_s=seconds("floor_s"), switch_s=seconds("switch_s"),
        runtime=chk.text(path, "calibration.runtime", cal.get("runtime", "")),
        below=chk.text(path, "calibration.below", cal.get("below", "flat")),
        anchors=per_class("anchors", lambda k, v: chk.number(path, k, v, float, 0, _SECONDS_HI,
                                                               lo_open=True)))
    if calibration.device_s and calibration.runtime not in ("eager", "graph", "sync"):
        raise chk.fail(path, "'calibration.runtime' must be eager, graph or sync")
    if calibration.below not in ("flat", "proportional"):
        raise chk.fail(path, "'calibration.below' must be flat or proportional")
    for k in list(calibration.efficiency) + list(calibration.overhead_s):
        if k not in OP_KINDS:
            raise chk.fail(path, f"unknown operator kind '{k}' in calibration")
    return calibration


def spec_from_dict(d: dict, path: str = "<dict>") -> HardwareSpec:
    """Validate a parsed YAML mapping into a HardwareSpec, naming the key and file on error."""
    if not isinstance(d, dict):
        raise chk.fail(path, "top level must be a mapping of keys to values")
    vals = _typed(path, d)
    name = chk.name(path, vals["name"])
    if vals["kind"] not in KINDS:
        raise chk.fail(path, f"'kind' must be one of {', '.join(KINDS)}, got {vals['kind']!r}")
    sources = {k: str(v) for k, v in vals["sources"].items()}
    missing_src = [k for k in _SOURCED + tuple(k for k in _SOURCED_IF_SET if k in vals)
                   if not sources.get(k, "").strip() or sources[k] == "None"]
    if missing_src:
        raise chk.fail(path, f"figure '{missing_src[0]}' has no entry under 'sources'")
    mpc, tiles = _macs_and_tiles(path, vals)
    _bits(path, vals)
    for key, allowed in (("fusion", ("full", "none")), ("overhead_mode", ("add", "max")),
                         ("core_mode", CORE_MODES),
                         ("weight_compression", WEIGHT_COMPRESSIONS)):
        if vals.get(key, allowed[0]) not in allowed:
            raise chk.fail(path, f"'{key}' must be one of {', '.join(allowed)}, "
                                 f"got {vals[key]!r}")
    calibration = _calibration(path, vals.get("calibration", {}))
    if calibration.device_s and vals.get("fusion") != "none":
        raise chk.fail(path, "a runtime calibration (calibration.device_s) times ops one by "
                             "one: it needs 'fusion: none'")
    if vals["weight_buffer_bytes"] > vals["onchip_bytes"] > 0:
        raise chk.fail(path, "'weight_buffer_bytes' exceeds 'onchip_bytes'")
    return HardwareSpec(
        name=name, description=vals["description"], kind=vals["kind"],
        clock_hz=vals["clock_hz"], cores=vals["cores"], macs_per_cycle=mpc,
        tile=tiles["tile"], tile_depthwise=tiles["tile_depthwise"],
        vector_ops_per_cycle=vals["vector_ops_per_cycle"],
        mapping_efficiency=vals["mapping_efficiency"], onchip_bytes=vals["onchip_bytes"],
        weight_buffer_bytes=vals["weight_buffer_bytes"],
        dram_bytes_per_s=vals["dram_bytes_per_s"], op_overhead_s=vals["op_overhead_s"],
        weight_bits=tuple(vals["weight_bits"]), activation_bits=tuple(vals["activation_bits"]),
        default_wbits=vals["default_wbits"], default_abits=vals["default_abits"],
        supported_ops=tuple(_ops(path, vals)), fallback=_fallback(path, vals["fallback"]),
        energy=_energy(path, vals.get("energy", {}), mpc), sources=sources,
        calibration=calibration,
        fusion=vals.get("fusion", "full"), overhead_mode=vals.get("overhead_mode", "add"),
        core_mode=vals.get("core_mode", "split"),
        core_dram_bytes_per_s=vals.get("core_dram_bytes_per_s", 0.0),
        param_memory_bytes=vals.get("param_memory_bytes", 0.0),
        fuse_depthwise=vals.get("fuse_depthwise", True),
        weight_compression=vals.get("weight_compression", "none"),
        skip_zero_weights=vals.get("skip_zero_weights", False),
        path=path,
    )


def load_spec(path: str | Path) -> HardwareSpec:
    """Read and validate one hardware YAML file (UTF-8, no duplicate keys)."""
    p = Path(path)
    try:
        text = p.read_bytes().decode("utf-8")
    except OSError as exc:
        raise SpecError(f"{p}: cannot read ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{p}: not UTF-8 text (byte {exc.start})") from None
    return spec_from_dict(chk.parse_yaml(text, str(p)), str(p))
