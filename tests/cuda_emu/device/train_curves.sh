#!/usr/bin/env bash
# bench/gpu_check.sh's loss-curve step in miniature, on the emulated GPU: chuanspeed built against
# it trains the demo model a few steps from the same weights and data, through the trainer's whole
# device path (gradient clipping, AdamW, the loss scaler's found-inf, metrics, checkpoints), and
# chuanspeed compare holds the runs to limits on the mean and max relative error of the losses.
#  precisions: on the CPU and on "cuda" in fp32, bf16 and fp16, with the check's limits: fp32 mean
#    relative error <= 1e-4 and max <= 1e-3, bf16 and fp16 mean <= 1e-2. The fp16 run starts its
#    loss scale at 2^12: from Megatron's 2^32 the scaler halves it through about ten skipped
#    (overflowing) steps first, which the first run here showed, as on a GPU. Then the fp32 run
#    stopped at iteration 4 and resumed must give the uninterrupted run's losses bit for bit, and
#    greedy decoding on "cuda" the CPU's tokens.
#  layouts: on "cuda" in one process and, under mpirun, TP2 with sequence parallelism, PP2 and DP2
#    with the distributed optimizer: the ranks' NCCL group (src/parallel/nccl_group.cpp) over the
#    emulated NCCL; every loss within 1e-5 relative of the one process's, as the CPU's layouts.
# Usage: train_curves.sh precisions|layouts CHUANSPEED SOURCE_DIR WORK_DIR
set -euo pipefail
MODE=$1 CS=$2 SRC=$3 W=$4
rm -rf "$W"
mkdir -p "$W"
"$CS" preprocess --input "$SRC/assets/demo/alpaca_demo.parquet" --output-prefix "$W/alpaca" \
  --tokenizer-name-or-path "$SRC/assets/demo/tokenizer" --handler-name alpaca --append-eod --workers 1 \
  --log-interval 0 > "$W/preprocess.log"
"$CS" init --model demo --vocab-size 1024 --seq-length 32 --seed 1234 --save "$W/init" > /dev/null
RUN=(train --data-path "$W/alpaca_text_document" --seq-length 32 --micro-batch-size 2 --global-batch-size 4
  --train-iters 8 --lr 3e-3 --min-lr 3e-4 --lr-warmup-iters 2 --lr-decay-style cosine --weight-decay 0.1
  --clip-grad 1.0 --adam-beta1 0.9 --adam-beta2 0.95 --log-interval 1 --split 98,2,0 --eval-iters 0)
INIT=(--load "$W/init")
MPI=(env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
  OMP_NUM_THREADS=1 mpirun --oversubscribe -np 2)
# train NAME RANKS FLAGS...: one run into $W/NAME (RANKS 1: without mpirun).
train() {
  local name=$1 ranks=$2
  shift 2
  local launch=()
  [[ $ranks != 1 ]] && launch=("${MPI[@]}")
  if ! "${launch[@]}" "$CS" "${RUN[@]}" "$@" --save "$W/$name" > "$W/train-$name.log" 2>&1; then
    echo "FAIL: training $name:"; tail -n 5 "$W/train-$name.log"; exit 1
  fi
}
fail=0
# curve REFERENCE NAME MEAN_LIMIT MAX_LIMIT: chuanspeed compare's errors against the limits.
curve() {
  "$CS" compare "$W/$1" "$W/$2" --tolerance 1 > "$W/compare-$2.txt" 2>&1 || true
  local mean max
  mean=$(grep -oE 'mean relative error[^0-9]*[0-9.e+-]+' "$W/compare-$2.txt" | grep -oE '[0-9.e+-]+$' | head -n 1)
  max=$(grep -oE 'max relative error[^0-9]*[0-9.e+-]+' "$W/compare-$2.txt" | grep -oE '[0-9.e+-]+$' | head -n 1)
  if awk -v m="${mean:-inf}" -v x="${max:-inf}" -v lm="$3" -v lx="$4" 'BEGIN { exit !(m <= lm && x <= lx) }'; then
    echo "$1 vs $2: mean relative error $mean (limit $3), max $max (limit $4): pass"
  else
    echo "FAIL: $1 vs $2: mean relative error ${mean:-?} (limit $3), max ${max:-?} (limit $4)"
    cat "$W/compare-$2.txt"
    fail=1
  fi
}
# losses NAME FROM TO: "iteration lm_loss" of iterations FROM..TO, every digit metrics.jsonl keeps.
losses() {
  sed -nE 's/.*"iteration":([0-9]+),.*"lm_loss":([^,]+),.*/\1 \2/p' "$W/$1/metrics.jsonl" |
    awk -v a="$2" -v b="$3" '$1 >= a && $1 <= b'
}
if [[ $MODE == precisions ]]; then
  train cpu-fp32 1 --device cpu "${INIT[@]}"
  train cuda-fp32 1 --device cuda "${INIT[@]}"
  train cuda-bf16 1 --device cuda --bf16 "${INIT[@]}"
  train cuda-fp16 1 --device cuda --fp16 --initial-loss-scale 4096 "${INIT[@]}"
  curve cpu-fp32 cuda-fp32 1e-4 1e-3
  curve cpu-fp32 cuda-bf16 1e-2 1
  curve cpu-fp32 cuda-fp16 1e-2 1
  # Stopped at iteration 4 and resumed from its checkpoint: the uninterrupted run's losses, bit for bit.
  train cuda-resumed 1 --device cuda --exit-interval 4 "${INIT[@]}"
  train cuda-resumed 1 --device cuda --load "$W/cuda-resumed"
  if [[ -n $(losses cuda-fp32 5 8) && $(losses cuda-fp32 5 8) == "$(losses cuda-resumed 5 8)" ]]; then
    echo "cuda-fp32 resumed at iteration 4: iterations 5-8 bit-identical: pass"
  else
    echo "FAIL: cuda-fp32 resumed at iteration 4 differs:"; diff <(losses cuda-fp32 5 8) <(losses cuda-resumed 5 8)
    fail=1
  fi
  # Greedy decoding of the CPU-trained model on the GPU: the CPU's tokens.
  gen=(generate --load "$W/cpu-fp32" --prompt-ids "1 5 9 33" --max-new-tokens 12)
  if [[ $("$CS" "${gen[@]}" --device cuda 2> /dev/null) == "$("$CS" "${gen[@]}" --device cpu 2> /dev/null)" ]]; then
    echo "generate on cuda: the CPU's tokens: pass"
  else
    echo "FAIL: generate on cuda differs from the CPU"; fail=1
  fi
else
  train one 1 --device cuda "${INIT[@]}"
  train tp2 2 --device cuda --tensor-model-parallel-size 2 --sequence-parallel "${INIT[@]}"
  train pp2 2 --device cuda --pipeline-model-parallel-size 2 "${INIT[@]}"
  train dp2 2 --device cuda --use-distributed-optimizer "${INIT[@]}"
  for layout in tp2 pp2 dp2; do curve one "$layout" 1e-5 1e-5; done
fi
exit $fail
