#!/usr/bin/env bash
# make bench: ChuanSpeed's figures beside PyTorch's for the same config, in the same run.
#  - sgemm rate (the MFU denominator) before and after: a rate far below this machine's idle rate
#    (IDLE_SGEMM, 450 GFLOP/s on the 2-core Zen 5 we measure on) means another process shared the
#    cores, and the run says so instead of offering its figures for publication;
#  - forward + backward of the model (model_bench) and full training steps (train_bench: data,
#    forward, backward, clipping, AdamW) in fp32 and --bf16, on the small config (SIZES="small
#    medium" adds hidden 1024, 8 layers, seq 1024, micro-batch 2);
#  - the peer: PyTorch 2.x from PyPI in a virtual environment (tools/bench/setup_peer.sh), with
#    scaled_dot_product_attention, F.cross_entropy and fused AdamW, in fp32 and bf16 autocast,
#    same shapes, same threads; the ratios are printed (ROUNDS=N: N rounds, alternating, medians).
#    Without the venv, Debian's torch (1.13) is used when present: a weaker peer, named as such.
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset for these commands only (they pin old OpenBLAS
# builds to the Haswell kernel, which halves sgemm on this CPU); tests keep them.
set -euo pipefail
BUILD=${1:-build}
ITERS=${ITERS:-5}
SIZES=${SIZES:-small}
IDLE_SGEMM=${IDLE_SGEMM:-450}
VENV=${PEER_VENV:-$HOME/.cache/chuanspeed/peer-venv}
if [[ -n "${PEER_PYTHON:-}" ]]; then PY=$PEER_PYTHON
elif [[ -x "$VENV/bin/python" ]]; then PY=$VENV/bin/python
else PY=${PYTHON:-/usr/bin/python3}; fi
THREADS=${OMP_NUM_THREADS:-$(nproc)}
run() { env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE OMP_NUM_THREADS="$THREADS" "$@"; }
sgemm() { run "$BUILD/bench/model_bench" --sgemm-only | sed -n 's/.*"gflops_per_s":\([0-9.]*\).*/\1/p'; }
echo "== OpenBLAS kernel: $(run "$BUILD/bench/openblas_info" 2>/dev/null || echo unknown)  (OPENBLAS_CORETYPE was '${OPENBLAS_CORETYPE:-unset}')"
echo "== threads: $THREADS"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
BEFORE=$(sgemm)
# WAIT_IDLE=S: on a shared machine, wait up to S seconds (checking every 30) for the sgemm rate to
# come back to 80 % of the idle rate before measuring, so that the figures can be published.
if [[ -n "${WAIT_IDLE:-}" ]]; then
  deadline=$((SECONDS + WAIT_IDLE))
  while awk -v r="$BEFORE" -v i="$IDLE_SGEMM" 'BEGIN { exit !(r < 0.8 * i) }' && ((SECONDS < deadline)); do
    echo "== waiting for a quiet machine: sgemm $BEFORE GFLOP/s (want $(awk -v i="$IDLE_SGEMM" 'BEGIN { print 0.8 * i }'))"
    sleep 30
    BEFORE=$(sgemm)
  done
fi
echo "== sgemm before: $BEFORE GFLOP/s (idle rate on the reference machine: $IDLE_SGEMM)"
run "$BUILD/bench/model_bench" "$ITERS" | tee "$out"
PEAK=$(grep '"bench":"sgemm"' "$out" | sed 's/.*"gflops_per_s":\([0-9.]*\).*/\1/')
PEAK16=$(grep '"bench":"bf16_gemm"' "$out" | sed 's/.*"gflops_per_s":\([0-9.]*\).*/\1/')
for size in $SIZES; do  # MFU against the GEMM peak of the run's precision
  run "$BUILD/bench/train_bench" "$ITERS" "$PEAK" fp32 "$size" | tee -a "$out"
  run "$BUILD/bench/train_bench" "$ITERS" "$PEAK16" bf16 "$size" | tee -a "$out"
done
if "$PY" -c "import torch" 2>/dev/null && [ -f tools/reference/bench_torch.py ]; then
  echo "== peer: $("$PY" -c 'import torch; print("torch", torch.__version__)') ($PY)"
  for pos in rope alibi; do
    run "$PY" tools/reference/bench_torch.py --position "$pos" --threads "$THREADS" --iters "$ITERS" | tee -a "$out"
  done
  for size in $SIZES; do
    shape=()
    [[ $size == medium ]] && shape=(--hidden 1024 --heads 16 --ffn 2752 --seq 1024 --batch 2)
    for p in "" --bf16; do
      run "$PY" tools/reference/bench_torch.py --train --position rope --threads "$THREADS" --iters "$ITERS" \
        "${shape[@]}" $p | sed "s/^{/{\"size\": \"$size\", /" | tee -a "$out"
    done
  done
  # ROUNDS=N (N > 1): rounds 2 .. N of the training steps, ours and the peer's alternating for each
  # size and precision, so that a load that comes and goes on a shared machine falls on both sides:
  # the summary gives the median of the per-round ratios and their range.
  for ((round = 2; round <= ${ROUNDS:-1}; ++round)); do
    echo "== round $round of ${ROUNDS}: ours and the peer's training steps, alternating"
    for size in $SIZES; do
      shape=()
      [[ $size == medium ]] && shape=(--hidden 1024 --heads 16 --ffn 2752 --seq 1024 --batch 2)
      for prec in fp32 bf16; do
        peak=$PEAK; flag=""
        [[ $prec == bf16 ]] && peak=$PEAK16 && flag=--bf16
        run "$BUILD/bench/train_bench" "$ITERS" "$peak" "$prec" "$size" | grep '^{' | sed "s/^{/{\"round\": $round, /" | tee -a "$out"
        run "$PY" tools/reference/bench_torch.py --train --position rope --threads "$THREADS" --iters "$ITERS" \
          "${shape[@]}" $flag | sed "s/^{/{\"round\": $round, \"size\": \"$size\", /" | tee -a "$out"
      done
    done
  done
else
  echo "== PyTorch not installed: tools/bench/setup_peer.sh installs the peer (PyTorch 2.x from PyPI)"
fi
AFTER=$(sgemm)
echo "== sgemm after: $AFTER GFLOP/s"
"${PYTHON:-python3}" - "$out" "$BEFORE" "$AFTER" "$IDLE_SGEMM" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
before, after, idle = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
def key(r):
    return (r.get("bench", "model"), r.get("position", "rope"), r.get("precision", "fp32"), r.get("size", "small"))
# ROUNDS=N: the median of the per-round ratios of the training steps.
by_round = {}
for r in rows:  # the main run's training steps are round 1
    if key(r)[0] == "train" and "tokens_per_s" in r:
        by_round.setdefault((key(r)[2:], r.get("round", 1)), {})[r.get("impl")] = r["tokens_per_s"]
rounds = {}
for (k, n), sides in sorted(by_round.items()):
    if "chuanspeed" in sides and "pytorch" in sides:
        rounds.setdefault(k, []).append(sides["chuanspeed"] / sides["pytorch"])
rows = [r for r in rows if "round" not in r]
ours = {key(r): r for r in rows if r.get("impl") == "chuanspeed" and "tokens_per_s" in r}
def mib(r):
    return f"{r['peak_rss_mib']:.0f} MiB" if "peak_rss_mib" in r else "n/a"
best = {}
for r in rows:
    if r.get("impl") != "pytorch":
        continue
    k = key(r)
    what = "fwd+bwd" if k[0] == "model" else "training step"
    o = ours.get(k)
    if o:  # the same precision on both sides
        print(f"ratio chuanspeed / pytorch, {what} {k[2]} ({k[1]}, {k[3]}): {o['tokens_per_s'] / r['tokens_per_s']:.2f}x "
              f"tokens/s ({o['tokens_per_s']:.0f} vs {r['tokens_per_s']:.0f}; peak RSS {mib(o)} vs {mib(r)}; "
              f"torch {r.get('torch')}, {r.get('attention')} attention)")
    if k[0] == "train":
        b = best.setdefault(k[3], [None, None])
        b[1] = r if b[1] is None or r["tokens_per_s"] > b[1]["tokens_per_s"] else b[1]
for (bench, pos, prec, size), o in ours.items():
    if bench == "train" and size in best:
        b = best[size]
        b[0] = o if b[0] is None or o["tokens_per_s"] > b[0]["tokens_per_s"] else b[0]
for size, (o, r) in best.items():
    if o and r:
        print(f"ratio best / best, training step ({size}): chuanspeed {o['precision']} {o['tokens_per_s']:.0f} vs "
              f"pytorch {r['precision']} {r['tokens_per_s']:.0f} tokens/s: {o['tokens_per_s'] / r['tokens_per_s']:.2f}x")
for (prec, size), rs in sorted(rounds.items()):
    if len(rs) < 2:
        continue
    rs = sorted(rs)
    med = rs[len(rs) // 2] if len(rs) % 2 else (rs[len(rs) // 2 - 1] + rs[len(rs) // 2]) / 2
    print(f"ratio over {len(rs)} alternating rounds, training step {prec} ({size}): median {med:.2f}x "
          f"(range {rs[0]:.2f}x .. {rs[-1]:.2f}x)")
low = min(before, after)
if low < 0.8 * idle:
    print(f"== BUSY MACHINE: sgemm {before:.0f} / {after:.0f} GFLOP/s against ~{idle:.0f} idle: another process "
          f"shared the cores. Ratios from one run are indicative; do not publish these absolute figures.")
else:
    print(f"== machine idle enough: sgemm {before:.0f} / {after:.0f} GFLOP/s (idle ~{idle:.0f})")
PY
