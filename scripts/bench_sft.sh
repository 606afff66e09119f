#!/usr/bin/env bash
# make bench-sft: instruction fine-tuning against pretraining on the same model and sequence length
# (the small config: 8 layers, hidden 512, ffn 1376, 8 heads, vocab 32000; seq 512, micro-batch 4,
# global batch 8), on the demo's 20,000 Alpaca records tokenized twice: as plain text (pretraining
# samples span documents) and as an instruction dataset with its loss mask. Figures: the median
# tokens/s/p of the training steps after the first two, the padding share the trainer reports, and
# the real (non-padding) tokens per second of each SFT run against pretraining's (no padding), as a
# ratio. Not a test; OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset for these commands only.
set -euo pipefail
BUILD=${1:-build}
BIN="$BUILD/chuanspeed"
WORK=${WORK:-$(mktemp -d /tmp/cs_bench_sft.XXXXXX)}
ITERS=${ITERS:-8}
TOK=assets/demo/tokenizer
MODEL="--model small --seq-length 512 --micro-batch-size 4 --global-batch-size 8"
run() { env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$@"; }

"$BIN" preprocess --input assets/demo/alpaca_demo.parquet --output-prefix "$WORK/plain" --tokenizer-name-or-path "$TOK" \
  --handler-name alpaca --append-eod --workers 2 --log-interval 0 > /dev/null
"$BIN" preprocess --input assets/demo/alpaca_demo.parquet --output-prefix "$WORK/sft" --tokenizer-name-or-path "$TOK" \
  --handler-name alpaca --is-instruction-dataset --append-eod --workers 2 --log-interval 0 > /dev/null

sgemm() { run "$BUILD/bench/model_bench" --sgemm-only | sed -n 's/^sgemm.*: \([0-9.]*\) GFLOP.*/\1/p'; }
SGEMM_BEFORE=$(sgemm)

median_tps() {  # metrics.jsonl: the median tokens/s/p after the first two iterations
  sed -n 's/.*"tokens_per_s_per_device":\([0-9.eE+-]*\).*/\1/p' "$1" | tail -n +3 | sort -g |
    awk '{ v[++k] = $1 } END { if (k == 0) print 0; else print (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2 }'
}
train() {  # name data flags...
  local name=$1 data=$2; shift 2
  run "$BIN" train $MODEL --train-iters "$ITERS" --lr 1e-4 --eval-iters 0 --log-interval 1 --split 100,0,0 \
    --data-path "$data" --save "$WORK/$name" --save-interval 100000 "$@" > "$WORK/$name.log" 2>&1
  local pad
  pad=$(sed -n 's/.*train split.*padding \([0-9.]*\)%.*/\1/p' "$WORK/$name.log")
  echo "$name $(median_tps "$WORK/$name/metrics.jsonl") ${pad:-0}"
}
{
  train pretrain "$WORK/plain_text_document"
  train sft-packed "$WORK/sft_text_document" --is-instruction-dataset --reset-attention-mask --reset-position-ids
  train sft-padded "$WORK/sft_text_document" --is-instruction-dataset
} > "$WORK/results.txt"

awk 'NR == 1 { base = $2 }
     { real = $2 * (1 - $3 / 100); printf "%-11s  tokens/s/p %8.1f  padding %6.2f%%  real tokens/s/p %8.1f  vs pretraining %.2fx\n", $1, $2, $3, real, real / base }' \
  "$WORK/results.txt"
SGEMM_AFTER=$(sgemm)
echo "sgemm 2048^3 before / after: $SGEMM_BEFORE / $SGEMM_AFTER GFLOP/s (about 450 on an idle 2-core machine here;"
echo "  far below that, the machine was busy: compare the ratios, publish no absolute figures)"
echo "(logs and metrics: $WORK)"
