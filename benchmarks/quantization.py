"""Quantization benchmark: the figures committed in benchmarks/results/quantization/.

    nice -n 19 .venv/bin/python benchmarks/quantization.py [--stages cost,lite,qat]
        [--data DIR] [--out DIR] [--qat-epochs N] [--qat-wbits 4] [--limit N]

Stages can run separately (CPU is scarce); each replaces its own rows in results.json and
keeps the others', and the commands of every stage are recorded in the meta data.

1. Modelled cost of torchvision architectures without offline weights (resnet50, mobilenet_v2,
   vgg16, regnet_x_8gf, efficientnet_b0) at W8/W6/W4 (A8) on both Series4 presets.
2. (lite) EfficientNet-Lite0/1/2: FP32, PTQ W8/W6/W4; for Lite0 also QDQ ONNX export with
   the ONNX Runtime parity check. All top-1 on the held-out half of imagenet-sample.
   (mixed) Lite0 mixed precision (latency on img-series4-1core, top-1 budget 1 point, chosen
   on the tune images past the calibration ones).
3. (qat) EfficientNet-Lite0 QAT (LSQ + distillation on the tune half) at --qat-wbits, from
   nearest-rounded PTQ or (--rounding gptq | gptq-float) from GPTQ-rounded PTQ, whose row is
   added; with several --qat-lr values the rate is chosen on a fifth of the tune half;
   --device cuda trains on a GPU (evaluation stays on the CPU, like every other variant's).

Writes results.json / results.csv / charts / report.html (compress.study_report) and
src/netfrontier/models/data/measured_accuracy.json (the FP32 held-out top-1 the zoo entries
carry). Results are written after each network, so an interrupted run keeps what it finished.
"""
from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from netfrontier.compress.qat import QATConfig  # noqa: E402
from netfrontier.compress.study import StudyOptions, run_study  # noqa: E402
from netfrontier.compress.study_report import write_study  # noqa: E402
from netfrontier.report import write_atomic  # noqa: E402

