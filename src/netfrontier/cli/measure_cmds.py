"""`bench`, `calibrate` and `validate`: measure devices, fit profiles, test predictions."""
from __future__ import annotations

import json
import re
from pathlib import Path

import typer
from rich.console import Console

from netfrontier.cli import app, common

console = Console()
err = Console(stderr=True)


def _batches(text: str) -> tuple[int, ...]:
    from netfrontier.errors import OptionError

    try:
        out = tuple(int(b) for b in text.split(","))
    except ValueError:
        raise OptionError(f"--batch takes whole numbers separated by commas, got '{text}'")
    if not out or min(out) < 1:
        raise OptionError(f"--batch values must be at least 1, got '{text}'")
    return out


@app.command()
def bench(
    model: str = typer.Argument(None, help="model name (or use --zoo)"),
    zoo: bool = typer.Option(False, "--zoo", help="benchmark every zoo model"),
    filter: str = typer.Option(None, "--filter", help="glob on model or architecture name"),
    device: str = typer.Option("cpu", help="cpu | cuda"),
    runtime: str = typer.Option("eager", help="eager | cudagraph | compile | onnxruntime"),
    dtype: str = typer.Option("fp32", help="fp32 | fp16 | bf16"),
    batch: str = typer.Option("1", help="batch size(s), e.g. 1,8,32"),
    threads: int = typer.Option(None, help="CPU threads (default: PyTorch's)"),
    min_time: float = typer.Option(1.0, "--min-time", help="seconds of timed runs per model"),
    min_runs: int = typer.Option(5, "--min-runs", help="at least this many timed runs"),
    isolate: bool = typer.Option(False, help="each model in a fresh subprocess"),
    resume: bool = typer.Option(False, help="skip models already measured in the store"),
    out: Path = typer.Option(None, "--out", help="append measurements.jsonl here too"),
    store: Path = typer.Option(None, "--store", help="SQLite store (default: user cache)"),
) -> None:
    """Measure real latency (median, p90, min) with warm-up and synchronised timing."""
    from netfrontier.errors import MeasurementError, OptionError
    from netfrontier.measure.bench import bench_many
    from netfrontier.measure.timing import DTYPES, RUNTIMES, Budget
    from netfrontier.store import Store
    from netfrontier.zoo import cached_zoo_entries

    if runtime not in RUNTIMES:
        raise OptionError(f"unknown runtime '{runtime}' (use {', '.join(RUNTIMES)})")
    if dtype not in DTYPES:
        raise OptionError(f"unknown dtype '{dtype}' (use {', '.join(DTYPES)})")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise OptionError(f"unknown device '{device}' (use cpu or cuda)")
    if (model is None) == (not zoo):
        raise OptionError("name one MODEL or pass --zoo")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise MeasurementError(f"--device {device}: no CUDA device on this machine")
    common.check_out_dir(out)
    db = Store(store)
    names = [e.name for e in cached_zoo_entries(db, filter)] if zoo else [model]
    budget = Budget(min_time_s=min_time, min_runs=min_runs)
    sink = None
    if out:
        sink = open(out / "measurements.jsonl", "a")
    failed = []

    def report(name, m, error):
        if m is None:
            err.print(f"[red]skipped {name}: {error}[/red]")
            failed.append(name)
            return
        console.print(f"{name:45s} b{m.batch:<3d} median {m.median_s * 1e3:9.3f} ms  "
                      f"p90 {m.p90_s * 1e3:9.3f}  min {m.min_s * 1e3:9.3f}  ({m.runs} runs)")
        if sink:
            sink.write(json.dumps(m.to_dict()) + "\n")
            sink.flush()

    try:
        for b in _batches(batch):
            bench_many(names, isolate=isolate, store=db, progress=report, skip_done=resume,
                       device=device, runtime=runtime, dtype=dtype, batch=b, threads=threads,
                       budget=budget)
    finally:
        if sink:
            sink.close()
    if failed:
        raise MeasurementError(f"{len(failed)} of {len(names) * len(_batches(batch))} "
                               f"benchmarks failed ({', '.join(sorted(set(failed))[:5])}"
                               f"{', ...' if len(set(failed)) > 5 else ''}); the rest are kept")


PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


@app.command()
def calibrate(
    name: str = typer.Option(None, "--name", help="profile name, e.g. cpu-2core-fp32-eager"),
    device: str = typer.Option("cpu", help="cpu | cuda"),
    runtime: str = typer.Option("eager", help="eager | cudagraph | compile"),
    dtype: str = typer.Option("fp32", help="fp32 | fp16 | bf16"),
    batch: str = typer.Option("1", help="batch sizes the suite covers, e.g. 1,8,32"),
    onchip_mb: float = typer.Option(None, "--onchip-mb", help="last-level cache (default: read)"),
    refit: Path = typer.Option(None, "--refit", help="fit from a raw .calibration.jsonl instead"),
    quick: bool = typer.Option(False, help="a third of the suite (for smoke tests); with "
                               "--refit, fit only those cases of the file"),
    min_time: float = typer.Option(0.2, "--min-time", help="seconds of timed runs per case"),
    out: Path = typer.Option(None, "--out", help="directory for the profile and raw data "
                             "(default: the user profile directory, where --hw NAME finds it)"),
    reanchor: str = typer.Option(None, "--reanchor", help="re-time a profile's anchors "
                                 "(seconds) and rescale it to this machine's speed today"),
) -> None:
    """Fit a device profile from single-operator micro-benchmarks (never from the zoo), or
    re-anchor one (--reanchor PROFILE)."""
    from netfrontier.measure.calibrate import fit_profile, load_records, run_suite, write_profile

    if reanchor is not None:
        return _reanchor(reanchor, name, out, min_time)
    if name is None:
        from netfrontier.errors import OptionError

        raise OptionError("calibrate needs --name (the profile to fit) or --reanchor PROFILE")
    out = _check_calibrate_options(name, device, runtime, dtype, onchip_mb, min_time, out)
    batches = _batches(batch)
    records = load_records(refit) if refit else None
    if records and quick:  # what a quick run would have timed: its figures, reproducibly
        from netfrontier.measure.microbench import suite

        names = {c.name for c in suite(batches, quick=True)}
        records = [r for r in records if r["case"] in names]
    common.check_out_dir(out)
    if records is None:
        with common.Progress(f"calibrating {device} {runtime} {dtype}") as bar:
            records = run_suite(device, runtime, dtype, batches, quick=quick,
                                min_time_s=min_time, progress=bar.update)
    cache = (onchip_mb * 2**20) if onchip_mb else _llc_bytes(device)
    spec = fit_profile(records, name, cache)
    yaml_path, raw_path = write_profile(spec, records, out)
    cal = spec["calibration"]
    common.console.print(f"{name}: peak {spec['macs_per_cycle']} GMAC/s, bandwidth "
                         f"{spec['dram_bytes_per_s'] / 1e9:.1f} GB/s, "
                         f"{len(cal['efficiency'])} kinds fitted", highlight=False)
    common.console.print(f"wrote {yaml_path} and {raw_path}", highlight=False)


