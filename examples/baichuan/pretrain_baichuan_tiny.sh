#!/bin/bash
# A tiny Baichuan-13B-style model (ALiBi) trained by one process on a small CPU: the flags of
# pretrain_baichuan_ptd_13B.sh, with the model, batch, schedule and parallelism scaled down.
# Run it directly, no mpirun:
#
#   make demo                                   # once: writes out/demo/data/alpaca_text_document.{bin,idx}
#   bash examples/baichuan/pretrain_baichuan_tiny.sh
#
# Changed from the 13B script (everything else is AscendSpeed's 13B flag and value):
#   model     --num-layers 2 --hidden-size 64 --ffn-hidden-size 176 --num-attention-heads 4
#             --seq-length 64 --max-position-embeddings 64
#   batch     --micro-batch-size 4 --global-batch-size 8 (two accumulated micro-batches a step)
#   parallel  --tensor-model-parallel-size 1 --pipeline-model-parallel-size 1 (one process;
#             --sequence-parallel is kept and, as in Megatron, means nothing with TP = 1)
#   schedule  --train-iters 60 --lr 1e-3 --min-lr 1e-4 (AscendSpeed's 10:1 ratio; 1e-5 would barely
#             move a freshly initialised model in 60 steps), --lr-warmup-fraction 0.1 (6 steps)
#   output    --log-interval 5 --save-interval 30 --eval-interval 30 --save ${SAVE:-out/tiny-run}
#   weights   no --load: random init (--no-load-optim/--no-load-rng are kept and do nothing here; with
#             an appended --load RUN_DIR they restart Adam, the lr schedule and the loss scaler, as in
#             Megatron: append --load RUN_DIR --resume to continue the run exactly)
#   tokenizer ids only: --tokenizer-type NullTokenizer --vocab-size 1024 (the demo tokenizer's 1024 pieces)
#             (Megatron's id-only tokenizer); set TOKENIZER_MODEL to use Llama2Tokenizer as AscendSpeed's script does
# Environment: DATA_PATH, SAVE, TOKENIZER_MODEL, VOCAB_SIZE, CHUANSPEED. Extra arguments are
# appended to `chuanspeed train`'s command line.
set -euo pipefail

CHUANSPEED=${CHUANSPEED:-build/chuanspeed}
DATA_PATH=${DATA_PATH:-out/demo/data/alpaca_text_document}
SAVE=${SAVE:-out/tiny-run}
VOCAB_SIZE=${VOCAB_SIZE:-1024}

if [ ! -f "${DATA_PATH}.idx" ] || [ ! -f "${DATA_PATH}.bin" ]; then
    echo "pretrain_baichuan_tiny.sh: no dataset at ${DATA_PATH}.{bin,idx}; run 'make demo' or" >&2
    echo "  ${CHUANSPEED} synth-data --output-prefix ${DATA_PATH} --vocab-size ${VOCAB_SIZE} --num-docs 64 --seed 7" >&2
    exit 2
fi

if [ -n "${TOKENIZER_MODEL:-}" ]; then
    TOKENIZER_ARGS=(--tokenizer-type Llama2Tokenizer --tokenizer-model "${TOKENIZER_MODEL}")
else
    TOKENIZER_ARGS=(--tokenizer-type NullTokenizer --vocab-size "${VOCAB_SIZE}")
fi

TP=1
PP=1

GPT_ARGS=(
    --tensor-model-parallel-size "${TP}"
    --pipeline-model-parallel-size "${PP}"
    --sequence-parallel
    --num-layers 2
    --hidden-size 64
    --ffn-hidden-size 176
    --num-attention-heads 4
    "${TOKENIZER_ARGS[@]}"
    --seq-length 64
    --max-position-embeddings 64
    --micro-batch-size 4
    --global-batch-size 8
    --make-vocab-size-divisible-by 128
    --lr 1e-3
    --train-iters 60
    --lr-decay-style cosine
    --untie-embeddings-and-output-weights
    --disable-bias-linear
    --attention-dropout 0.0
    --init-method-std 0.01
    --hidden-dropout 0.0
    --position-embedding-type alibi
    --normalization RMSNorm
    --use-fused-rmsnorm
    --swiglu
    --no-masked-softmax-fusion
    --attention-softmax-in-fp32
    --min-lr 1e-4
    --weight-decay 1e-1
    --lr-warmup-fraction 0.1
    --clip-grad 1.0
    --adam-beta1 0.9
    --initial-loss-scale 8188.0
    --adam-beta2 0.95
    --no-gradient-accumulation-fusion
    --no-load-optim
    --no-load-rng
    --fp16
)

DATA_ARGS=(
    --data-path "${DATA_PATH}"
    --split "949,50,1"
)

OUTPUT_ARGS=(
    --log-interval 5
    --save-interval 30
    --eval-interval 30
    --eval-iters 0
)

"${CHUANSPEED}" train \
    "${GPT_ARGS[@]}" \
    "${DATA_ARGS[@]}" \
    "${OUTPUT_ARGS[@]}" \
    --distributed-backend nccl \
    --save "${SAVE}" \
    "$@"
