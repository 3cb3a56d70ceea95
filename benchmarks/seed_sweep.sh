#!/usr/bin/env bash
# The tests that train, over seeds, ATen CPU capabilities and thread counts: each line is one
# run (pass/fail). Margins in tests/test_quantize.py are set from this.
#   bash benchmarks/seed_sweep.sh [SEEDS] [CAPABILITIES] [THREADS]
set -uo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-"0 1 2 3 4 5 6 7 8 9"}
caps=${2:-"default avx2 avx512"}
threads=${3:-"1 2"}
for cap in $caps; do for th in $threads; do for seed in $seeds; do
  out=$(ATEN_CPU_CAPABILITY=$cap NETFRONTIER_TEST_THREADS=$th NETFRONTIER_TEST_SEED=$seed \
        .venv/bin/python -m pytest -q tests/test_quantize.py 2>&1 | grep -E "^FAILED|passed|failed")
  echo "capability=$cap threads=$th seed=$seed: $(echo "$out" | tr '\n' ' ')"
done; done; done
