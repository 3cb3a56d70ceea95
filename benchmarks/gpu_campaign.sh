#!/usr/bin/env bash
# The GPU measurement campaign behind the shipped h100-* profiles and their validation data.
# Run on a machine with a CUDA GPU, from the repository root:
#   OUT=/some/dir bash benchmarks/gpu_campaign.sh calibrate   # fit h100-fp16-{eager,cudagraph}
#   OUT=/some/dir bash benchmarks/gpu_campaign.sh zoo 1        # zoo latency at batch 1 (both runtimes)
#   OUT=/some/dir bash benchmarks/gpu_campaign.sh eager-session
#       the eager suite, then the eager zoo at batches 1, 8 and 32, then the eager repeatability
#       benchmark, all in one session on one host: eager timings are host-bound, and the host
#       of a rented GPU machine differs from session to session (every record carries
#       env.host_probe_us, the host's dispatch time when it was taken)
#   OUT=/some/dir bash benchmarks/gpu_campaign.sh qat   # EfficientNet-Lite0 W4A8 QAT on the GPU
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
    "$PY" benchmarks/repeatability.py --device cuda --dtype fp16 --runtime "${RUNTIME:-eager}" ;;
  eager-session)
    nf calibrate --name "$GPU-fp16-eager" --device cuda --runtime eager --dtype fp16 \
      --batch 1,8,32 --min-time "${MIN_TIME:-0.05}" --out "$OUT"
    RUNTIMES=eager MIN_TIME=0.3 "$0" zoo 1
    RUNTIMES=eager MIN_TIME=0.3 "$0" zoo 8
    RUNTIMES=eager MIN_TIME=0.3 "$0" zoo 32
    "$0" repeat > "$OUT/repeatability-eager.txt" ;;
  qat)
    "$PY" benchmarks/quantization.py --stages qat --device cuda --threads "$(nproc)" \
      --qat-augment crop --qat-lr "${QAT_LR:-1e-5,3e-5,1e-4}" --qat-epochs "${EPOCHS:-30}" \
      --qat-batch 32 ;;
  *) echo "usage: gpu_campaign.sh calibrate|zoo BATCH|repeat|eager-session|qat" >&2; exit 2 ;;
esac
