#!/bin/bash
# The Baichuan-13B pretraining script of AscendSpeed's Baichuan README ("Config Baichuan-13B
# pre-training script"): 8-way tensor parallelism with sequence parallelism, ALiBi, fp16, with
# `python -m torch.distributed.launch $DISTRIBUTED_ARGS pretrain_baichuan.py` replaced by
# `mpirun -np $WORLD_SIZE chuanspeed train`. Every flag and value is the README's, in its order.
# (pretrain_baichuan_ptd_13B.sh beside it is ModelLink's later version of the same launch.)
#
# What changed, and why:
#   launcher  torchrun's rendezvous (MASTER_ADDR, MASTER_PORT, NODE_RANK) is mpirun's; several
#             nodes: MPIRUN_ARGS="--hostfile hosts".
#   NPU env   LD_LIBRARY_PATH (miniconda), HCCL_CONNECT_TIMEOUT and `rm -rf kernel_meta*` are for
#             Ascend NPUs and dropped; a collective's deadline is --distributed-timeout-minutes.
#   logs      the README pipes into `tee logs/loss_<date>.log` without creating logs/ (tee fails
#             and the log is lost): created here (LOG_DIR).
#   --load    ./weight must be a Hugging Face Baichuan-13B directory or a chuanspeed checkpoint
#             (`chuanspeed convert`); LOAD_ARGS="" trains from scratch.
# Accepted and noted once: --DDP-impl local, --tokenizer-not-use-fast, --data-impl mmap,
# --distributed-backend nccl. On CPU --fp16 keeps fp32 arithmetic with the dynamic loss scaler.
# Environment: DATA_PATH, TOKENIZER_PATH, CHECKPOINT_PATH, LOAD_ARGS, NPUS_PER_NODE, NNODES,
# CHUANSPEED, MPIRUN_ARGS, LOG_DIR; the model and run sizes (TP, NUM_LAYERS, HIDDEN_SIZE,
# FFN_HIDDEN_SIZE, NUM_HEADS, SEQ_LENGTH, MICRO_BATCH, GLOBAL_BATCH, TRAIN_ITERS, EVAL_ITERS,
# TOKENIZER_ARGS) default to the README's, so pretrain_baichuan_readme_13B_tiny.sh runs the same
# script scaled down. Extra arguments are appended to `chuanspeed train`'s command line.
set -euo pipefail

CHUANSPEED=${CHUANSPEED:-build/chuanspeed}
NNODES=${NNODES:-1}
NPUS_PER_NODE=${NPUS_PER_NODE:-8}
WORLD_SIZE=$((NPUS_PER_NODE * NNODES))
GLOBAL_BATCH=${GLOBAL_BATCH:-32}
MICRO_BATCH=${MICRO_BATCH:-1}

DATA_PATH=${DATA_PATH:-./data/baichuan_text}
TOKENIZER_PATH=${TOKENIZER_PATH:-./tokenizer}
CHECKPOINT_PATH=${CHECKPOINT_PATH:-./ckpt}
LOAD_PATH=${LOAD_PATH:-./weight}
read -r -a LOAD <<< "${LOAD_ARGS---load ${LOAD_PATH}}"
read -r -a TOKENIZER <<< "${TOKENIZER_ARGS:---tokenizer-name-or-path ${TOKENIZER_PATH}}"
read -r -a MPIRUN_EXTRA <<< "${MPIRUN_ARGS:-}"

LOG_DIR=${LOG_DIR:-logs}
mkdir -p "${LOG_DIR}"
logfile=$(date +%Y%m%d)_$(date +%H%M%S)

mpirun -np "${WORLD_SIZE}" ${MPIRUN_EXTRA[@]+"${MPIRUN_EXTRA[@]}"} \
       "${CHUANSPEED}" train \
       --DDP-impl local \
       --tensor-model-parallel-size "${TP:-8}" \
       --pipeline-model-parallel-size 1 \
       --sequence-parallel \
       --num-layers "${NUM_LAYERS:-40}" \
       --hidden-size "${HIDDEN_SIZE:-5120}" \
       --ffn-hidden-size "${FFN_HIDDEN_SIZE:-13696}" \
       --num-attention-heads "${NUM_HEADS:-40}" \
       --micro-batch-size "${MICRO_BATCH}" \
       --global-batch-size "${GLOBAL_BATCH}" \
       --seq-length "${SEQ_LENGTH:-4096}" \
       --max-position-embeddings "${SEQ_LENGTH:-4096}" \
       --train-iters "${TRAIN_ITERS:-100000}" \
       --save "${CHECKPOINT_PATH}" \
       ${LOAD[@]+"${LOAD[@]}"} \
       --data-path "${DATA_PATH}" \
       "${TOKENIZER[@]}" \
       --tokenizer-not-use-fast \
       --data-impl mmap \
       --split 949,50,1 \
       --make-vocab-size-divisible-by 8 \
       --distributed-backend nccl \
       --lr 1e-6 \
       --lr-decay-style cosine \
       --min-lr 1e-8 \
       --weight-decay 1e-1 \
       --position-embedding-type alibi \
       --clip-grad 1.0 \
       --initial-loss-scale 8188.0 \
       --seed 1234 \
       --adam-beta1 0.9 \
       --adam-beta2 0.95 \
       --adam-eps 1.0e-5 \
       --log-interval 1 \
       --save-interval 1000 \
       --eval-interval 1000 \
       --eval-iters "${EVAL_ITERS:-10}" \
       --fp16 "$@" | tee "${LOG_DIR}/loss_${logfile}.log"
exit "${PIPESTATUS[0]}"
