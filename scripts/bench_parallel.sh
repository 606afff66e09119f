#!/usr/bin/env bash
# make bench-parallel: tokens/s of one training step at 1, 2 and 4 ranks (1 OpenMP thread each) for
# data, tensor and pipeline parallelism on a fixed global batch, the scaling efficiency against one
# rank, and the bytes rank 0 sends per iteration (measured by MpiGroup) against the analytic count
# of the algorithms (docs/performance.md). Not a test: the machine's cores bound the ranks that can
# run at once (4 ranks on 2 cores time-share them; the table says so).
set -euo pipefail
BUILD=${1:-build}
BIN="$BUILD/chuanspeed"
WORK=${WORK:-$(mktemp -d /tmp/cs_bench_parallel.XXXXXX)}
ITERS=${ITERS:-8}
CORES=$(nproc)
# Model: 8 layers, hidden 512, FFN 1376, 8 heads, vocabulary 8000, seq 256; 8 micro-batches of 1.
L=8 D=512 F=1376 H=8 V=8000 S=256 B=1 G=8
MODEL="--model small --num-layers $L --hidden-size $D --ffn-hidden-size $F --num-attention-heads $H --vocab-size $V
       --make-vocab-size-divisible-by 1 --seq-length $S --micro-batch-size $B --global-batch-size $G"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE  # this command only: current OpenBLAS picks its own kernel

"$BIN" synth-data --output-prefix "$WORK/data" --vocab-size $V --num-docs 2000 > /dev/null

# Median tokens/s/p over the iterations after the first two (warm-up), from metrics.jsonl.
median_tps() {
  sed -n 's/.*"tokens_per_s_per_device":\([0-9.eE+-]*\).*/\1/p' "$1" | tail -n +3 | sort -g |
    awk '{ v[++k] = $1 } END { if (k == 0) print 0; else print (k % 2) ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2 }'
}

# Analytic bytes rank 0 sends per iteration (fp32, 4 B): an all-reduce of n elements over P ranks
# sends 2 (P - 1) / P n (fold-by-chunk, then all-gather); DP sums every gradient once; TP sums the
# (N, D) activations 4 L + 2 times per micro-batch (2 per layer forward, 2 backward, the embedding,
# the head's input gradient) plus the cross entropy's N log-sum-exps and target logits; PP stage 0
# sends each micro-batch's (N, D) output once.
analytic_mb() {  # kind P
  awk -v kind="$1" -v P="$2" -v L=$L -v D=$D -v F=$F -v V=$V -v S=$S -v B=$B -v G=$G 'BEGIN {
    N = S * B; M = G / B; params = 2 * V * D + D + L * (4 * D * D + 3 * D * F + 2 * D)
    if (kind == "dp") bytes = 2 * (P - 1) / P * params * 4
    else if (kind == "tp") bytes = M * ((4 * L + 2) * 2 * (P - 1) / P * N * D * 4 + (P - 1) * N * 4 + 2 * (P - 1) / P * N * 4)
    else if (kind == "pp") bytes = M * N * D * 4
    else bytes = 0
    printf "%.3f", bytes / 1e6 }'
}

run() {  # name kind P flags...
  local name=$1 kind=$2 p=$3; shift 3
  local dir="$WORK/$name"
  if [ "$p" = 1 ]; then
    "$BIN" train $MODEL --train-iters "$ITERS" --lr 1e-4 --eval-iters 0 --log-interval 1 --data-path "$WORK/data" \
      --save "$dir" --save-interval 100000 "$@" > "$WORK/$name.log" 2>&1
  else
    mpirun --oversubscribe -np "$p" "$BIN" train $MODEL --train-iters "$ITERS" --lr 1e-4 --eval-iters 0 --log-interval 1 \
      --data-path "$WORK/data" --save "$dir" --save-interval 100000 "$@" > "$WORK/$name.log" 2>&1
  fi
  local tps sent
  tps=$(median_tps "$dir/metrics.jsonl")
  sent=$(sed -n 's/.*rank 0 sent \([0-9.]*\) MB per iteration.*/\1/p' "$WORK/$name.log")
  echo "$name $kind $p $tps ${sent:-0}"
}

{
  run one none 1
  for p in 2 4; do
    run "dp$p" dp $p
    run "tp$p" tp $p --tensor-model-parallel-size $p
    run "pp$p" pp $p --pipeline-model-parallel-size $p
  done
} > "$WORK/results.txt"

base=$(awk '$1 == "one" { print $4 }' "$WORK/results.txt")
echo "== make bench-parallel: $L layers, hidden $D, FFN $F, $H heads, vocab $V, seq $S, global batch $G (micro 1);"
echo "   1 thread per rank, $CORES cores here (ranks beyond $CORES time-share them); median of iterations 3-$ITERS"
printf "%-6s %6s %14s %12s %11s %14s %14s\n" layout ranks "tokens/s" "tokens/s/p" efficiency "MB/iter sent" "MB/iter model"
while read -r name kind p tpsp sent; do
  total=$(awk -v t="$tpsp" -v p="$p" 'BEGIN { printf "%.0f", t * p }')
  eff=$(awk -v t="$tpsp" -v b="$base" 'BEGIN { printf "%.0f %%", 100 * t / b }')
  printf "%-6s %6s %14s %12.0f %11s %14s %14s\n" "$name" "$p" "$total" "$tpsp" "$eff" "$sent" "$(analytic_mb "$kind" "$p")"
done < "$WORK/results.txt"
echo "   efficiency: tokens/s per rank against one rank's; MB/iter sent: rank 0's MPI payload (MpiGroup's count),"
echo "   model: the analytic count above. Logs in $WORK"
