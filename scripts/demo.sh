#!/usr/bin/env bash
# make demo: the whole pipeline on the bundled demo corpus (assets/demo, docs/data.md), one CPU
# process: preprocess the alpaca-style parquet with the demo SentencePiece tokenizer, train a tiny
# Baichuan (RoPE) on it with Megatron's flags and validation, stop half way and resume
# bit-identically, train the first 120 iterations again in bf16 and compare the loss curves, run
# AscendSpeed's 13B launch script scaled down (ALiBi), evaluate on held-out
# questions before and after, and answer them with the trained model; then fine-tune it on the
# instruction split with the loss on the answers only and samples packed, and answer again.
set -euo pipefail
BUILD=${1:-build}
BIN=$BUILD/chuanspeed
OUT=out/demo
TOK=assets/demo/tokenizer
rm -rf "$OUT" out/tiny-run; mkdir -p "$OUT/data"
echo "== 1. preprocess: assets/demo/alpaca_demo.parquet (20,000 instructions, Alpaca template) -> $OUT/data/alpaca_text_document"
"$BIN" preprocess --input assets/demo/alpaca_demo.parquet --output-prefix "$OUT/data/alpaca" \
  --tokenizer-name-or-path "$TOK" --tokenizer-type PretrainedFromHF --handler-name alpaca --append-eod \
  --workers 2 --log-interval 10000
"$BIN" preprocess --input assets/demo/heldout.jsonl --output-prefix "$OUT/data/heldout" \
  --tokenizer-name-or-path "$TOK" --handler-name alpaca --append-eod --log-interval 0 | tail -n 1
"$BIN" preprocess --input assets/demo/conversations_demo.json --output-prefix "$OUT/data/conversations" \
  --tokenizer-name-or-path "$TOK" --handler-name conversation --log-interval 0 | tail -n 1
echo "== 2. a freshly initialised tiny Baichuan (RoPE, 4 layers, hidden 128, vocab 1024) -> $OUT/init"
"$BIN" init --model demo --vocab-size 1024 --seq-length 128 --seed 1234 --save "$OUT/init"
BASE=(train --data-path "$OUT/data/alpaca_text_document" --seq-length 128
  --micro-batch-size 16 --global-batch-size 32 --train-iters 480 --lr 3e-3 --min-lr 3e-4
  --lr-warmup-iters 10 --lr-decay-style cosine --weight-decay 0.1 --clip-grad 1.0
  --adam-beta1 0.9 --adam-beta2 0.95 --log-interval 20 --split 98,2,0 --eval-interval 120 --eval-iters 4)
TRAIN=("${BASE[@]}" --save "$OUT/run" --save-interval 120 --tensorboard-dir "$OUT/tensorboard")
echo "== 3. train it: 480 iterations of 32 x 128 tokens (~2.5 minutes), cosine lr, validation every 120;"
echo "      --exit-interval 240 saves a native checkpoint at 240 and stops"
"$BIN" "${TRAIN[@]}" --load "$OUT/init" --exit-interval 240
echo "== 3b. resume from $OUT/run (weights, Adam state, schedule, data cursor) to 480"
"$BIN" "${TRAIN[@]}" --load "$OUT/run"
ls "$OUT/run"
echo "== 3c. the first 120 iterations again with --bf16 (bf16 parameters, GEMMs and attention, fp32 master"
echo "      weights and gradients), from the same weights and data; its loss curve against the fp32 run's"
"$BIN" "${BASE[@]}" --load "$OUT/init" --bf16 --save "$OUT/bf16" --exit-interval 120 2>&1 | tail -n 2
"$BIN" compare "$OUT/run" "$OUT/bf16" --to-iter 120 | tail -n 5
echo "== 4. AscendSpeed's 13B launch script, scaled down (ALiBi, --fp16 loss scaling on the fp32 path)"
DATA_PATH="$OUT/data/alpaca_text_document" TOKENIZER_MODEL="$TOK/tokenizer.model" \
  bash examples/baichuan/pretrain_baichuan_tiny.sh 2>&1 | tail -n 3
