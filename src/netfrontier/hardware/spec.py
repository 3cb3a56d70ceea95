"""HardwareSpec: an accelerator described in YAML, validated into a frozen dataclass.

Every number carries its source (a `sources:` entry per figure, saying where it was published
or how it was derived). Unknown keys, missing keys and implausible values are errors naming the
key and the file; nothing falls back silently.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from netfrontier.errors import SpecError
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
    path: str = ""

    @property
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


_REQUIRED = {
    "name": str, "description": str, "kind": str, "clock_hz": float, "cores": int,
    "macs_per_cycle": dict, "tile": dict, "vector_ops_per_cycle": float,
    "mapping_efficiency": float, "onchip_bytes": float, "weight_buffer_bytes": float,
    "dram_bytes_per_s": float, "op_overhead_s": float, "weight_bits": list,
    "activation_bits": list, "default_wbits": int, "default_abits": int,
    "supported_ops": list, "fallback": dict, "sources": dict,
}
_OPTIONAL = {"tile_depthwise": dict, "energy": dict, "calibration": dict, "version": int,
             "fusion": str, "overhead_mode": str}
_SOURCED = ("clock_hz", "cores", "macs_per_cycle", "tile", "vector_ops_per_cycle",
            "mapping_efficiency", "onchip_bytes", "weight_buffer_bytes", "dram_bytes_per_s",
            "op_overhead_s", "weight_bits", "supported_ops", "fallback")
_RANGES = {  # plausible bounds: a typo of three orders of magnitude is an error, not a chip
    "clock_hz": (1e6, 1e10), "cores": (1, 100_000), "vector_ops_per_cycle": (1, 1e7),
    "mapping_efficiency": (0.01, 1.0), "onchip_bytes": (0, 1e11),
    "weight_buffer_bytes": (0, 1e11), "dram_bytes_per_s": (1e6, 1e14),
    "op_overhead_s": (0, 1e-1),
}


def _fail(path: str, msg: str) -> SpecError:
    return SpecError(f"{path}: {msg}")


def _number(path: str, key: str, value, typ):
    if isinstance(value, str):  # YAML 1.1 reads 1.5e9 (no sign in the exponent) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(path, f"'{key}' must be a number, got {value!r}")
    if typ is int and float(value) != int(value):
        raise _fail(path, f"'{key}' must be a whole number, got {value!r}")
    if not math.isfinite(float(value)):
        raise _fail(path, f"'{key}' must be finite, got {value!r}")
    return typ(value)


def spec_from_dict(d: dict, path: str = "<dict>") -> HardwareSpec:
    """Validate a parsed YAML mapping into a HardwareSpec, naming the key and file on error."""
    if not isinstance(d, dict):
        raise _fail(path, "top level must be a mapping of keys to values")
    unknown = sorted(set(d) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise _fail(path, f"unknown key '{unknown[0]}'")
    for key, typ in _REQUIRED.items():
        if key not in d:
            raise _fail(path, f"missing key '{key}'")
    vals = {}
    for key, typ in {**_REQUIRED, **_OPTIONAL}.items():
        if key not in d:
            continue
        v = d[key]
        if typ in (int, float):
            v = _number(path, key, v, typ)
        elif not isinstance(v, typ):
            raise _fail(path, f"'{key}' must be a {typ.__name__}, got {type(v).__name__}")
        vals[key] = v
    for key, (lo, hi) in _RANGES.items():
        if not lo <= vals[key] <= hi:
            raise _fail(path, f"'{key}' = {vals[key]} is implausible (expected {lo:g}..{hi:g})")
    missing_src = [k for k in _SOURCED if not str(vals["sources"].get(k, "")).strip()]
    if missing_src:
        raise _fail(path, f"figure '{missing_src[0]}' has no entry under 'sources'")
    mpc = {}
    for p, v in vals["macs_per_cycle"].items():
        if p not in PRECISION_BITS:
            raise _fail(path, f"unknown precision '{p}' in macs_per_cycle "
                              f"(known: {', '.join(PRECISION_BITS)})")
        mpc[p] = _number(path, f"macs_per_cycle.{p}", v, float)
        if mpc[p] <= 0:
            raise _fail(path, f"'macs_per_cycle.{p}' must be positive")
    tiles = {}
    for name in ("tile", "tile_depthwise"):
        t = vals.get(name, vals["tile"])
        for dim, size in t.items():
            if dim not in LOOP_DIMS:
                raise _fail(path, f"unknown loop dimension '{dim}' in {name} "
                                  f"(use {', '.join(LOOP_DIMS)})")
            if _number(path, f"{name}.{dim}", size, int) < 1:
                raise _fail(path, f"'{name}.{dim}' must be at least 1")
        tiles[name] = {k: int(t.get(k, 1)) for k in LOOP_DIMS}
    for key in ("weight_bits", "activation_bits"):
        bits = vals[key]
        if not bits or any(not isinstance(b, int) or not 1 <= b <= 32 for b in bits):
            raise _fail(path, f"'{key}' must list bit depths between 1 and 32")
    for key, bkey in (("default_wbits", "weight_bits"), ("default_abits", "activation_bits")):
        if vals[key] not in vals[bkey]:
            raise _fail(path, f"'{key}' = {vals[key]} is not among '{bkey}'")
    ops = vals["supported_ops"]
    if ops == ["all"]:
        ops = list(OP_KINDS)
    bad = [o for o in ops if o not in OP_KINDS]
    if bad:
        raise _fail(path, f"unknown operator kind '{bad[0]}' in supported_ops")
    fb = vals["fallback"]
    fb_keys = {"host", "ops_per_s", "overhead_s", "transfer_bytes_per_s", "pj_per_op"}
    if set(fb) != fb_keys:
        extra = sorted(set(fb) ^ fb_keys)
        raise _fail(path, f"fallback must have exactly {sorted(fb_keys)}; check '{extra[0]}'")
    fallback = Fallback(host=str(fb["host"]), **{k: _number(path, f"fallback.{k}", fb[k], float)
                                                  for k in sorted(fb_keys - {"host"})})
    energy = json.loads(json.dumps(DEFAULT_ENERGY))
    for k, v in vals.get("energy", {}).items():
        if k not in energy:
            raise _fail(path, f"unknown key 'energy.{k}'")
        if isinstance(energy[k], dict):
            energy[k].update({p: _number(path, f"energy.{k}.{p}", x, float) for p, x in v.items()})
        else:
            energy[k] = _number(path, f"energy.{k}", v, float)
    missing_e = [p for p in mpc if p not in energy["pj_per_mac"]]
    if missing_e:
        raise _fail(path, f"no energy.pj_per_mac for precision '{missing_e[0]}'")
    cal = vals.get("calibration", {})
    unknown_cal = set(cal) - {"efficiency", "overhead_s", "fixed_s", "provenance", "device_s",
                              "host_s", "host_view_s", "floor_s", "switch_s", "runtime",
                              "below"}
    if unknown_cal:
        raise _fail(path, f"unknown key 'calibration.{sorted(unknown_cal)[0]}'")
    calibration = Calibration(efficiency=cal.get("efficiency", {}),
                              overhead_s=cal.get("overhead_s", {}),
                              fixed_s=_number(path, "calibration.fixed_s",
                                              cal.get("fixed_s", 0.0), float),
                              provenance=str(cal.get("provenance", "")),
                              device_s=cal.get("device_s", {}), host_s=cal.get("host_s", {}),
                              host_view_s=_number(path, "calibration.host_view_s",
                                                  cal.get("host_view_s", 0.0), float),
                              floor_s=_number(path, "calibration.floor_s",
                                              cal.get("floor_s", 0.0), float),
                              switch_s=_number(path, "calibration.switch_s",
                                               cal.get("switch_s", 0.0), float),
                              runtime=str(cal.get("runtime", "")),
                              below=str(cal.get("below", "flat")))
    if calibration.device_s:
        if calibration.runtime not in ("eager", "graph", "sync"):
            raise _fail(path, "'calibration.runtime' must be eager, graph or sync")
        if calibration.below not in ("flat", "proportional"):
            raise _fail(path, "'calibration.below' must be flat or proportional")
        for cls, knots in calibration.device_s.items():
            xs = [k[0] for k in knots] if all(len(k) == 2 for k in knots) else []
            if not xs or any(b <= a for a, b in zip(xs, xs[1:])):
                raise _fail(path, f"'calibration.device_s.{cls}' must be [x, y] knots with "
                                  "increasing x")
    for k in list(calibration.efficiency) + list(calibration.overhead_s):
        if k not in OP_KINDS:
            raise _fail(path, f"unknown operator kind '{k}' in calibration")
    for key, allowed in (("fusion", ("full", "none")), ("overhead_mode", ("add", "max"))):
        if vals.get(key, allowed[0]) not in allowed:
            raise _fail(path, f"'{key}' must be one of {', '.join(allowed)}, got {vals[key]!r}")
    if vals["weight_buffer_bytes"] > vals["onchip_bytes"] > 0:
        raise _fail(path, "'weight_buffer_bytes' exceeds 'onchip_bytes'")
    return HardwareSpec(
        name=vals["name"], description=vals["description"], kind=vals["kind"],
        clock_hz=vals["clock_hz"], cores=vals["cores"], macs_per_cycle=mpc,
        tile=tiles["tile"], tile_depthwise=tiles["tile_depthwise"],
        vector_ops_per_cycle=vals["vector_ops_per_cycle"],
        mapping_efficiency=vals["mapping_efficiency"], onchip_bytes=vals["onchip_bytes"],
        weight_buffer_bytes=vals["weight_buffer_bytes"],
        dram_bytes_per_s=vals["dram_bytes_per_s"], op_overhead_s=vals["op_overhead_s"],
        weight_bits=tuple(vals["weight_bits"]), activation_bits=tuple(vals["activation_bits"]),
        default_wbits=vals["default_wbits"], default_abits=vals["default_abits"],
        supported_ops=tuple(ops), fallback=fallback, energy=energy,
        sources=dict(vals["sources"]), calibration=calibration,
        fusion=vals.get("fusion", "full"), overhead_mode=vals.get("overhead_mode", "add"),
        path=path,
    )


def load_spec(path: str | Path) -> HardwareSpec:
    """Read and validate one hardware YAML file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise SpecError(f"{p}: cannot read ({exc.strerror})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise SpecError(f"{p}: malformed YAML{where}: {getattr(exc, 'problem', exc)}") from exc
    return spec_from_dict(data, str(p))
