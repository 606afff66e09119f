#!/usr/bin/env bash
# The GPU check, run on a machine with an NVIDIA GPU from the repository root, with gpu-bundle/
# made beforehand by scripts/gpu_bundle.sh on the build machine (the GPU image has CUDA, CMake,
# Python and PyTorch but none of the Debian libraries the CPU side links). In order:
#   0. preflight: the bundle's stamp against this checkout, every bundled binary's libraries
#      resolved, one tiny training step on the GPU;
#   1. the cuda-labelled tests: every op's cuda instance against the float64 references, and the
#      whole model on the GPU against the CPU backend (fp32, bf16, fp16); the attention tests again
#      with the wmma kernels and with the portable ones; a test skipped while a GPU is visible
#      is a failure;
#   2. 200 training steps of the demo model on the CPU and on the GPU from the same weights and
#      data (fp32 both: mean relative loss difference <= 1e-4, max <= 1e-3; GPU bf16 against CPU
#      fp32: mean <= 1e-2) through chuanspeed compare (the CPU run goes on during step 1);
#   3. the benchmark: Baichuan-7B-shaped (RoPE) and Baichuan-13B-shaped (ALiBi) models truncated to
#      a few layers, bf16, a step of 8 micro-batches of one sequence (AscendSpeed's 7B script's global
#      batch of 8: its ZeRO-2 run over 8 devices does one micro-batch and an eighth of the optimizer
#      per device and step, the optimizer's same share as here), ChuanSpeed (its step's time by op family too; the 7B shape again with
#      the wmma attention kernels) and PyTorch (SDPA, fused AdamW, bf16 autocast; eager, and
#      torch.compile on the 7B shape: COMPILE_13B=1 adds it on the 13B one) on the same GPU;
#   4. on an sm_90 GPU (H100, H200), the warpgroup-MMA attention kernels (CS_CUDA_ATTENTION=wgmma,
#      not the default): the attention tests and the 7B-shaped benchmark with them. Their verdict
#      is reported apart from the check's (which is of what runs by default), and this step runs
#      last among those that count, so it cannot take their time (SKIP_WGMMA=1 leaves it out);
#   5. with MEMCHECK=1, the op tests again under compute-sanitizer's memcheck (slow: last, opt-in);
# then the benchmark as a Markdown table (bench/gpu_table.py) and the verdict.
# The whole run keeps to BUDGET_S seconds (default 530, inside one 600-second device call): each
# step's time limit is capped by what is left, and a step that no longer fits is skipped and
# named. A device call returns at most 8 files, so everything is written under WORK
# (/tmp/gpu-check) and after each step three files are published to RESULTS ($OUT, else
# out/gpu-check): summary.md (also printed), gpu_check.jsonl, and logs.tar.gz (every log, the
# comparisons and metrics, no checkpoints). A run cut short still returns what it measured.
# Usage: bench/gpu_check.sh   (STEPS=200 LAYERS=4 MICRO_BATCHES=8 SKIP_BENCH=1 SKIP_PEER=1 SKIP_WGMMA=1 MEMCHECK=1 BUDGET_S=530 to vary)
set -uo pipefail
cd "$(dirname "$0")/.."
B=gpu-bundle
RESULTS=${RESULTS:-${OUT:-out/gpu-check}}
WORK=${WORK:-/tmp/gpu-check}
STEPS=${STEPS:-200}
LAYERS=${LAYERS:-4}
MICRO_BATCHES=${MICRO_BATCHES:-8}
END=$((SECONDS + ${BUDGET_S:-530}))
rm -rf "$WORK"; mkdir -p "$WORK/logs" "$RESULTS"
J="$WORK/gpu_check.jsonl"; S="$WORK/summary.md"; : > "$J"; : > "$S"
fail=0
note() { echo "$1" | tee -a "$S"; }
publish() {
  cp "$S" "$J" "$RESULTS/"
  tar czf "$RESULTS/logs.tar.gz" -C "$WORK" logs 2>/dev/null
}
# limit N: N seconds, or what is left of the budget (less 10 for the summary), whichever is less.
limit() { local left=$((END - SECONDS - 10)); echo $(($1 < left ? $1 : left)); }
# fits N: whether a step needing about N seconds still fits; names the step skipped otherwise.
fits() {
  if ((END - SECONDS - 10 >= $1)); then return 0; fi
  note "- skipped (the time budget is spent): $2"; fail=1; return 1
}

