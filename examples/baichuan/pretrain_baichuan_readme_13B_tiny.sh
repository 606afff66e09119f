#!/bin/bash
# AscendSpeed's README Baichuan-13B script (pretrain_baichuan_readme_13B.sh) scaled down to 2 ranks
# on a small CPU: the same script and flags (tensor parallelism with --sequence-parallel, ALiBi,
# fp16 loss scaling), with
#   model     2 layers, hidden 64, FFN 176, 4 heads, seq 64, TP 2 (2 heads per rank)
#   batch     micro-batch 1, global batch 8
#   run       40 iterations, 2 ranks (mpirun --oversubscribe when there are fewer cores); no --load
#   tokenizer ids only: --tokenizer-type NullTokenizer --vocab-size 1024 (the demo tokenizer's pieces)
#
#   make demo                                   # once: writes out/demo/data/alpaca_text_document.{bin,idx}
#   bash examples/baichuan/pretrain_baichuan_readme_13B_tiny.sh
# Environment: DATA_PATH, SAVE, CHUANSPEED, RANKS, MPIRUN_ARGS (as root: --allow-run-as-root).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DATA_PATH=${DATA_PATH:-out/demo/data/alpaca_text_document}
SAVE=${SAVE:-out/readme-13b-tiny-run}
if [ ! -f "${DATA_PATH}.idx" ] || [ ! -f "${DATA_PATH}.bin" ]; then
    echo "pretrain_baichuan_readme_13B_tiny.sh: no dataset at ${DATA_PATH}.{bin,idx}; run 'make demo' or" >&2
    echo "  ${CHUANSPEED:-build/chuanspeed} synth-data --output-prefix ${DATA_PATH} --vocab-size 1024 --num-docs 64 --seed 7" >&2
    exit 2
fi
mkdir -p "${SAVE}"
DATA_PATH="${DATA_PATH}" CHECKPOINT_PATH="${SAVE}" LOG_DIR="${SAVE}/logs" LOAD_ARGS="" \
NPUS_PER_NODE=${RANKS:-2} NNODES=1 MPIRUN_ARGS="--oversubscribe ${MPIRUN_ARGS:-}" \
TP=${RANKS:-2} NUM_LAYERS=2 HIDDEN_SIZE=64 FFN_HIDDEN_SIZE=176 NUM_HEADS=4 SEQ_LENGTH=64 MICRO_BATCH=1 GLOBAL_BATCH=8 \
TRAIN_ITERS=40 EVAL_ITERS=2 TOKENIZER_ARGS="--tokenizer-type NullTokenizer --vocab-size 1024" \
    bash "${HERE}/pretrain_baichuan_readme_13B.sh" "$@"
