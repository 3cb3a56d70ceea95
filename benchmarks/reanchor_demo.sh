#!/usr/bin/env bash
# Re-anchoring on another day: the shipped CPU profile (fitted in an earlier session) is
# re-anchored today, then both are validated against zoo timings taken today.
#   OUT=data/cpu/reanchor bash benchmarks/reanchor_demo.sh     # ~5 minutes on the 2-core machine
# Writes $OUT/measurements.jsonl (today's timings), $OUT/cpu-2core-fp32-eager.yaml (re-anchored),
# $OUT/validation_{original,reanchored}/ and $OUT/summary.txt.
set -euo pipefail
NF=${NF:-.venv/bin/netfrontier}
OUT=${OUT:-data/cpu/reanchor}
MODELS=${MODELS:-"alexnet convnext_tiny densenet121 efficientnet_b0 efficientnet_b3 googlenet mnasnet1_0 mobilenet_v2 mobilenet_v3_large regnet_x_800mf regnet_y_400mf resnet18 resnet50 resnext50_32x4d shufflenet_v2_x1_0 squeezenet1_1 swin_t vgg11 vit_b_32 wide_resnet50_2"}
mkdir -p "$OUT"
rm -f "$OUT/measurements.jsonl"
{
  echo "# $(date -u +%FT%TZ) on $(hostname), load: $(cut -d' ' -f1-3 /proc/loadavg)"
  $NF calibrate --reanchor cpu-2core-fp32-eager --out "$OUT" 2>/dev/null
  for m in $MODELS; do
    $NF bench "$m" --device cpu --batch 1 --min-time 0.5 --min-runs 3 --out "$OUT" 2>/dev/null
  done
  echo "# original profile (fitted in an earlier session) against today's timings"
  $NF validate --hw cpu-2core-fp32-eager --measurements "$OUT/measurements.jsonl" --out "$OUT/validation_original" 2>/dev/null
  echo "# re-anchored today against today's timings"
  $NF validate --hw "$OUT/cpu-2core-fp32-eager.yaml" --measurements "$OUT/measurements.jsonl" --no-drift --out "$OUT/validation_reanchored" 2>/dev/null
  echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/summary.txt"
