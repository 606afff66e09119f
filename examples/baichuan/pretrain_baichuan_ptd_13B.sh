#!/bin/bash
# Baichuan-13B pretraining (ALiBi), 8-way tensor parallel, ported to ChuanSpeed.
#
# Seed: AscendSpeed's successor ModelLink (gitee ascend/ModelLink, "modellink" branch),
# examples/baichuan/pretrain_baichuan_ptd_13B.sh, the version that launches pretrain_baichuan.py
# (GitHub mirror aeeeeeep/ModelLink, commit 0e74293342a5237158b7e8406a557c8afee63ebd).
#
# Port:    torchrun $DISTRIBUTED_ARGS pretrain_baichuan.py ...
#     ->   mpirun -np $WORLD_SIZE --allow-run-as-root ${CHUANSPEED:-build/chuanspeed} train ...
# Flags:   every flag and value is AscendSpeed's, in AscendSpeed's order. Dropped flags: none.
# Dropped: the torchrun rendezvous variables NODE_RANK, MASTER_ADDR, MASTER_PORT (mpirun does its
#          own; for several nodes pass a hostfile through MPIRUN_ARGS, e.g. MPIRUN_ARGS="--hostfile hosts").
# Paths:   CKPT_SAVE_DIR, DATA_PATH, TOKENIZER_MODEL, CKPT_LOAD_DIR can be set from the environment;
#          the defaults are the ones AscendSpeed's README tells you to fill in.
# Fixed:   AscendSpeed's `--distributed-backend nccl \ ` has a space after the backslash, so the
#          command ended there: `--save ${CKPT_SAVE_DIR}` never reached pretrain_baichuan.py (a
#          stray " " argument did). Here --save is passed, as in AscendSpeed's 7B script.
# Extra arguments to this script are appended to `chuanspeed train`'s command line.
set -euo pipefail

export CUDA_DEVICE_MAX_CONNECTIONS=1

GPUS_PER_NODE=${GPUS_PER_NODE:-8}
NNODES=${NNODES:-1}
WORLD_SIZE=$((GPUS_PER_NODE*NNODES))

CKPT_SAVE_DIR=${CKPT_SAVE_DIR:-"./ckpt"}
DATA_PATH=${DATA_PATH:-"./dataset_baichuan13B/alpaca_text_document"}
TOKENIZER_MODEL=${TOKENIZER_MODEL:-"./baichuan-13B-hf/tokenizer.model"}
CKPT_LOAD_DIR=${CKPT_LOAD_DIR:-"./baichuan-13B-mt"}

CHUANSPEED=${CHUANSPEED:-build/chuanspeed}
read -r -a MPIRUN_EXTRA <<< "${MPIRUN_ARGS:-}"

TP=8
PP=1

GPT_ARGS=(
    --tensor-model-parallel-size "${TP}"
    --pipeline-model-parallel-size "${PP}"
    --sequence-parallel
    --num-layers 40
    --hidden-size 5120
    --ffn-hidden-size 13696
    --num-attention-heads 40
    --tokenizer-type Llama2Tokenizer
    --tokenizer-model "${TOKENIZER_MODEL}"
    --load "${CKPT_LOAD_DIR}"
    --seq-length 4096
    --max-position-embeddings 4096
    --micro-batch-size 1
    --global-batch-size 8
    --make-vocab-size-divisible-by 128
    --lr 1e-5
    --train-iters 5000
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
    --min-lr 1e-6
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
    --log-interval 1
    --save-interval 1000
    --eval-interval 1000
    --eval-iters 0
)

mpirun -np "${WORLD_SIZE}" --allow-run-as-root -x CUDA_DEVICE_MAX_CONNECTIONS ${MPIRUN_EXTRA[@]+"${MPIRUN_EXTRA[@]}"} \
    "${CHUANSPEED}" train \
    "${GPT_ARGS[@]}" \
    "${DATA_ARGS[@]}" \
    "${OUTPUT_ARGS[@]}" \
    --distributed-backend nccl \
    --save "${CKPT_SAVE_DIR}" \
    "$@"
