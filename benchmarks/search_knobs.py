"""Which Lite knobs pay without recovery: select top-1 and modelled latency of one knob moved.

EfficientNet-Lite0 at 224 px (unless --parent/--resolution), each variant built exactly as the
search builds it (inherited weights, removed channels' means folded from 64 tune images), its
top-1 on the 333 select images (never the test images) and its W8A8 latency on --hw. The
default search space keeps the knobs whose top-1 cost per latency saved is smallest.

    nice -n 10 .venv/bin/python benchmarks/search_knobs.py --hw img-series4-1core
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hw", default="img-series4-1core")
    ap.add_argument("--parent", default="efficientnet_lite0")
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--data", default=None)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from netfrontier.hardware.registry import get_hardware
    from netfrontier.measure.accuracy import default_data_dir
    from netfrontier.search.ladder import Evaluator
    from netfrontier.search.space import SearchSpace

    hw = get_hardware(args.hw)
    sp = SearchSpace(parents=(args.parent,), resolutions=tuple(sorted({args.resolution, 192})),
                     widths=(1.0, 0.875, 0.75), kernels=(5, 3)).for_chip(hw)
    ev = Evaluator(sp, hw, str(args.data or default_data_dir()), threads=args.threads)
    knobs = sp.knobs()
    ws = [k for k in knobs if k.startswith("w")]
    base = {"parent": args.parent, "resolution": args.resolution}
    variants = [("unchanged", {}), ("resolution 192", {"resolution": 192})]
    variants += [(f"drop 1 block of stage {k[4:]}", {k: 1}) for k in knobs
                 if k.startswith("drop")]
    variants += [(f"3×3 kernels in stage {k[1:]}", {k: 3}) for k in knobs
                 if k.startswith("k")]
    variants += [("every block at width 0.875", {k: 0.875 for k in ws})]
    stages = sorted({k[1:].split("_")[0] for k in ws}, key=int)
    variants += [(f"stage {s} at width 0.75", {k: 0.75 for k in ws if k.startswith(f"w{s}_")})
                 for s in stages]
    print(f"# {args.parent} at {args.resolution} px on {hw.name}: one knob at a time, no "
          "recovery; select top-1 (333 images) and W8A8 latency")
    print(f"{'variant':32s} {'select top-1':>12s} {'Δ top-1':>8s} {'latency ms':>10s} "
          f"{'Δ latency':>9s} {'points per 1% latency':>22s}")
    ref = None
    for name, extra in variants:
        t = time.time()
        c = sp.candidate({**base, **extra})
        top1 = ev.measure(c)["top1"]
        lat = ev.cost(c)["latency_ms"]
        ref = ref or (top1, lat)
        dt, dl = top1 - ref[0], 100 * (lat / ref[1] - 1)
        rate = f"{dt / dl:.2f}" if dl < -0.05 else "-"
        print(f"{name:32s} {top1:12.1f} {dt:+8.1f} {lat:10.3f} {dl:+8.1f}% {rate:>22s}"
              f"   ({time.time() - t:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
