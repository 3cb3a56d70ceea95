#!/usr/bin/env bash
# The GPU measurement campaign behind the shipped h100-* profiles and their validation data.
# Run on a machine with a CUDA GPU, from the repository root:
#   OUT=/some/dir bash benchmarks/gpu_campaign.sh calibrate   # fit h100-fp16-{eager,cudagraph}
#   OUT=/some/dir bash benchmarks/gpu_campaign.sh zoo 1        # zoo latency at batch 1 (both runtimes)
# Then copy $OUT/*.yaml to src/netfrontier/hardware/presets/ and the raw data to data/.
set -euo pipefail
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PY:-python3}
OUT=${OUT:?set OUT to an output directory}
GPU=${GPU:-h100}
export NETFRONTIER_STORE="$OUT/store.sqlite"
nf() { "$PY" -c "from netfrontier.cli import main; main()" "$@"; }
case "$1" in
  calibrate)
    for rt in eager cudagraph; do
      nf calibrate --name "$GPU-fp16-$rt" --device cuda --runtime "$rt" --dtype fp16 \
        --batch 1,8,32 --min-time "${MIN_TIME:-0.1}" --out "$OUT"
    done ;;
  zoo)
    for rt in ${RUNTIMES:-eager cudagraph}; do
      nf bench --zoo --device cuda --runtime "$rt" --dtype fp16 --batch "$2" \
        --min-time "${MIN_TIME:-0.3}" --out "$OUT/$rt" ${FILTER:+--filter "$FILTER"}
      mv "$OUT/$rt/measurements.jsonl" "$OUT/zoo-$GPU-fp16-$rt-b$2.jsonl"
    done ;;
  repeat)
    "$PY" benchmarks/repeatability.py --device cuda --dtype fp16 --runtime eager ;;
  *) echo "usage: gpu_campaign.sh calibrate|zoo BATCH|repeat" >&2; exit 2 ;;
esac