if [[ ! -x $B/bin/chuanspeed && -f $B.tar.xz ]]; then  # tar's -J needs xz; Python's tarfile does not
  python3 -c "import tarfile; tarfile.open('$B.tar.xz').extractall('.')"
fi
[[ -x $B/bin/chuanspeed ]] || { echo "[gpu_check] $B/ is missing. Hint: run scripts/gpu_bundle.sh on the build machine and carry gpu-bundle.tar.xz" >&2; exit 1; }
# The bundle's libraries and the image's CUDA libraries (cudart, cuBLASLt, NCCL: the toolkit's,
# else PyTorch's wheels') for the bundle's binaries only: python3 and PyTorch keep their own.
CUDA_LIBS=""
NV=$(python3 -c 'import nvidia; print(list(nvidia.__path__)[0])' 2>/dev/null)
for d in /usr/local/cuda/lib64 /usr/local/cuda/lib /usr/local/cuda/targets/x86_64-linux/lib \
         $( [[ -n $NV ]] && find "$NV" \( -name 'libcublasLt.so*' -o -name 'libnccl.so*' -o -name 'libcudart.so*' \) -printf '%h\n' | sort -u); do
  [[ -d $d ]] && CUDA_LIBS="$CUDA_LIBS:$d"
done
BL="$PWD/$B/lib$CUDA_LIBS${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
bx() { LD_LIBRARY_PATH="$BL" "$@"; }
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
GPU=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -n 1)
CC=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' ')
note "[gpu_check] GPU: ${GPU:-none visible}${CC:+ (compute capability $CC)}"

note "## 0. preflight"
# The sources' hash, as scripts/gpu_bundle.sh computes it when it builds the bundle.
STAMP=$(cat "$B/STAMP" 2>/dev/null || echo "none")
HERE=$(find src tests bench -type f | LC_ALL=C sort | xargs sha1sum | sha1sum | cut -c1-16)
if [[ $STAMP == "$HERE" ]]; then
  note "- the bundle was built from these sources ($HERE)"
else
  note "- FAIL: the bundle was built from other sources ($STAMP, here $HERE). Hint: make gpu-bundle after the last edit"
  fail=1
