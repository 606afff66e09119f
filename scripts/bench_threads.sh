#!/usr/bin/env bash
# make bench-threads: a training run on cores another process shares. LOAD busy loops (default 2,
# one per core here) run beside the demo's training (tiny Baichuan, 32 x 128 tokens per iteration,
# ITERS iterations, default 60) with --threads 2, --threads 1 and --adaptive-threads; prints each
# run's wall time, median ms/iteration overall and over its last half, and the thread changes
# --adaptive-threads logged. Needs `make demo`'s out/demo (its initial weights and data).
set -euo pipefail
BUILD=${1:-build}
OUT=${OUT:-out/demo}
ITERS=${ITERS:-60}
LOAD=${LOAD:-2}
if [[ ! -d "$OUT/init" || ! -f "$OUT/data/alpaca_text_document.bin" ]]; then
  echo "bench-threads: $OUT/init and $OUT/data are missing; run 'make demo' first" >&2
  exit 1
fi
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq "$LOAD"); do (while :; do :; done) & pids+=($!); done
echo "== $LOAD busy loops share the $(nproc) cores; $ITERS iterations of the demo's training each"
for mode in "--threads 2" "--threads 1" "--adaptive-threads"; do
  rm -rf "$work/run"
  start=$(date +%s.%N)
  # shellcheck disable=SC2086
  env -u OMP_NUM_THREADS "$BUILD/chuanspeed" train --load "$OUT/init" --data-path "$OUT/data/alpaca_text_document" \
    --seq-length 128 --micro-batch-size 16 --global-batch-size 32 --train-iters "$ITERS" --lr 3e-3 \
    --log-interval 1 --split 98,2,0 --eval-iters 0 --save "$work/run" $mode > "$work/log.txt" 2>&1
  end=$(date +%s.%N)
  "${PYTHON:-python3}" - "$mode" "$start" "$end" "$work/run/metrics.jsonl" <<'PY'
import json, statistics, sys
ms = [json.loads(l)["elapsed_ms_per_iter"] for l in open(sys.argv[4])]
print(f"{sys.argv[1]:20s} wall {float(sys.argv[3]) - float(sys.argv[2]):7.1f} s   median {statistics.median(ms):7.1f} ms/iteration"
      f"   last half {statistics.median(ms[len(ms) // 2:]):7.1f}")
PY
  grep "\[threads\]" "$work/log.txt" | sed 's/^/    /' | head -5 || true
done
