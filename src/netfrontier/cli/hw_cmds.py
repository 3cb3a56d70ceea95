"""`netfrontier hw list` and `netfrontier hw show NAME`: presets and profiles, with units."""
from __future__ import annotations

import json
from dataclasses import asdict

import typer

from netfrontier.cli import hw_app
from netfrontier.cli.common import console, print_table, si
from netfrontier.graph.types import OP_KINDS


def binary_bytes(n: float) -> str:
    """On-chip memories are sized in powers of two: 1048576 B is '1 MiB', not '1.05 MB'."""
    for scale, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:g} B"


def _summary(hw) -> dict:
    prec = hw.precision_for(hw.default_wbits, hw.default_abits)
    return {"name": hw.name, "kind": hw.kind, "calibrated": bool(hw.calibration.provenance),
            "precision": prec, "peak_ops_per_s": 2 * hw.peak_macs_per_s(prec),
            "onchip_bytes": hw.onchip_bytes, "dram_bytes_per_s": hw.dram_bytes_per_s,
            "cores": hw.cores, "path": hw.path}


@hw_app.command("list")
def hw_list(as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """List the shipped presets and the calibrated profiles (shipped and your own)."""
    from netfrontier.errors import NetfrontierError
    from netfrontier.hardware.registry import get_hardware, hardware_names

    items, broken = [], []
    for name in hardware_names():
        try:
            items.append(_summary(get_hardware(name)))
        except NetfrontierError as exc:  # one bad user profile must not hide the others
            broken.append({"name": name, "error": str(exc)})
    if as_json:
        console.out(json.dumps(items + broken, indent=1), highlight=False)
        return
    rows = [(d["name"], d["kind"] + (" (calibrated)" if d["calibrated"] else ""),
             si(d["peak_ops_per_s"], f"{d['precision']} op/s"), binary_bytes(d["onchip_bytes"]),
             si(d["dram_bytes_per_s"], "B/s"), str(d["cores"])) for d in items]
    rows += [(b["name"], f"[red]invalid: {b['error']}[/red]", "", "", "", "") for b in broken]
    print_table("hardware presets", ("name", "kind", "peak", "on-chip", "DRAM", "cores"), rows,
                right=("peak", "on-chip", "DRAM", "cores"))


_UNITS = {"clock_hz": "Hz", "dram_bytes_per_s": "B/s", "pj_per_dram_byte": "pJ/B",
          "pj_per_sram_byte": "pJ/B", "pj_per_vector_op": "pJ", "op_overhead_s": "s",
          "ops_per_s": "op/s",
          "overhead_s": "s", "transfer_bytes_per_s": "B/s", "pj_per_op": "pJ"}


def _fmt(key: str, value) -> str:
    """A figure as a person reads it: units, bit lists, 'a: b' pairs, never a Python repr."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key in ("onchip_bytes", "weight_buffer_bytes"):
        return binary_bytes(value)
    if isinstance(value, (int, float)) and key.startswith("pj_"):
        return f"{value:g} {_UNITS[key]}"
    if isinstance(value, (int, float)) and key in _UNITS:
        return si(value, _UNITS[key])
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(key, v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_fmt(k, v)}" for k, v in value.items()) if value else "-"
    return str(value)


def _figures(hw) -> list[tuple[str, str, str]]:
    d = asdict(hw)
    rows = []
    for key, value in d.items():
        if key in ("sources", "name", "description", "path", "calibration"):
            continue
        if key == "macs_per_cycle":
            value = {p: f"{v:g} per cycle per core" for p, v in value.items()}
        if key in ("tile", "tile_depthwise"):
            value = {k: v for k, v in value.items() if v > 1} or {"all": 1}
        if key == "supported_ops" and set(value) == set(OP_KINDS):
            value = f"all {len(OP_KINDS)} operator kinds"
        if key == "energy":
            value = {"MAC (pJ)": ", ".join(f"{p} {v:g}" for p, v in value["pj_per_mac"].items()
                                           if p in hw.macs_per_cycle),
                     **{k: v for k, v in value.items() if k != "pj_per_mac"}}
        rows.append((key, _fmt(key, value), str(hw.sources.get(key, ""))))
    cal = hw.calibration
    if cal.provenance:
        rows.append(("calibration", f"runtime {cal.runtime}, {len(cal.device_s)} op-class "
                                    f"curves, per call {si(cal.fixed_s, 's')}, class switch "
                                    f"{si(cal.switch_s, 's')}", cal.provenance))
    return rows


@hw_app.command("show")
def hw_show(name: str = typer.Argument(..., help="preset name or YAML file"),
            as_json: bool = typer.Option(False, "--json", help="print JSON")) -> None:
    """Every figure of one preset, with its unit and its source."""
    from netfrontier.hardware.registry import get_hardware

    hw = get_hardware(name)
    if as_json:
        console.out(json.dumps(asdict(hw), indent=1, default=str), highlight=False)
        return
    print_table(f"{hw.name}: {hw.description}", ("field", "value", "source"), _figures(hw))
    for key, src in hw.sources.items():
        if key not in asdict(hw):
            console.print(f"[dim]{key}: {src}[/dim]", highlight=False)
