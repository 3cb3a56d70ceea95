"""Quantization benchmark: the figures committed in benchmarks/results/quantization/.

    nice -n 19 .venv/bin/python benchmarks/quantization.py [--data DIR] [--out DIR]
        [--qat-epochs N] [--skip-lite12] [--limit N]

1. Modelled cost of torchvision architectures without offline weights (resnet50, mobilenet_v2,
   vgg16, regnet_x_8gf, efficientnet_b0) at W8/W6/W4 (A8) on both Series4 presets.
2. EfficientNet-Lite0: FP32, PTQ W8/W6/W4, QAT W6/W4 (LSQ + distillation on the tune half),
   mixed precision (latency on img-series4-1core, top-1 budget 1 point), ONNX QDQ export
   with the ONNX Runtime parity check, all on the held-out half of imagenet-sample.
3. EfficientNet-Lite1 and Lite2: FP32, PTQ W8/W6/W4.

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
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "quantization"))
    ap.add_argument("--qat-epochs", type=int, default=2)
    ap.add_argument("--qat-wbits", default="6,4")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--skip-lite12", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--onnx-dir", default="/tmp/netfrontier-quant-onnx",
                    help="where the QDQ ONNX files go (not committed: parity is recorded)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    out = Path(args.out)
    t_all = time.time()
    log = []

    def say(s):
        line = f"[{time.time() - t_all:7.0f} s] {s}"
        print(line, flush=True)
        log.append(line)

    rows: list[dict] = []
    measured: dict = {}
    command = "nice -n 19 .venv/bin/python benchmarks/quantization.py " + " ".join(sys.argv[1:])

    def flush():
        meta = {"hardware": list(HW), "dataset": next(
            (f"{r['dataset']} ({r['images']} images)" for r in rows if r.get("dataset")), None),
            "command": command, "date": datetime.date.today().isoformat(),
            "torch": torch.__version__, "threads": args.threads,
            "seconds": round(time.time() - t_all), "log": log,
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
        if measured:
            write_atomic(ROOT / "src" / "netfrontier" / "models" / "data" /
                         "measured_accuracy.json",
                         json.dumps({"command": command, "date": meta["date"],
                                     "models": measured}, indent=1))

    base = dict(hardware=HW, data=args.data, limit=args.limit, threads=args.threads)
    for name in COST_ONLY:
        rows += run_study(name, StudyOptions(wbits=(8, 6, 4), cost_only=True, **base), say)
    flush()
    qat_bits = tuple(int(b) for b in args.qat_wbits.split(",") if b)
    lite = ["efficientnet_lite0"] + ([] if args.skip_lite12 else
                                     ["efficientnet_lite1", "efficientnet_lite2"])
    for name in lite:
        is0 = name == "efficientnet_lite0"
        opts = StudyOptions(wbits=(8, 6, 4), qat=is0 and bool(qat_bits),
                            qat_config=QATConfig(epochs=args.qat_epochs),
                            mixed=is0, budget_top1_drop=1.0, objective="latency",
                            export_onnx=args.onnx_dir if is0 else None, **base)
        if is0 and qat_bits:
            opts.qat_wbits = qat_bits
        t = time.time()
        new = run_study(name, opts, say)
        say(f"{name}: {time.time() - t:.0f} s")
        rows += new
        fp = next(r for r in new if r["variant"] == "FP32")
        measured[name] = {
            "top1": round(fp["top1"], 2), "top1_se": round(fp["top1_se"], 2),
            "top5": round(fp["top5"], 2), "images": fp["images"],
            "dataset": fp["dataset"], "params": fp["params"],
            "top1_source": f"measured: {fp['dataset']} ({fp['images']} images), FP32"}
        flush()
    say("done")
    flush()


if __name__ == "__main__":
    main()