fi
missing=$(for f in $B/bin/* $B/tests/*; do bx ldd "$f" 2>/dev/null | grep 'not found' | sed "s|^|$(basename "$f"): |"; done | sort -u)
if [[ -n $missing ]]; then note "- FAIL: libraries not found:"; echo "$missing" | head -n 20 | tee -a "$S"; fail=1; fi
if bx timeout "$(limit 60)" $B/bin/gpu_bench --device cuda --hidden 128 --heads 2 --ffn 256 --vocab 512 --layers 1 \
     --seq 128 --iters 1 --label preflight > "$WORK/logs/preflight.log" 2>&1; then
  note "- one training step on the GPU: ok"
else
  note "- FAIL: one training step on the GPU: $(tail -n 2 "$WORK/logs/preflight.log" | tr '\n' ' ')"; fail=1
fi
publish

# The demo model's data, weights and CPU run (step 2's reference): the CPU run goes on in the
# background while the GPU tests run (it needs only the CPU; the tests mostly the GPU).
D="$WORK/demo"; mkdir -p "$D"
bx $B/bin/chuanspeed preprocess --input assets/demo/alpaca_demo.parquet --output-prefix "$D/alpaca" \
  --tokenizer-name-or-path assets/demo/tokenizer --handler-name alpaca --append-eod --workers 4 --log-interval 0 \
  > "$WORK/logs/pre.log" 2>&1
bx $B/bin/chuanspeed init --model demo --vocab-size 1024 --seq-length 128 --seed 1234 --save "$D/init" > /dev/null
RUN=(train --data-path "$D/alpaca_text_document" --seq-length 128 --micro-batch-size 16 --global-batch-size 32
  --train-iters "$STEPS" --lr 3e-3 --min-lr 3e-4 --lr-warmup-iters 10 --lr-decay-style cosine --weight-decay 0.1
  --clip-grad 1.0 --adam-beta1 0.9 --adam-beta2 0.95 --log-interval 1 --split 98,2,0 --eval-iters 0
  --load "$D/init")
( start=$SECONDS
  bx timeout "$(limit 300)" $B/bin/chuanspeed "${RUN[@]}" --device cpu --save "$D/cpu-fp32" \
    > "$WORK/logs/train-cpu-fp32.log" 2>&1
  rc=$?; echo $((SECONDS - start)) > "$WORK/cpu.seconds"; exit $rc ) &
cpu_pid=$!

note "## 1. cuda tests"
# test_run LOG BINARY [ENV=VALUE...]: a test binary's cuda tests; its line in the summary.
test_run() {
  local log=$1 t=$2; shift 2
  local name; name=$(basename "$t")
  if ! fits 20 "$name $*"; then return; fi
  env "$@" LD_LIBRARY_PATH="$BL" timeout "$(limit 240)" "$t" --gtest_filter='*/cuda*:Cuda*' --gtest_brief=1 > "$log" 2>&1
  local rc=$? passed skipped failed
  passed=$(grep -oE '^\[  PASSED  \] [0-9]+' "$log" | grep -oE '[0-9]+$' | head -n 1)
  skipped=$(grep -oE '^\[  SKIPPED \] [0-9]+ tests?' "$log" | grep -oE '[0-9]+' | head -n 1)
  failed=$(grep -c '^\[  FAILED  \] [A-Za-z]' "$log")
  note "- $name${*:+ ($*)}: rc $rc, passed ${passed:-0}, skipped ${skipped:-0}, failed $failed"
  if [[ $rc -ne 0 || $failed -ne 0 ]]; then fail=1; grep -E 'FAILED|Failure|error' "$log" | head -n 20 | tee -a "$S"; fi
  if [[ -n $GPU && ${skipped:-0} -ne 0 ]]; then
    fail=1; note "  FAIL: tests skipped while a GPU is visible: $(grep -m 1 -iE 'skip|no CUDA' "$log" | cut -c1-200)"
  fi
  echo "{\"check\": \"tests\", \"binary\": \"$name\", \"env\": \"$*\", \"rc\": $rc, \"passed\": ${passed:-0}, \"skipped\": ${skipped:-0}, \"failed\": $failed}" >> "$J"
}
for t in $B/tests/*_test; do test_run "$WORK/logs/$(basename "$t").log" "$t"; done
# The attention tests with the wmma kernels, and on the portable ones (bf16 / f16 with head
# dim 32, 64, 128 run on tensor cores by default, on mma.sync).
for mode in wmma portable; do
  for t in backend_attention_test backend_attention_bf16_test backend_attention_packed_test; do
    test_run "$WORK/logs/$t-$mode.log" "$B/tests/$t" CS_CUDA_ATTENTION=$mode
  done
done
publish

note "## 2. loss curves: $STEPS steps of the demo model, CPU fp32 vs GPU fp32 / bf16"
# train_done DEVICE PRECISION RC START: a run's line in the summary.
train_done() {
  local log="$WORK/logs/train-$1-$2.log"
  [[ $3 == 0 ]] || { fail=1; tail -n 5 "$log" | tee -a "$S"; }
  cp "$D/$1-$2/metrics.jsonl" "$WORK/logs/metrics-$1-$2.jsonl" 2>/dev/null
  local last
  last=$(grep -E '^ *iteration ' "$log" | tail -n 1 | grep -oE 'iteration +[0-9]+/ *[0-9]+|lm loss: [0-9.E+-]+' | tr '\n' ' ')
  note "- $1 $2: ${last:-$(tail -n 1 "$log" | cut -c1-200)} ($4 s)"
}
wait "$cpu_pid"; cpu_rc=$?
train_done cpu fp32 "$cpu_rc" "$(cat "$WORK/cpu.seconds" 2>/dev/null || echo ?)"
for v in "cuda fp32" "cuda bf16"; do
  set -- $v
  fits 30 "training $1 $2" || continue
  flags=(); [[ $2 == bf16 ]] && flags=(--bf16)
  start=$SECONDS
  bx timeout "$(limit 150)" $B/bin/chuanspeed "${RUN[@]}" --device "$1" "${flags[@]}" --save "$D/$1-$2" \
    > "$WORK/logs/train-$1-$2.log" 2>&1
  train_done "$1" "$2" $? $((SECONDS - start))
done
for v in "cuda-fp32 1e-4 1e-3" "cuda-bf16 1e-2 1"; do
  set -- $v
  bx $B/bin/chuanspeed compare "$D/cpu-fp32" "$D/$1" > "$WORK/logs/compare-$1.txt" 2>&1
  mean=$(grep -oE 'mean relative error[^0-9]*[0-9.e+-]+' "$WORK/logs/compare-$1.txt" | grep -oE '[0-9.e+-]+$' | head -n 1)
  max=$(grep -oE 'max relative error[^0-9]*[0-9.e+-]+' "$WORK/logs/compare-$1.txt" | grep -oE '[0-9.e+-]+$' | head -n 1)
  ok=$(python3 -c "print(int(float('${mean:-inf}') <= $2 and float('${max:-inf}') <= $3))")
  [[ $ok == 1 ]] || fail=1
  note "- cpu-fp32 vs $1: mean relative error ${mean:-?} (limit $2), max ${max:-?} (limit $3): $([[ $ok == 1 ]] && echo pass || echo FAIL)"
  echo "{\"check\": \"loss_curve\", \"run\": \"$1\", \"steps\": $STEPS, \"mean_rel\": ${mean:-null}, \"max_rel\": ${max:-null}, \"pass\": $ok}" >> "$J"
done
publish

# ours NAME LABEL [ENV=VALUE...] -- SHAPE...: one gpu_bench run, its JSON lines to the figures.
ours() {
  local name=$1 label=$2; shift 2
  local envs=()
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  fits 60 "gpu_bench $label" || return
  local err="$WORK/logs/bench-$label.err"
  if ! env "${envs[@]}" LD_LIBRARY_PATH="$BL" timeout "$(limit 150)" $B/bin/gpu_bench --device cuda "$@" \
       --layers "$LAYERS" --seq 4096 --micro-batch 1 --micro-batches "$MICRO_BATCHES" --precision bf16 --iters 5 --profile 2 --label "$label" \
       2> "$err" | tee -a "$J" "$S"; then
    fail=1; note "- FAIL: gpu_bench $label"
  fi
  tee -a "$S" < "$err"  # the profile table (its JSON line went with the figures), or an error
}
# peer NAME POSITION [--compile] -- SHAPE...: PyTorch on the same shape.
peer() {
  local name=$1 pos=$2 comp=""; shift 2
  [[ $1 == --compile ]] && { comp=--compile; shift; }
  shift
  fits 90 "PyTorch $name $comp" || return
  local args; args=$(echo "$@" | sed 's/--micro-batch/--batch/')
  local err="$WORK/logs/torch-$name${comp}.err"
  if ! timeout "$(limit 240)" python3 tools/reference/bench_torch.py --device cuda $args --layers "$LAYERS" --seq 4096 \
       --batch 1 --micro-batches "$MICRO_BATCHES" --position "$pos" --train --bf16 --iters 5 $comp 2> "$err" | tee -a "$J" "$S"; then
    fail=1; note "- FAIL: PyTorch $name $comp: $(tail -n 3 "$err" | tr '\n' ' ' | cut -c1-300)"
  fi
}
if [[ -z ${SKIP_BENCH:-} ]]; then
  note "## 3. benchmark ($GPU), bf16, $LAYERS layers, seq 4096, micro-batch 1, $MICRO_BATCHES micro-batches a step"
  S7=(--hidden 4096 --heads 32 --ffn 11008 --vocab 64000 --position rope)
  S13=(--hidden 5120 --heads 40 --ffn 13696 --vocab 64000 --position alibi)
  ours 7b chuanspeed-7b -- "${S7[@]}"; publish
  if [[ -z ${SKIP_PEER:-} ]]; then peer 7b rope -- "${S7[@]:0:8}"; publish; fi
  ours 13b chuanspeed-13b -- "${S13[@]}"; publish
  if [[ -z ${SKIP_PEER:-} ]]; then peer 13b alibi -- "${S13[@]:0:8}"; publish; fi
  ours 7b chuanspeed-7b-wmma CS_CUDA_ATTENTION=wmma -- "${S7[@]}"; publish
  if [[ -z ${SKIP_PEER:-} ]]; then
    peer 7b rope --compile -- "${S7[@]:0:8}"; publish
    [[ -n ${COMPILE_13B:-} ]] && { peer 13b alibi --compile -- "${S13[@]:0:8}"; publish; }
  fi
fi
wgmma=""
if [[ $CC == 9.0 && -z ${SKIP_WGMMA:-} ]]; then
  note "## 4. the warpgroup-MMA attention (CS_CUDA_ATTENTION=wgmma, opt-in: its verdict apart)"
  counted=$fail; fail=0
  for t in backend_attention_test backend_attention_bf16_test backend_attention_packed_test; do
    test_run "$WORK/logs/$t-wgmma.log" "$B/tests/$t" CS_CUDA_ATTENTION=wgmma
  done
  [[ -z ${SKIP_BENCH:-} ]] && ours 7b chuanspeed-7b-wgmma CS_CUDA_ATTENTION=wgmma -- "${S7[@]}"
  wgmma=$([[ $fail == 0 ]] && echo pass || echo FAIL); fail=$counted
  note "- the wgmma kernels: $wgmma"
  echo "{\"check\": \"wgmma\", \"pass\": $([[ $wgmma == pass ]] && echo 1 || echo 0)}" >> "$J"
  publish
fi
if [[ -n ${MEMCHECK:-} ]] && command -v compute-sanitizer > /dev/null; then
  note "## 5. compute-sanitizer memcheck (out-of-bounds and misaligned accesses, API errors) on the op tests"
  for t in backend_attention_test backend_attention_packed_test backend_ops_test; do
    fits 60 "memcheck $t" || continue
    log="$WORK/logs/memcheck-$t.log"
    bx timeout "$(limit 120)" compute-sanitizer --tool memcheck --error-exitcode 9 "$B/tests/$t" --gtest_filter='*/cuda*' \
      --gtest_brief=1 > "$log" 2>&1
    rc=$?
    note "- $t under memcheck: rc $rc, $(grep -E 'ERROR SUMMARY' "$log" | tail -n 1)"
    [[ $rc -eq 0 ]] || { fail=1; grep -E -m 12 'Invalid|Error|FAILED|Address' "$log" | tee -a "$S"; }
    echo "{\"check\": \"memcheck\", \"binary\": \"$t\", \"rc\": $rc}" >> "$J"
  done
fi

if grep -q '"gpu_train"' "$J"; then
  note "## the benchmark table (bench/gpu_table.py, for docs/performance.md)"
  python3 bench/gpu_table.py "$J" 2>&1 | tee -a "$S"
fi
note "## result: $([[ $fail == 0 ]] && echo PASS || echo FAIL) ($SECONDS s)${wgmma:+; the opt-in wgmma kernels: $wgmma}"
publish
exit $fail
