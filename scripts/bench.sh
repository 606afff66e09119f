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
if "$PY" -c "import torch" 2>/dev/null && [ -f tools/reference/bench_torch.py ]; then
  for pos in rope alibi; do
    run "$PY" tools/reference/bench_torch.py --position "$pos" --threads "$(nproc)" --iters "$ITERS" | tee -a "$out"
  done
  "$PY" - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
ours = {r["position"]: r for r in rows if r.get("bench") == "model"}
for r in rows:
    if r.get("impl") == "pytorch":
        pos = r.get("position") or r.get("config", {}).get("position", "rope")
        o = ours.get(pos)
        if o:
            print(f"ratio chuanspeed / pytorch ({pos}): {o['tokens_per_s'] / r['tokens_per_s']:.2f}x tokens/s "
                  f"({o['tokens_per_s']:.0f} vs {r['tokens_per_s']:.0f}; torch {r.get('torch')})")
PY
else
  echo "== PyTorch not installed: run scripts/deps.sh --python for the comparison"
fi
rm -f "$out"
