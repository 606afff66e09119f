#!/usr/bin/env bash
# bench/gpu_check.sh's loss-curve step in miniature, on the emulated GPU (ctest
# EmulatedGpu.TrainingCurvesMatchTheCpu): chuanspeed built against it trains the demo model a few
# steps on the CPU and on "cuda" in fp32, bf16 and fp16 (the loss scaler) from the same weights
# and data, through the trainer's whole device path (gradient clipping, AdamW, the scaler's
# found-inf, metrics, checkpoints), and chuanspeed compare holds the GPU runs to the check's
# limits: fp32 mean relative error <= 1e-4 and max <= 1e-3, bf16 and fp16 mean <= 1e-2. The fp16
# run starts its loss scale at 2^12: from Megatron's 2^32 the scaler halves it through about ten
# skipped (overflowing) steps first, which the first run here showed, as on a GPU.
# Usage: train_curves.sh CHUANSPEED SOURCE_DIR WORK_DIR
set -euo pipefail
CS=$1 SRC=$2 W=$3
rm -rf "$W"
mkdir -p "$W"
"$CS" preprocess --input "$SRC/assets/demo/alpaca_demo.parquet" --output-prefix "$W/alpaca" \
  --tokenizer-name-or-path "$SRC/assets/demo/tokenizer" --handler-name alpaca --append-eod --workers 1 \
  --log-interval 0 > "$W/preprocess.log"
"$CS" init --model demo --vocab-size 1024 --seq-length 32 --seed 1234 --save "$W/init" > /dev/null
RUN=(train --data-path "$W/alpaca_text_document" --seq-length 32 --micro-batch-size 2 --global-batch-size 4
  --train-iters 8 --lr 3e-3 --min-lr 3e-4 --lr-warmup-iters 2 --lr-decay-style cosine --weight-decay 0.1
  --clip-grad 1.0 --adam-beta1 0.9 --adam-beta2 0.95 --log-interval 1 --split 98,2,0 --eval-interval 100000
  --load "$W/init")
for run in "cpu fp32" "cuda fp32" "cuda bf16" "cuda fp16"; do
  set -- $run
  flags=()
  [[ $2 != fp32 ]] && flags=("--$2")
  [[ $2 == fp16 ]] && flags+=(--initial-loss-scale 4096)
  if ! "$CS" "${RUN[@]}" --device "$1" "${flags[@]}" --save "$W/$1-$2" > "$W/train-$1-$2.log" 2>&1; then
    echo "FAIL: training $1 $2:"; tail -n 5 "$W/train-$1-$2.log"; exit 1
  fi
done
fail=0
for check in "cuda-fp32 1e-4 1e-3" "cuda-bf16 1e-2 1" "cuda-fp16 1e-2 1"; do
  set -- $check
  "$CS" compare "$W/cpu-fp32" "$W/$1" --tolerance 1 > "$W/compare-$1.txt" 2>&1 || true
  mean=$(grep -oE 'mean relative error[^0-9]*[0-9.e+-]+' "$W/compare-$1.txt" | grep -oE '[0-9.e+-]+$' | head -n 1)
  max=$(grep -oE 'max relative error[^0-9]*[0-9.e+-]+' "$W/compare-$1.txt" | grep -oE '[0-9.e+-]+$' | head -n 1)
  if awk -v m="${mean:-inf}" -v x="${max:-inf}" -v lm="$2" -v lx="$3" 'BEGIN { exit !(m <= lm && x <= lx) }'; then
    echo "cpu-fp32 vs $1: mean relative error $mean (limit $2), max $max (limit $3): pass"
  else
    echo "FAIL: cpu-fp32 vs $1: mean relative error ${mean:-?} (limit $2), max ${max:-?} (limit $3)"
    cat "$W/compare-$1.txt"
    fail=1
  fi
done
exit $fail
