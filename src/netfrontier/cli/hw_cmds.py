"""`netfrontier hw list` and `netfrontier hw show NAME`."""
from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from netfrontier.cli import hw_app

console = Console()


@hw_app.command("list")
def hw_list() -> None:
    """List the shipped presets and calibrated profiles."""
    from netfrontier.hardware.registry import get_hardware, preset_names

    table = Table(title="hardware presets")
    for col in ("name", "kind", "peak", "on-chip", "DRAM", "cores"):
        table.add_column(col, overflow="fold")
    for name in preset_names():
        hw = get_hardware(name)
        prec = hw.precision_for(hw.default_wbits, hw.default_abits)
        kind = hw.kind + (" (calibrated)" if hw.calibration.provenance else "")
        table.add_row(name, kind, f"{2 * hw.peak_macs_per_s(prec) / 1e12:.3g} T{prec}ops/s",
                      f"{hw.onchip_bytes / 2**20:.3g} MiB", f"{hw.dram_bytes_per_s / 1e9:.3g} GB/s",
                      str(hw.cores))
    console.print(table)


@hw_app.command("show")
def hw_show(name: str = typer.Argument(..., help="preset name or YAML file")) -> None:
    """Every figure of one preset, with its source."""
    from dataclasses import asdict

    from netfrontier.hardware.registry import get_hardware

    hw = get_hardware(name)
    table = Table(title=f"{hw.name}: {hw.description}", show_lines=False)
    table.add_column("field")
    table.add_column("value", overflow="fold")
    table.add_column("source", overflow="fold")
    for key, value in asdict(hw).items():
        if key in ("sources", "name", "description", "path"):
            continue
        table.add_row(key, str(value), str(hw.sources.get(key, "")))
    console.print(table)
    for key, src in hw.sources.items():
        if key not in asdict(hw):
            console.print(f"[dim]{key}: {src}[/dim]")
