"""Our capture against fvcore and ptflops on the same models, side by side in one run.

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python benchmarks/capture_vs_counters.py

For each model: time to count, and the MAC total relative to torchvision's published figure.
Ours runs on meta tensors (no weights); fvcore and ptflops need a real model and a real forward.
"""
from __future__ import annotations

import time
import warnings

import torch

MODELS = ["resnet50", "mobilenet_v2", "efficientnet_b0", "regnet_x_8gf", "vgg16", "vit_b_16",
          "swin_t", "convnext_tiny"]


def ours(name):
    from netfrontier.models.registry import capture

    return capture(name).macs


def fvcore_count(name, entry):
    from fvcore.nn import FlopCountAnalysis
    from torchvision import models

    model = models.get_model(entry.arch).eval()
    x = torch.randn(1, 3, entry.resolution, entry.resolution)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        fca = FlopCountAnalysis(model, x)
        fca.unsupported_ops_warnings(False)
        fca.uncalled_modules_warnings(False)
        return int(fca.total())  # fvcore counts one "flop" per multiply-add


def ptflops_count(name, entry):
    from ptflops import get_model_complexity_info
    from torchvision import models

    model = models.get_model(entry.arch).eval()
    macs, _ = get_model_complexity_info(model, (3, entry.resolution, entry.resolution),
                                        as_strings=False, print_per_layer_stat=False,
                                        verbose=False, backend="pytorch")
    return int(macs)


def main() -> None:
    from netfrontier.models.registry import resolve

    ours("resnet18")  # warm imports
    print(f"{'model':16s} {'published':>10s} | {'ours':>8s} {'s':>6s} | {'fvcore':>8s} {'s':>6s} | "
          f"{'ptflops':>8s} {'s':>6s}   (MAC totals relative to published)")
    totals = {"ours": 0.0, "fvcore": 0.0, "ptflops": 0.0}
    for name in MODELS:
        _, entry = resolve(name)
        ref = entry.ref_macs
        cells = []
        for label, fn in (("ours", lambda: ours(name)), ("fvcore", lambda: fvcore_count(name, entry)),
                          ("ptflops", lambda: ptflops_count(name, entry))):
            t0 = time.perf_counter()
            try:
                macs = fn()
                rel = f"{macs / ref:8.4f}"
            except Exception as exc:  # a counter that cannot handle the model
                rel = f"{type(exc).__name__[:8]:>8s}"
            dt = time.perf_counter() - t0
            totals[label] += dt
            cells.append(f"{rel} {dt:6.2f}")
        print(f"{name:16s} {ref / 1e9:9.3f}G | " + " | ".join(cells))
    print("total seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in totals.items()))


if __name__ == "__main__":
    main()