def _reanchor(profile: str, name: str | None, out: Path | None, min_time: float) -> None:
    """Re-time a profile's anchors and write it rescaled: in place for a user profile, else
    as NAME (default PROFILE-reanchored) in the user profile directory or --out."""
    import datetime

    from netfrontier.errors import OptionError
    from netfrontier.hardware.checks import parse_yaml
    from netfrontier.hardware.registry import get_hardware, preset_names, profile_dir
    from netfrontier.measure.calibrate import reanchor_profile, time_anchors, write_profile_yaml
    from netfrontier.measure.timing import device_name

    common.check_number("min-time", min_time, lo=0, lo_open=True)
    spec = get_hardware(profile)
    if not spec.calibration.anchors:
        raise OptionError(f"profile '{spec.name}' records no anchors (calibration.anchors); "
                          "refit it with 'netfrontier calibrate --refit' to record them")
    device = "cuda" if spec.kind == "gpu" else "cpu"
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise OptionError(f"'{spec.name}' describes a GPU and this machine has no CUDA "
                              "device: its anchors can only be re-timed there")
    here = device_name(device)
    if spec.sources.get("device") and spec.sources["device"] != here:
        raise OptionError(f"'{spec.name}' was fitted on {spec.sources['device']}; this machine "
                          f"is {here}: anchors are re-timed on the device they describe")
    src = Path(spec.path)
    in_place = out is None and name is None and src.parent.resolve() == profile_dir().resolve()
    new_name = name or (spec.name if (in_place or out is not None) else f"{spec.name}-reanchored")
    if not PROFILE_NAME.fullmatch(new_name):
        raise OptionError(f"--name '{new_name}' is not a plain file name")
    if out is None and new_name in preset_names():
        raise OptionError(f"'{new_name}' is a shipped preset: pass --name or --out")
    target = common.check_out_dir(out) if out is not None else profile_dir()
    with common.Progress(f"re-timing {len(spec.calibration.anchors)} anchors of {spec.name}") \
            as bar:
        now = time_anchors(list(spec.calibration.anchors), device,
                           spec.sources.get("runtime", "eager"), spec.sources.get("dtype", "fp32"),
                           min_time, progress=bar.update)
    d = parse_yaml(src.read_text(), str(src))
    d["name"] = new_name
    new, f = reanchor_profile(d, now, when=datetime.date.today().isoformat())
    path = write_profile_yaml(new, target, header=f"re-anchored from {src.name}")
    common.console.print(f"{spec.name}: host x{f['host']:.3f}, device x{f['device']:.3f} "
                         f"({len(now)} of {len(spec.calibration.anchors)} anchors timed); wrote "
                         f"{path}", highlight=False)


def _check_calibrate_options(name: str, device: str, runtime: str, dtype: str,
                             onchip_mb: float | None, min_time: float, out: Path | None) -> Path:
    """Every calibrate option checked before the suite runs (minutes); returns the output
    directory. The name becomes a file name and, in the user profile directory, a --hw name
    that must not hide a shipped preset."""
    from netfrontier.errors import OptionError
    from netfrontier.hardware.registry import preset_names, profile_dir
    from netfrontier.measure.calibrate import BYTES

    if not PROFILE_NAME.fullmatch(name):
        raise OptionError(f"--name '{name}' is not a plain file name (letters, digits, '.', "
                          "'_' and '-', starting with a letter or digit, at most 64)")
    if runtime not in ("eager", "cudagraph", "compile"):
        raise OptionError(f"unknown runtime '{runtime}' (use eager, cudagraph or compile)")
    if dtype not in BYTES:
        raise OptionError(f"unknown dtype '{dtype}' (use {', '.join(BYTES)})")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise OptionError(f"unknown device '{device}' (use cpu or cuda)")
    common.check_number("min-time", min_time, lo=0, lo_open=True)
    common.check_number("onchip-mb", onchip_mb, lo=0, lo_open=True)
    if out is None:
        if name in preset_names():
            raise OptionError(f"--name '{name}' is a shipped preset; a user profile may not "
                              "hide it: choose another name (or pass --out to write elsewhere)")
        out = profile_dir()
    return out


def _llc_bytes(device: str) -> float:
    if device.startswith("cuda"):
        import torch

        return float(torch.cuda.get_device_properties(0).L2_cache_size)
    try:
        import glob

        sizes = []
        for p in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
            txt = open(p).read().strip()
            sizes.append(int(txt[:-1]) * (1024 if txt.endswith("K") else 2**20))
        return float(max(sizes))
    except (OSError, ValueError):
        return 8 * 2**20