COST_ONLY = ("resnet50", "mobilenet_v2", "vgg16", "regnet_x_8gf", "efficientnet_b0")
HW = ("img-series4-1core", "img-series4-8core")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stages", default="cost,lite,mixed,qat")
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "quantization"))
    ap.add_argument("--qat-epochs", type=int, default=3)
    ap.add_argument("--qat-wbits", default="4")
    ap.add_argument("--qat-lr", default=None,
                    help="Adam learning rate; several (comma-separated) are chosen between on "
                         "a fifth of the tune half")
    ap.add_argument("--qat-select-epochs", type=int, default=None,
                    help="epochs of each learning-rate trial (default: --qat-epochs)")
    ap.add_argument("--qat-augment", default="flip", help="flip | crop")
    ap.add_argument("--qat-batch", type=int, default=16)
    ap.add_argument("--device", default="cpu", help="where QAT trains (cpu | cuda)")
    ap.add_argument("--qat-scale-lr", type=float, default=None)
    ap.add_argument("--qat-weight-scale-lr", type=float, default=None,
                    help="QAT: the weights' step-size rate apart (0 keeps GPTQ's scales)")
    ap.add_argument("--qat-features", type=float, default=0.0,
                    help="QAT: weight of matching the FP32 batch-norm outputs")
    ap.add_argument("--rounding", default="nearest",
                    help="qat stage: PTQ rounding QAT starts from (nearest | gptq | "
                         "gptq-float); a GPTQ PTQ row is then reported too")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--onnx-dir", default="/tmp/netfrontier-quant-onnx",
                    help="where the QDQ ONNX files go (not committed: parity is recorded)")
    args = ap.parse_args()
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = Path(args.out)
    old = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() \
        else {"meta": {}, "rows": []}
    old_rows = [r for r in old["rows"]
                if r.get("stage") not in stages and not _superseded(r, stages)]
    commands = {k: v for k, v in old["meta"].get("commands", {}).items() if k not in stages}
    command = "nice -n 19 .venv/bin/python benchmarks/quantization.py " + " ".join(sys.argv[1:])
    commands.update({s: command for s in stages})
    logs = {k: v for k, v in old["meta"].get("logs", {}).items() if k not in stages}
    measured_file = ROOT / "src" / "netfrontier" / "models" / "data" / "measured_accuracy.json"
    measured = json.loads(measured_file.read_text())["models"] if measured_file.is_file() else {}
    t_all = time.time()
    log = []

    def say(s):
        line = f"[{time.time() - t_all:7.0f} s] {s}"
        print(line, flush=True)
        log.append(line)

    new: list[dict] = []

    def flush():
        # re-read: another stage may run at the same time and have written its rows
        if (out / "results.json").is_file():
            disk = json.loads((out / "results.json").read_text())
            old_rows[:] = [r for r in disk["rows"] if r.get("stage") not in stages
                           and not _superseded(r, stages)]
            commands.update({k: v for k, v in disk["meta"].get("commands", {}).items()
                             if k not in stages})
            logs.update({k: v for k, v in disk["meta"].get("logs", {}).items()
                         if k not in stages})
            if measured_file.is_file():
                for k, v in json.loads(measured_file.read_text())["models"].items():
                    measured.setdefault(k, v)
        rows = sorted(old_rows + new, key=lambda r: (ORDER.index(r["stage"]),
                                                     NETS.index(r["model"])))
        meta = {"hardware": list(HW), "dataset": next(
            (f"{r['dataset']} ({r['images']} images)" for r in rows if r.get("dataset")), None),
            "commands": commands, "command": "; ".join(dict.fromkeys(commands.values())),
            "date": datetime.date.today().isoformat(), "torch": torch.__version__,
            "threads": args.threads, "logs": {**logs, **{s: log for s in stages}},
            "notes": [
                "Top-1: measured on the held-out (odd-numbered) half of imagenet-sample; "
                "calibration (128 images), QAT and the mixed-precision search use the "
                "even-numbered half. Drops are paired differences ± their standard error.",
                "Improvement (×) = uniform 8-bit cost / variant cost, from netfrontier's "
                "analytical model; first and last layers keep 8-bit weights in every variant.",
                "torchvision networks have no offline weights here: modelled cost only.",
                "FP32 does not run on the Series4 presets: accuracy only."],
            "summary": "EfficientNet-Lite0/1/2 quantized with PTQ, QAT and mixed precision "
                       "(accuracy measured), and torchvision networks (cost only), on IMG "
                       "Series4 1-core (12 GB/s) and 8-core (115 GB/s)."}
        write_study(rows, out, meta)
        if measured and "lite" in stages:  # only the lite stage measures FP32 top-1
            write_atomic(measured_file, json.dumps({"command": commands.get("lite", command),
                                                    "models": measured}, indent=1))

    base = dict(hardware=HW, data=args.data, limit=args.limit, threads=args.threads)
    if "cost" in stages:
        for name in COST_ONLY:
            rows = run_study(name, StudyOptions(wbits=(8, 6, 4), cost_only=True, **base), say)
            new.extend({**r, "stage": "cost"} for r in rows)
        flush()
    if "lite" in stages:
        for name in LITE:
            is0 = name == "efficientnet_lite0"
            opts = StudyOptions(wbits=(8, 6, 4), export_onnx=args.onnx_dir if is0 else None,
                                **base)
            t = time.time()
            rows = run_study(name, opts, say)
            say(f"{name}: {time.time() - t:.0f} s")
            new.extend({**r, "stage": "lite"} for r in rows)
            fp = next(r for r in rows if r["variant"] == "FP32")
            measured[name] = {
                "top1": round(fp["top1"], 2), "top1_se": round(fp["top1_se"], 2),
                "top5": round(fp["top5"], 2), "images": fp["images"],
                "dataset": fp["dataset"], "params": fp["params"],
                "top1_source": f"measured: {fp['dataset']} ({fp['images']} images), FP32"}
            flush()
    if "mixed" in stages:
        opts = StudyOptions(wbits=(6, 4), mixed=True, budget_top1_drop=1.0, objective="latency",
                            export_onnx=args.onnx_dir, **base)
        rows = run_study("efficientnet_lite0", opts, say)
        new.extend({**r, "stage": "mixed"} for r in rows if r["variant"].startswith("mixed"))
        flush()
    if "qat" in stages:
        bits = tuple(int(b) for b in args.qat_wbits.split(",") if b)
        kw = {"scale_lr": args.qat_scale_lr} if args.qat_scale_lr is not None else {}
        if args.qat_weight_scale_lr is not None:
            kw["weight_scale_lr"] = args.qat_weight_scale_lr
        lrs = tuple(float(v) for v in (args.qat_lr or "").split(",") if v)
        opts = StudyOptions(wbits=bits, qat=True, qat_wbits=bits, qat_lrs=lrs,
                            qat_select_epochs=args.qat_select_epochs,
                            qat_config=QATConfig(epochs=args.qat_epochs, augment=args.qat_augment,
                                                 batch_size=args.qat_batch, device=args.device,
                                                 feature_weight=args.qat_features, **kw),
                            rounding=args.rounding, export_onnx=args.onnx_dir, **base)
        rows = run_study("efficientnet_lite0", opts, say)
        new.extend({**r, "stage": "qat"} for r in rows
                   if r["method"].startswith("QAT") or "GPTQ" in r["method"])
        flush()
    say("done")
    flush()


def _superseded(row: dict, stages: list[str]) -> bool:
    """A mixed-precision row of the lite stage (which ran the search before "mixed" was a stage
    of its own) gives way to the mixed stage's row."""
    return "mixed" in stages and row.get("stage") == "lite" and row["variant"].startswith("mixed")


ORDER = ["cost", "lite", "mixed", "qat"]
LITE = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
NETS = list(COST_ONLY) + LITE


if __name__ == "__main__":
    main()
