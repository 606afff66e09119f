#!/usr/bin/env bash
# The GPU check, run on a machine with an NVIDIA GPU from the repository root, with gpu-bundle/
# made beforehand by scripts/gpu_bundle.sh on the build machine (the GPU image has CUDA, CMake,
# Python and PyTorch but none of the Debian libraries the CPU side links). In order:
#   1. the cuda-labelled tests: every op's cuda instance against the float64 references, and the
#      whole model on the GPU against the CPU backend (fp32, bf16, fp16), and the attention tests
#      again on the portable kernels;
#   2. 200 training steps of the demo model on the CPU and on the GPU from the same weights and
#      data (fp32 both: mean relative loss difference <= 1e-4, max <= 1e-3; GPU bf16 against CPU
#      fp32: mean <= 1e-2) through chuanspeed compare;
#   3. the benchmark: Baichuan-7B-shaped (RoPE) and Baichuan-13B-shaped (ALiBi) models truncated to
#      a few layers, bf16, ChuanSpeed and PyTorch (SDPA, fused AdamW, bf16 autocast; eager and
#      torch.compile) on the same GPU, and two more steps of ours with every op timed: the step's
#      time by op family (GEMM, attention, elementwise, cross entropy, optimizer);
#   4. with MEMCHECK=1, the op tests again under compute-sanitizer's memcheck (slow: last, opt-in,
#      so that the default run stays within a device call's minutes).
# gpu-bundle.tar.xz (what a device call can carry) is unpacked first when gpu-bundle/ is absent.
# Every step has a time limit (a hung kernel must not eat a device lease), and summary.md grows as
# the steps finish, so a run cut short still returns what it measured.
# Figures go to RESULTS (default $OUT or out/gpu-check): gpu_check.jsonl and a table, summary.md.
# Usage: bench/gpu_check.sh            (STEPS=200 LAYERS=4 SKIP_BENCH=1 SKIP_PEER=1 MEMCHECK=1 to vary)
set -uo pipefail
cd "$(dirname "$0")/.."
B=gpu-bundle
RESULTS=${RESULTS:-${OUT:-out/gpu-check}}
STEPS=${STEPS:-200}
LAYERS=${LAYERS:-4}
mkdir -p "$RESULTS"
J="$RESULTS/gpu_check.jsonl"; S="$RESULTS/summary.md"; : > "$J"; : > "$S"
if [[ ! -x $B/bin/chuanspeed && -f $B.tar.xz ]]; then  # tar's -J needs xz; Python's tarfile does not
  python3 -c "import tarfile; tarfile.open('$B.tar.xz').extractall('.')"
fi
[[ -x $B/bin/chuanspeed ]] || { echo "[gpu_check] $B/ is missing. Hint: run scripts/gpu_bundle.sh on the build machine and carry gpu-bundle" >&2; exit 1; }
# The image's CUDA libraries (cudart, cuBLASLt): the toolkit's, else PyTorch's wheels'.
CUDA_LIBS=""
NV=$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null)
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib \
         $( [[ -n $NV ]] && find "$NV" \( -name 'libcublasLt.so*' -o -name 'libnccl.so*' \) -printf '%h\n' | sort -u); do
  [[ -d $d ]] && CUDA_LIBS="$CUDA_LIBS:$d"
done
export LD_LIBRARY_PATH="$PWD/$B/lib$CUDA_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
GPU=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
echo "[gpu_check] GPU: ${GPU:-none visible}" | tee -a "$S"
fail=0
note() { echo "$1" | tee -a "$S"; }

note "## 1. cuda tests"
for t in $B/tests/*_test; do
  name=$(basename "$t")
  log="$RESULTS/$name.log"
  timeout 300 "$t" --gtest_filter='*/cuda*:Cuda*' --gtest_brief=1 > "$log" 2>&1
  rc=$?
  note "- $name: rc $rc, $(grep -E '^\[  (PASSED|SKIPPED|FAILED) +\] [0-9]+ tests?' "$log" | sed -E 's/, listed below.*//' | tr '\n' ' ')"
  if [[ $rc -ne 0 ]]; then fail=1; grep -E 'FAILED|Failure|error' "$log" | head -n 20 | tee -a "$S"; fi
  echo "{\"check\": \"tests\", \"binary\": \"$name\", \"rc\": $rc}" >> "$J"
done

# The attention tests again on the portable kernels (bf16 / f16 with head dim 32, 64, 128 run on
# tensor cores by default).
for t in backend_attention_test backend_attention_bf16_test backend_attention_packed_test; do
  log="$RESULTS/$t-portable.log"
  CS_CUDA_ATTENTION=portable timeout 300 "$B/tests/$t" --gtest_filter='*/cuda*' --gtest_brief=1 > "$log" 2>&1
  rc=$?
  note "- $t (CS_CUDA_ATTENTION=portable): rc $rc, $(grep -E '^\[  (PASSED|SKIPPED|FAILED) +\] [0-9]+ tests?' "$log" | sed -E 's/, listed below.*//' | tr '\n' ' ')"
  [[ $rc -eq 0 ]] || { fail=1; grep -E 'FAILED|Failure' "$log" | head -n 10 | tee -a "$S"; }
  echo "{\"check\": \"tests\", \"binary\": \"$t\", \"attention\": \"portable\", \"rc\": $rc}" >> "$J"
done

note "## 2. loss curves: $STEPS steps of the demo model, CPU fp32 vs GPU fp32 / bf16"
D="$RESULTS/demo"; rm -rf "$D"; mkdir -p "$D"
TOK=assets/demo/tokenizer
$B/bin/chuanspeed preprocess --input assets/demo/alpaca_demo.parquet --output-prefix "$D/alpaca" \
  --tokenizer-name-or-path "$TOK" --handler-name alpaca --append-eod --workers 4 --log-interval 0 > "$D/pre.log" 2>&1