@app.command()
def validate(
    hw: str = typer.Option(None, "--hw", help="calibrated profile (name or YAML); with "
                           "--published, only that preset's figures"),
    measurements: Path = typer.Option(None, "--measurements", help="measurements.jsonl"),
    published: list[Path] = typer.Option(None, "--published", help="published-figures CSV "
                                         "(data/published/*.csv; repeat for several)"),
    batch: str = typer.Option("1", help="batch size(s) to validate (--measurements)"),
    out: Path = typer.Option(None, "--out", help="write validation CSV, plot and JSON here"),
    store: Path = typer.Option(None, "--store", help="SQLite store (default: user cache)"),
    drift: bool = typer.Option(True, "--drift/--no-drift", help="with --measurements: re-time "
                               "the profile's anchors first (seconds) and say if it drifted"),
) -> None:
    """Predicted vs measured latency per model: Spearman, median error, share within ±10/20%
    (--measurements), or against published chip figures, held-out rows apart (--published)."""
    from netfrontier.errors import OptionError
    from netfrontier.store import Store

    if (measurements is None) == (not published):
        raise OptionError("pass --measurements FILE (with --hw) or --published FILE.csv")
    if published:
        common.check_out_dir(out)
        return _validate_published(published, hw, out, Store(store))
    if hw is None:
        raise OptionError("--measurements needs --hw (the profile to validate)")
    from netfrontier.hardware.registry import get_hardware
    from netfrontier.measure.validate import load_measurements, plot_validation, validate as run

    batches = _batches(batch)
    spec = get_hardware(hw)
    meas = load_measurements(measurements)
    common.check_out_dir(out)
    db = Store(store)
    if drift:
        _report_drift(spec)
    for b in batches:
        with common.Progress(f"costing the zoo on {spec.name}, batch {b}") as bar:
            rows, stats = run(spec, meas, b, store=db, progress=bar.update,
                              on_total=bar.set_total)
        common.console.print(
            f"{spec.name} batch {b}: {stats['models']} models, Spearman {stats['spearman']:.3f} "
            f"(MACs alone: {stats['spearman_macs']:.3f}), median |error| "
            f"{stats['mdape_pct']:.1f}%, within ±10%: {stats['within_10_pct']:.0f}%, "
            f"within ±20%: {stats['within_20_pct']:.0f}%", highlight=False)
        if out:
            import csv
            import io

            from netfrontier.report import write_atomic

            stem = out / f"validation_{spec.name}_b{b}"
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
            write_atomic(stem.with_suffix(".csv"), buf.getvalue())
            write_atomic(stem.with_suffix(".json"), json.dumps(stats, indent=1))
            plot_validation(rows, stats, stem.with_suffix(".png"))


def _report_drift(spec) -> None:
    """When the profile records anchors and this machine is its device, re-time them (a few
    seconds) and say how far the machine has drifted (calibrate --reanchor rescales it)."""
    from netfrontier.measure.calibrate import anchor_drift

    drift = anchor_drift(spec)
    if drift is not None:
        common.console.print(drift["message"], highlight=False)


def _validate_published(files: list[Path], hw: str | None, out: Path | None, db) -> None:
    from netfrontier.measure.published import validate_published, write_outputs

    with common.Progress("costing the published figures") as bar:
        result = validate_published(files, hw_filter=hw, store=db, progress=bar.update,
                                    on_total=bar.set_total)

    def cell(s):
        if not s["rows"]:
            return ["0", "", "", ""]
        sp = f"{s['spearman']:.2f}" if s["spearman"] == s["spearman"] else "-"
        return [str(s["rows"]), sp, f"{s['mdape_pct']:.0f}%", f"{s['within_25_pct']:.0f}%"]

    rows = [[name] + cell(s["held_out"]) + cell(s["rest"]) + [f"{s['all']['median_signed_pct']:+.0f}%"]
            for name, s in result["per_preset"].items()]
    rows.append(["all presets"] + cell(result["all"]["held_out"]) + cell(result["all"]["rest"]) +
                [f"{result['all']['all']['median_signed_pct']:+.0f}%"])
    common.print_table("published figures: predicted vs measured (held-out rows apart)",
                       ["preset", "held-out", "Spearman", "median |err|", "±25%", "rest",
                        "Spearman ", "median |err| ", "±25% ", "signed (all)"], rows,
                       right=["held-out", "rest"])
    if result["layers"]:
        import numpy as np

        m = np.array([r["measured_s"] for r in result["layers"]])
        p = np.array([r["predicted_s"] for r in result["layers"]])
        common.console.print(f"per layer ({len(m)} layers): median |error| "
                             f"{100 * np.median(np.abs(p - m) / m):.0f}%", highlight=False)
    if out:
        paths = write_outputs(result, out)
        common.console.print(f"wrote {', '.join(str(p) for p in paths.values())}",
                             highlight=False)
