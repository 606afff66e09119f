#!/usr/bin/env bash
# make conformance (optional; needs `scripts/deps.sh --python` and the pip packages named below):
# checks ChuanSpeed's outputs with the real libraries. Each check says PASS, FAIL or SKIP (with
# what to install); the exit status is non-zero when any check fails.
set -uo pipefail
BUILD=${1:-build}
BIN=$BUILD/chuanspeed
PY=${PYTHON:-/usr/bin/python3}
OUT=out/conformance
rm -rf "$OUT"; mkdir -p "$OUT"
fail=0
check() {  # name, command...
  local name=$1; shift
  if "$@" > "$OUT/$name.log" 2>&1; then echo "PASS $name"; else echo "FAIL $name (see $OUT/$name.log)"; fail=1; fi
}
have() { "$PY" -c "import $1" 2>/dev/null; }

"$BIN" synth-data --output-prefix "$OUT/data" --vocab-size 101 --num-docs 40 2>/dev/null
"$BIN" train --model tiny --vocab-size 101 --make-vocab-size-divisible-by 1 --seq-length 16 \
  --train-iters 10 --log-interval 5 --lr 1e-3 --data-path "$OUT/data" --save "$OUT/run" \
  --tensorboard-dir "$OUT/tb" > "$OUT/train.log" 2>&1
"$BIN" convert --input "$OUT/run" --output "$OUT/hf" --dtype bf16 > /dev/null 2>&1

if have torch && have safetensors; then
  check fixtures-vs-pytorch "$PY" tools/reference/check_fixtures.py
  check safetensors-reads-our-export "$PY" -c "
from safetensors.torch import load_file; import json
t = load_file('$OUT/hf/model.safetensors'); c = json.load(open('$OUT/hf/config.json'))
assert len(t) == 3 + 7 * c['num_hidden_layers'], len(t)
assert all(str(v.dtype) == 'torch.bfloat16' for v in t.values())
print(len(t), 'tensors, bf16')"
else
  echo "SKIP fixtures-vs-pytorch, safetensors-reads-our-export (scripts/deps.sh --python; pip install safetensors)"
fi
if have tensorboard; then
  check tensorboard-reads-our-events "$PY" tools/check_tensorboard.py "$OUT/tb" "$OUT/run/metrics.jsonl"
else
  echo "SKIP tensorboard-reads-our-events (pip install tensorboard)"
fi
if "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('megatron') is None)" 2>/dev/null; then
  check megatron-reads-our-dataset "$PY" tools/megatron_read_dataset.py "$OUT/data" 40
  # The GPT/blend index fixtures that tests/data/megatron_indices_test.cpp compares against:
  # regenerated with the installed Megatron-core and compared with the committed ones.
  check megatron-indices-fixtures "$PY" tools/reference/megatron_indices.py --check
  if have sentencepiece && have pyarrow; then
    # preprocess: the same bytes as the Python pipeline (pyarrow/json + sentencepiece + Megatron's
    # IndexedDatasetBuilder) for each handler and input form.
    for c in "alpaca assets/demo/alpaca_demo.parquet" "alpaca assets/demo/alpaca_demo.json" \
             "conversation assets/demo/conversations_demo.json" "plain assets/demo/alpaca_demo.parquet"; do
      set -- $c
      check "preprocess-equals-megatron-builder-$1-${2##*.}" bash -c "
        '$BIN' preprocess --input $2 --output-prefix $OUT/pp_ours_$1 --tokenizer-name-or-path assets/demo/tokenizer \
          --handler-name $1 --append-eod --workers 2 &&
        '$PY' tools/reference/preprocess_ref.py --input $2 --output-prefix $OUT/pp_ref_$1 \
          --tokenizer-name-or-path assets/demo/tokenizer --handler-name $1 --append-eod &&
        cmp $OUT/pp_ours_$1_text_document.bin $OUT/pp_ref_$1_text_document.bin &&
        cmp $OUT/pp_ours_$1_text_document.idx $OUT/pp_ref_$1_text_document.idx &&
        '$PY' tools/megatron_read_dataset.py $OUT/pp_ours_$1_text_document"
    done
  else
    echo "SKIP preprocess-equals-megatron-builder (pip install sentencepiece pyarrow)"
  fi
else
  echo "SKIP megatron-reads-our-dataset (pip install --no-deps megatron-core)"
fi
exit $fail
