"""`eval` and `quantize`: accuracy on real images, and what quantization costs and saves."""
from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path

import typer

from netfrontier.cli import app
from netfrontier.cli.common import Progress, check_out_dir, console, err, print_table


def _bits_list(text: str, what: str) -> tuple[int, ...]:
    from netfrontier.compress.config import check_bits
    from netfrontier.errors import OptionError

    try:
        vals = tuple(int(t) for t in text.split(",") if t.strip())
    except ValueError:
        raise OptionError(f"{what} must be comma-separated integers, got '{text}'") from None
    if not vals:
        raise OptionError(f"{what} needs at least one bit depth")
    for v in vals:
        check_bits(what, v)
    return vals


@app.command("eval")
def eval_cmd(
    model: str = typer.Argument(..., help="efficientnet_lite0, package.module:function, "
                                          "or a .pt/.pth checkpoint (with --arch)"),
    data: Path = typer.Option(None, "--data", help="labelled image folder (default: "
                                                   "../shared/data/imagenet-sample)"),
    limit: int = typer.Option(None, "--limit", help="only the first N images"),
    weights: Path = typer.Option(None, "--weights", help="state-dict checkpoint to load"),
    arch: str = typer.Option(None, "--arch", help="architecture for a checkpoint MODEL"),
    batch_size: int = typer.Option(50, "--batch-size"),
    threads: int = typer.Option(2, "--threads", help="torch CPU threads"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Top-1 / top-5 (with standard errors) of a pretrained model on labelled images."""
    import time

    from netfrontier.errors import OptionError
    from netfrontier.measure.accuracy import evaluate, load_images
    from netfrontier.models.pretrained import load_pretrained

    if batch_size < 1 or threads < 1:
        raise OptionError("--batch-size and --threads must be at least 1")
    pre = load_pretrained(model, weights=str(weights) if weights else None, arch=arch)
    t = time.time()
    with Progress(f"decoding images for {pre.name}") as bar:
        images = load_images(data, pre.preprocess, limit=limit,
                             progress=lambda i, n: bar.update("", i, n))
    with Progress(f"evaluating {pre.name}") as bar:
        bar.set_total(len(images))
        acc = evaluate(pre.model, images, batch_size=batch_size, threads=threads,
                       progress=lambda k: bar.update("", bar.done + k))
    out = {"model": pre.name, **acc.to_dict(), "resolution": pre.resolution,
           "preprocess": {"resize": pre.preprocess.resize, "crop": pre.preprocess.crop,
                          "mean": pre.preprocess.mean, "std": pre.preprocess.std},
           "seconds": round(time.time() - t, 1)}
    if as_json:
        print(json.dumps(out))
        return
    console.print(f"[bold]{pre.name}[/bold] on {acc.dataset} ({acc.n} images): top-1 "
                  f"{acc.top1:.2f}% ± {acc.top1_se:.2f}, top-5 {acc.top5:.2f}% ± "
                  f"{acc.top5_se:.2f} (± one standard error)")


@app.command()
def quantize(
    model: str = typer.Argument(..., help="model name(s), comma-separated: with offline weights "
                                          "(efficientnet_lite0) for accuracy, any zoo name for cost"),
    wbits: str = typer.Option("8,6,4", "--wbits", help="weight bit depths, e.g. 8,6,4"),
    abits: int = typer.Option(8, "--abits", help="activation bits (8 or 16)"),
    qat: bool = typer.Option(False, "--qat", help="also quantization-aware training at each "
                                                  "depth below 8"),
    epochs: int = typer.Option(3, "--epochs", help="QAT epochs"),
    rounding: str = typer.Option("nearest", "--rounding",
                                 help="PTQ weight rounding below 8 bits: nearest | gptq (each "
                                      "layer's output error minimised) | gptq-float (toward "
                                      "the float model's outputs); QAT starts from it, and "
                                      "from a GPTQ rounding keeps the weights' step sizes"),
    feature_weight: float = typer.Option(0.0, "--feature-weight",
                                         help="QAT: weight of matching the FP32 model's "
                                              "batch-norm outputs (0: logits only)"),
    mixed: bool = typer.Option(False, "--mixed", help="also a mixed-precision allocation"),
    budget: float = typer.Option(1.0, "--budget-top1-drop",
                                 help="mixed: allowed top-1 drop vs FP32 (points)"),
    objective: str = typer.Option("latency", "--objective", help="mixed: latency | dram | energy"),
    hw: str = typer.Option("img-series4-1core,img-series4-8core", "--hw",
                           help="presets, comma-separated (mixed precision targets the first)"),
    data: Path = typer.Option(None, "--data", help="labelled image folder (default: "
                                                   "../shared/data/imagenet-sample)"),
    limit: int = typer.Option(None, "--limit", help="only the first N images"),
    calib: int = typer.Option(128, "--calib-images", help="calibration images (tune split)"),
    onnx: bool = typer.Option(False, "--onnx", help="also export QDQ ONNX files and check "
                                                    "ONNX Runtime against PyTorch"),
    threads: int = typer.Option(2, "--threads", help="torch CPU threads"),
    out: Path = typer.Option(Path("quant-report"), "--out", help="output directory"),
) -> None:
    """Quantize at each bit depth: top-1, its drop, and the gain in latency, DRAM and energy."""
    from netfrontier.compress.qat import QATConfig
    from netfrontier.compress.study import StudyOptions, run_study
    from netfrontier.compress.study_report import write_study
    from netfrontier.errors import OptionError

    if threads < 1:
        raise OptionError("--threads must be at least 1")
    if data is not None and not data.is_dir():
        raise OptionError(f"--data directory '{data}' does not exist")
    check_out_dir(out)
    opts = StudyOptions(
        wbits=_bits_list(wbits, "--wbits"), abits=abits,
        hardware=tuple(h.strip() for h in hw.split(",") if h.strip()),
        data=str(data) if data else None, limit=limit, calib_images=calib, qat=qat,
        rounding=rounding,
        qat_config=QATConfig(epochs=epochs, threads=threads, feature_weight=feature_weight,
                             weight_scale_lr=None if rounding == "nearest" else 0.0),
        mixed=mixed,
        budget_top1_drop=budget, objective=objective,
        export_onnx=str(out / "onnx") if onnx else None, threads=threads)
    rows = []
    for name in [m.strip() for m in model.split(",") if m.strip()]:
        rows += run_study(name, opts, progress=lambda s: err.print(s))
    meta = study_meta(opts, rows)
    paths = write_study(rows, out, meta)
    _print_table(rows, list(opts.hardware))
    err.print(f"wrote {paths['csv']}, {paths['json']}, {paths['html']}")


def _print_table(rows: list[dict], hardware: list[str]) -> None:
    from netfrontier.compress.study_report import improvement_text

    cells_all = []
    for r in rows:
        top1 = "" if r.get("top1") is None else f"{r['top1']:.2f} ± {r['top1_se']:.2f}"
        drop = "" if r.get("top1_drop") is None else \
            f"{r['top1_drop']:.2f} ± {r.get('top1_drop_se', 0):.2f}"
        cells = []
        for hw in hardware:
            c = (r.get("cost") or {}).get(hw)
            cells.append(improvement_text(c) if c else "(not on the NPU)")
        cells_all.append((r["model"], r["variant"], r["method"], top1, drop, *cells))
    print_table("Quantized variants: top-1 and improvement over 8-bit weights "
                "(× latency / DRAM / energy)",
                ("model", "variant", "method", "top-1 %", "drop (paired SE)", *hardware),
                cells_all, right=("top-1 %", "drop (paired SE)", *hardware))


def study_meta(opts, rows) -> dict:
    from netfrontier.store import tool_version

    ds = next((r["dataset"] for r in rows if r.get("dataset")), None)
    n = next((r["images"] for r in rows if r.get("images")), None)
    notes = [
        "Top-1 of every variant is measured on the same held-out images (odd-numbered half of "
        "the set); calibration, QAT and the mixed-precision search use the other half. "
        "Drops are paired differences with their standard error.",
        "Improvement (×) is the uniform 8-bit model's cost divided by the variant's, from "
        "netfrontier's analytical model; first and last layers keep 8-bit weights.",
        "FP32 does not run on the NPU presets (4-16 bit weights): it has accuracy, no cost.",
    ]
    return {"hardware": list(opts.hardware), "dataset": f"{ds} ({n} images)" if ds else None,
            "wbits": list(opts.wbits), "abits": opts.abits, "qat": opts.qat,
            "qat_config": opts.qat_config.__dict__ if opts.qat else None, "mixed": opts.mixed,
            "budget_top1_drop": opts.budget_top1_drop if opts.mixed else None,
            "objective": opts.objective, "tool_version": tool_version(),
            "command": " ".join(["netfrontier"] + sys.argv[1:]),
            "date": datetime.date.today().isoformat(), "notes": notes,
            "summary": "Quantized variants of each network: top-1 on real images and the "
                       "modelled cost per inference on each preset."}
