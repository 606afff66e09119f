#!/usr/bin/env bash
# The peer `make bench` compares against: PyTorch 2.x from PyPI in its own virtual environment
# (what a user who trains on CPUs would install: MKL, oneDNN, scaled_dot_product_attention, fused
# AdamW, bf16 autocast). PyPI's Linux x86_64 torch wheel carries CUDA runtime libraries as
# dependencies (about 5 GB installed); the CPU side is the same build, and nothing here needs a GPU.
# Usage: tools/bench/setup_peer.sh            (PEER_VENV=DIR to choose the place, TORCH=2.15.0 the version)
set -euo pipefail
VENV=${PEER_VENV:-$HOME/.cache/chuanspeed/peer-venv}
TORCH=${TORCH:-2.15.0}
if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH')" 2>/dev/null; then
  echo "[peer] $VENV has torch $TORCH"
  exit 0
fi
PY=$(command -v python3) || { echo "[peer] python3 not found. Hint: apt-get install python3 python3-venv" >&2; exit 1; }
"$PY" -m venv "$VENV" 2>/dev/null || { echo "[peer] cannot create a venv at $VENV. Hint: apt-get install python3-venv" >&2; exit 1; }
echo "[peer] installing torch==$TORCH numpy into $VENV (PyPI; several GB)"
"$VENV/bin/pip" install -q "torch==$TORCH" numpy
"$VENV/bin/python" -c "import torch; print('[peer] torch', torch.__version__, 'threads', torch.get_num_threads())"
