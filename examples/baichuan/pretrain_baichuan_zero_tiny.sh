#!/bin/bash
# AscendSpeed's Baichuan-7B ZeRO-2 launch (pretrain_baichuan_zero_7B.sh) scaled down to 2 ranks on a
# small CPU: the same script, flags and ds_config.json, with
#   model     2 layers, hidden 64, FFN 176, 4 heads, seq 64; the first layer recomputed
#             (--checkpoint_block_layer 1, AscendSpeed's block policy)
#   batch     micro-batch 2, global batch 8 (2 micro-batches per rank a step)
#   run       60 iterations, 2 ranks (mpirun --oversubscribe when there are fewer cores)
#   tokenizer ids only: --tokenizer-type NullTokenizer --vocab-size 1024 (the demo tokenizer's pieces)
#   lr        AscendSpeed's --lr 1e-5 and --min-lr 1e-6 (as AscendSpeed's: a slow start from random weights)
#
#   make demo                                   # once: writes out/demo/data/alpaca_text_document.{bin,idx}
#   bash examples/baichuan/pretrain_baichuan_zero_tiny.sh
# Environment: DATA_PATH, SAVE, CHUANSPEED, RANKS, MPIRUN_ARGS (as root: --allow-run-as-root).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DATA_PATH=${DATA_PATH:-out/demo/data/alpaca_text_document}
SAVE=${SAVE:-out/zero-tiny-run}
if [ ! -f "${DATA_PATH}.idx" ] || [ ! -f "${DATA_PATH}.bin" ]; then
    echo "pretrain_baichuan_zero_tiny.sh: no dataset at ${DATA_PATH}.{bin,idx}; run 'make demo' or" >&2
    echo "  ${CHUANSPEED:-build/chuanspeed} synth-data --output-prefix ${DATA_PATH} --vocab-size 1024 --num-docs 64 --seed 7" >&2
    exit 2
fi
mkdir -p "${SAVE}"
DATA_PATH="${DATA_PATH}" CHECKPOINT_PATH="${SAVE}" DS_CONFIG="${SAVE}/ds_config.json" LOG_DIR="${SAVE}" \
GPUS_PER_NODE=${RANKS:-2} NNODES=1 MPIRUN_ARGS="--oversubscribe ${MPIRUN_ARGS:-}" \
NUM_LAYERS=2 HIDDEN_SIZE=64 FFN_HIDDEN_SIZE=176 NUM_HEADS=4 SEQ_LENGTH=64 MICRO_BATCH=2 GLOBAL_BATCH=8 \
TRAIN_ITERS=60 RECOMPUTE_LAYERS=1 TOKENIZER_ARGS="--tokenizer-type NullTokenizer --vocab-size 1024" \
    bash "${HERE}/pretrain_baichuan_zero_7B.sh" "$@"
