#!/usr/bin/env bash
# make bench: ChuanSpeed's figures beside PyTorch's for the same config, in the same run.
# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset for these commands only (they pin old OpenBLAS
# builds to the Haswell kernel, which halves sgemm on this CPU); tests keep them.
set -euo pipefail
BUILD=${1:-build}
PY=${PYTHON:-/usr/bin/python3}
ITERS=${ITERS:-5}
run() { env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE "$@"; }
echo "== OpenBLAS kernel: $(run "$BUILD/bench/openblas_info" 2>/dev/null || echo unknown)  (OPENBLAS_CORETYPE was '${OPENBLAS_CORETYPE:-unset}')"
echo "== threads: ${OMP_NUM_THREADS:-$(nproc)}"
out=$(mktemp)
run "$BUILD/bench/model_bench" "$ITERS" | tee "$out"
PEAK=$(grep '"bench":"sgemm"' "$out" | sed 's/.*"gflops_per_s":\([0-9.]*\).*/\1/')
run "$BUILD/bench/train_bench" "$ITERS" "$PEAK" | tee -a "$out"
if "$PY" -c "import torch" 2>/dev/null && [ -f tools/reference/bench_torch.py ]; then
  for pos in rope alibi; do
    run "$PY" tools/reference/bench_torch.py --position "$pos" --threads "$(nproc)" --iters "$ITERS" | tee -a "$out"
  done
  run "$PY" tools/reference/bench_torch.py --train --position rope --threads "$(nproc)" --iters "$ITERS" | tee -a "$out"
  "$PY" - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
ours = {(r["bench"], r["position"]): r for r in rows if r.get("impl") == "chuanspeed" and "position" in r}
for r in rows:
    if r.get("impl") == "pytorch":
        key = (r.get("bench", "model"), r.get("position", "rope"))
        o = ours.get(key)
        if o:
            what = "fwd+bwd" if key[0] == "model" else "training step"
            print(f"ratio chuanspeed / pytorch, {what} ({key[1]}): {o['tokens_per_s'] / r['tokens_per_s']:.2f}x tokens/s "
                  f"({o['tokens_per_s']:.0f} vs {r['tokens_per_s']:.0f}; torch {r.get('torch')})")
PY
else
  echo "== PyTorch not installed: run scripts/deps.sh --python for the comparison"
fi
rm -f "$out"