for m in init run/hf; do
  echo "== eval ($m) on the 200 held-out questions -> $OUT/eval-${m%%/*}.jsonl"
  "$BIN" eval --load "$OUT/$m" --data-path "$OUT/data/heldout_text_document" --seq-length 128 \
    --micro-batch-size 16 --output "$OUT/eval-${m%%/*}.jsonl"
done
echo "== the untrained model scores about ln(1024) = 6.93 nats per token; the trained one far less"
echo "== 5. generate (KV cache, greedy): the untrained model, then the trained one, answer the held-out questions"
"$BIN" generate --load "$OUT/init" --tokenizer-name-or-path "$TOK" --prompt-file assets/demo/heldout.jsonl \
  --max-new-tokens 12 > "$OUT/answers-init.txt"
echo "untrained ($OUT/answers-init.txt): $(tail -n 1 "$OUT/answers-init.txt")"
echo "trained ($OUT/answers.txt):"
"$BIN" generate --load "$OUT/run" --tokenizer-name-or-path "$TOK" --prompt-file assets/demo/heldout.jsonl \
  --max-new-tokens 12 > "$OUT/answers.txt"
head -n 6 "$OUT/answers.txt"
tail -n 1 "$OUT/answers.txt"
"$BIN" generate --load "$OUT/run" --tokenizer-name-or-path "$TOK" --max-new-tokens 12 --temperature 0.7 --top-k 8 \
  --seed 1 --prompt "$(printf 'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nWhat is 12 + 30?\n\n### Response:\n')"
echo "== 6. instruction fine-tuning: the same records with a loss mask (answers trained, prompts context),"
echo "      packed 256-token sequences (--reset-attention-mask --reset-position-ids), from the trained model"
"$BIN" preprocess --input assets/demo/alpaca_demo.parquet --output-prefix "$OUT/data/sft" \
  --tokenizer-name-or-path "$TOK" --handler-name alpaca --is-instruction-dataset --append-eod \
  --workers 2 --log-interval 0 | tail -n 1
"$BIN" train --load "$OUT/run" --finetune --data-path "$OUT/data/sft_text_document" --is-instruction-dataset \
  --reset-attention-mask --reset-position-ids --seq-length 256 --micro-batch-size 8 --global-batch-size 16 \
  --train-iters 150 --lr 1e-3 --min-lr 1e-4 --lr-warmup-iters 5 --lr-decay-style cosine --weight-decay 0.1 \
  --clip-grad 1.0 --adam-beta2 0.95 --log-interval 50 --split 98,2,0 --eval-interval 75 --eval-iters 4 \
  --save "$OUT/sft" --save-interval 150
echo "== 7. the held-out questions again, after instruction fine-tuning (answer tokens only: eval --is-instruction-dataset)"
"$BIN" preprocess --input assets/demo/heldout.jsonl --output-prefix "$OUT/data/heldout-sft" \
  --tokenizer-name-or-path "$TOK" --handler-name alpaca --is-instruction-dataset --append-eod --log-interval 0 | tail -n 1
for m in run sft; do
  "$BIN" eval --load "$OUT/$m" --data-path "$OUT/data/heldout-sft_text_document" --is-instruction-dataset \
    --seq-length 128 --micro-batch-size 16 --output "$OUT/eval-answers-$m.jsonl" | sed "s/^/$m: /"
done
"$BIN" generate --load "$OUT/sft" --tokenizer-name-or-path "$TOK" --prompt-file assets/demo/heldout.jsonl \
  --max-new-tokens 12 > "$OUT/answers-sft.txt"
echo "exact match before fine-tuning ($OUT/answers.txt): $(tail -n 1 "$OUT/answers.txt")"
echo "exact match after  fine-tuning ($OUT/answers-sft.txt): $(tail -n 1 "$OUT/answers-sft.txt")"
echo "== metrics: $OUT/run/metrics.jsonl, $OUT/sft/metrics.jsonl; TensorBoard: $OUT/tensorboard"
