"""Time only the micro-benchmark cases a raw calibration file lacks, and append them to it.

The suite grows (repeated-op cases, new kinds) after a device was measured; rather than re-run
all of it, this times the missing cases on the same kind of device and runtime and writes them
as records of the same form, one JSON line each, flushed as they come (under eager, the
repeated-op, chain and block cases also as CUDA-graph replays, as `run_suite` does):

    python benchmarks/calibrate_new_cases.py --have data/gpu-h100/h100-fp16-eager.calibration.jsonl \
        --runtime eager --out new-eager.jsonl
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--have", required=True, help="raw calibration jsonl measured before")
    ap.add_argument("--runtime", required=True)
    ap.add_argument("--dtype", default="fp16")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", default="1,8,32")
    ap.add_argument("--min-time", type=float, default=0.1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    from netfrontier.measure import calibrate, microbench

    have = {json.loads(line)["case"] for line in open(a.have) if line.strip()}
    full = microbench.suite
    todo = [c for c in full(tuple(int(b) for b in a.batch.split(","))) if c.name not in have]
    print(f"{len(todo)} new cases", flush=True)
    with open(a.out, "a") as sink:
        for start in range(0, len(todo), 50):  # written in chunks: a cut-off run keeps its data
            chunk = todo[start:start + 50]
            microbench.suite = lambda batches, quick=False: chunk
            for r in calibrate.run_suite(a.device, a.runtime, a.dtype, (),
                                         min_time_s=a.min_time):
                sink.write(json.dumps(r) + "\n")
            sink.flush()
            print(f"{start + len(chunk)}/{len(todo)} {chunk[-1].name}", flush=True)


if __name__ == "__main__":
    main()