$B/bin/chuanspeed init --model demo --vocab-size 1024 --seq-length 128 --seed 1234 --save "$D/init" > /dev/null
RUN=(train --data-path "$D/alpaca_text_document" --seq-length 128 --micro-batch-size 16 --global-batch-size 32
  --train-iters "$STEPS" --lr 3e-3 --min-lr 3e-4 --lr-warmup-iters 10 --lr-decay-style cosine --weight-decay 0.1
  --clip-grad 1.0 --adam-beta1 0.9 --adam-beta2 0.95 --log-interval 1 --split 98,2,0 --eval-interval 100000
  --load "$D/init")
for v in "cpu fp32" "cuda fp32" "cuda bf16"; do
  set -- $v
  flags=(); [[ $2 == bf16 ]] && flags=(--bf16)
  start=$SECONDS
  timeout 240 $B/bin/chuanspeed "${RUN[@]}" --device "$1" "${flags[@]}" --save "$D/$1-$2" > "$D/$1-$2.log" 2>&1 || { fail=1; tail -n 5 "$D/$1-$2.log" | tee -a "$S"; }
  last=$(grep -E '^ *iteration ' "$D/$1-$2.log" | tail -n 1 | grep -oE 'iteration +[0-9]+/ *[0-9]+|lm loss: [0-9.E+-]+' | tr '\n' ' ')
  note "- $1 $2: ${last:-$(tail -n 1 "$D/$1-$2.log" | cut -c1-200)} ($((SECONDS - start)) s)"
done
for v in "cuda-fp32 1e-4 1e-3" "cuda-bf16 1e-2 1"; do
  set -- $v
  $B/bin/chuanspeed compare "$D/cpu-fp32" "$D/$1" > "$D/compare-$1.txt" 2>&1
  mean=$(grep -oE 'mean relative error[^0-9]*[0-9.e+-]+' "$D/compare-$1.txt" | grep -oE '[0-9.e+-]+$' | head -n 1)
  max=$(grep -oE 'max relative error[^0-9]*[0-9.e+-]+' "$D/compare-$1.txt" | grep -oE '[0-9.e+-]+$' | head -n 1)
  ok=$(python3 -c "print(int(float('${mean:-inf}') <= $2 and float('${max:-inf}') <= $3))")
  [[ $ok == 1 ]] || fail=1
  note "- cpu-fp32 vs $1: mean relative error ${mean:-?} (limit $2), max ${max:-?} (limit $3): $([[ $ok == 1 ]] && echo pass || echo FAIL)"
  echo "{\"check\": \"loss_curve\", \"run\": \"$1\", \"steps\": $STEPS, \"mean_rel\": ${mean:-null}, \"max_rel\": ${max:-null}, \"pass\": $ok}" >> "$J"
done

if [[ -z ${SKIP_BENCH:-} ]]; then
  note "## 3. benchmark ($GPU), bf16, $LAYERS layers, seq 4096, micro-batch 1"
  SHAPES=("7b rope --hidden 4096 --heads 32 --ffn 11008 --vocab 64000" "13b alibi --hidden 5120 --heads 40 --ffn 13696 --vocab 64000")
  for sh in "${SHAPES[@]}"; do
    set -- $sh; name=$1; pos=$2; shift 2
    timeout 180 $B/bin/gpu_bench --device cuda "$@" --layers "$LAYERS" --seq 4096 --micro-batch 1 --precision bf16 \
      --position "$pos" --iters 5 --profile 2 --label "chuanspeed-$name" 2> "$RESULTS/bench-$name.err" | tee -a "$J" "$S"
    cat "$RESULTS/bench-$name.err" >> "$S"  # the profile table (its JSON line went with the figures) or an error
    if [[ -z ${SKIP_PEER:-} ]]; then
      args=$(echo "$@" | sed 's/--micro-batch/--batch/')
      for comp in "" "--compile"; do
        timeout 240 python3 tools/reference/bench_torch.py --device cuda $args --layers "$LAYERS" --seq 4096 --batch 1 \
          --position "$pos" --train --bf16 --iters 5 $comp 2>"$RESULTS/torch-$name${comp}.err" | tee -a "$J" "$S" ||
          tail -n 3 "$RESULTS/torch-$name${comp}.err" | tee -a "$S"
      done
    fi
  done
fi
if [[ -n ${MEMCHECK:-} ]] && command -v compute-sanitizer > /dev/null; then
  note "## 4. compute-sanitizer memcheck (out-of-bounds and misaligned accesses, API errors) on the op tests"
  for t in backend_attention_test backend_attention_packed_test backend_ops_test; do
    log="$RESULTS/memcheck-$t.log"
    timeout 120 compute-sanitizer --tool memcheck --error-exitcode 9 "$B/tests/$t" --gtest_filter='*/cuda*' \
      --gtest_brief=1 > "$log" 2>&1
    rc=$?
    note "- $t under memcheck: rc $rc, $(grep -E 'ERROR SUMMARY' "$log" | tail -n 1)"
    [[ $rc -eq 0 ]] || { fail=1; grep -E -m 12 'Invalid|Error|FAILED|Address' "$log" | tee -a "$S"; }
    echo "{\"check\": \"memcheck\", \"binary\": \"$t\", \"rc\": $rc}" >> "$J"
  done
fi

note "## result: $([[ $fail == 0 ]] && echo PASS || echo FAIL)"
exit $fail
