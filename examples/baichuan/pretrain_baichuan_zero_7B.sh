#!/bin/bash
# AscendSpeed's Baichuan-7B pretraining launch (examples/baichuan/pretrain_baichuan_zero_7B.sh, the
# one its Baichuan README gives): DeepSpeed ZeRO-2 data parallelism over 8 devices, with
# `deepspeed pretrain_baichuan.py` replaced by `mpirun -np 8 chuanspeed train`. The flags and the
# ds_config.json it writes are AscendSpeed's; chuanspeed reads zero_optimization.stage (the optimizer
# state sharded over the 8 ranks), the optimizer's betas / eps / weight decay and the fp16 loss
# scale from it (docs/training.md, "Data parallelism and the distributed optimizer").
# Environment: DATA_PATH, CHECKPOINT_PATH, TOKENIZER_PATH, GPUS_PER_NODE, NNODES, CHUANSPEED,
# MPIRUN_ARGS (e.g. --allow-run-as-root, --hostfile hosts), LOG_DIR; the model and run sizes
# (NUM_LAYERS, HIDDEN_SIZE, FFN_HIDDEN_SIZE, NUM_HEADS, SEQ_LENGTH, MICRO_BATCH, GLOBAL_BATCH,
# TRAIN_ITERS, RECOMPUTE_LAYERS, TOKENIZER_ARGS) default to AscendSpeed's values, so
# pretrain_baichuan_zero_tiny.sh runs the same script scaled down. Extra arguments are appended to
# `chuanspeed train`'s command line.
set -euo pipefail

CHUANSPEED=${CHUANSPEED:-build/chuanspeed}
DATA_PATH=${DATA_PATH:-./dataset/llama_text_document}
CHECKPOINT_PATH=${CHECKPOINT_PATH:-./ckpt}
TOKENIZER_PATH=${TOKENIZER_PATH:-./tokenizer}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
NNODES=${NNODES:-1}
WORLD_SIZE=$((GPUS_PER_NODE * NNODES))
read -r -a MPIRUN_EXTRA <<< "${MPIRUN_ARGS:-}"

TP=1
PP=1
MICRO_BATCH=${MICRO_BATCH:-1}
GLOBAL_BATCH=${GLOBAL_BATCH:-8}
NUM_LAYERS=${NUM_LAYERS:-32}
HIDDEN_SIZE=${HIDDEN_SIZE:-4096}
FFN_HIDDEN_SIZE=${FFN_HIDDEN_SIZE:-11008}
NUM_HEADS=${NUM_HEADS:-32}
SEQ_LENGTH=${SEQ_LENGTH:-4096}
TRAIN_ITERS=${TRAIN_ITERS:-1024}
RECOMPUTE_LAYERS=${RECOMPUTE_LAYERS:-30}
read -r -a TOKENIZER <<< "${TOKENIZER_ARGS:---tokenizer-name-or-path ${TOKENIZER_PATH}}"
LOG_DIR=${LOG_DIR:-logs}
mkdir -p "${LOG_DIR}"

DS_CONFIG=${DS_CONFIG:-ds_config.json}
ZERO_STAGE=2

cat <<EOT > "${DS_CONFIG}"
{
    "gradient_accumulation_steps": 1,
    "train_batch_size": ${GLOBAL_BATCH},
    "train_micro_batch_size_per_gpu": ${MICRO_BATCH},
    "steps_per_print": 1,
    "zero_optimization": {
        "stage": ${ZERO_STAGE},
        "contiguous_gradients": false,
        "allgather_bucket_size": 1e8,
        "reduce_bucket_size": 1e8,
        "overlap_comm": true,
        "reduce_scatter": true
    },
    "optimizer": {
        "type": "AdamW",
        "params": {
            "lr": 2e-5,
            "eps": 1.0e-8,
            "betas": [0.9, 0.95],
            "weight_decay": 0.0
        }
    },
    "fp16": {
        "enabled": true,
        "loss_scale": 0,
        "loss_scale_window": 1000,
        "initial_scale_power": 8,
        "hysteresis": 2,
        "min_loss_scale": 1
    },
    "zero_allow_untested_optimizer": true
}
EOT

ds_args=""
ds_args=" --deepspeed ${ds_args}"
ds_args=" --no-pipeline-parallel ${ds_args}"
ds_args=" --deepspeed_config=${DS_CONFIG} ${ds_args}"
ds_args=" --zero-stage=${ZERO_STAGE} ${ds_args}"
ds_args=" --deepspeed-activation-checkpointing ${ds_args}"

# shellcheck disable=SC2086  # ds_args is a word list, as in AscendSpeed's script
mpirun -np "${WORLD_SIZE}" "${MPIRUN_EXTRA[@]}" "${CHUANSPEED}" train \
       --DDP-impl local \
       --tensor-model-parallel-size ${TP} \
       --pipeline-model-parallel-size ${PP} \
       --num-layers "${NUM_LAYERS}" \
       --hidden-size "${HIDDEN_SIZE}" \
       --ffn-hidden-size "${FFN_HIDDEN_SIZE}" \
       --num-attention-heads "${NUM_HEADS}" \
       --micro-batch-size ${MICRO_BATCH} \
       --global-batch-size ${GLOBAL_BATCH} \
       --seq-length "${SEQ_LENGTH}" \
       --max-position-embeddings "${SEQ_LENGTH}" \
       --train-iters "${TRAIN_ITERS}" \
       --data-path "${DATA_PATH}" \
       "${TOKENIZER[@]}" \
       --tokenizer-not-use-fast \
       --data-impl mmap \
       --split 949,50,1 \
       --distributed-backend nccl \
       --lr 0.00001 \
       --lr-decay-style cosine \
       --min-lr 1.0e-6 \
       --weight-decay 1e-2 \
       --clip-grad 1.0 \
       --lr-warmup-fraction .1 \
       --log-interval 1 \
       --save-interval 10000 \
       --eval-interval 1000 \
       --eval-iters 1 \
       --save "${CHECKPOINT_PATH}" \
       --checkpoint-activations \
       --checkpoint-policy block \
       --checkpoint_block_layer "${RECOMPUTE_LAYERS}" \
       --triangle-attn \
       $ds_args \
       --fp16 "$@" | tee "${LOG_DIR}/train.log"
