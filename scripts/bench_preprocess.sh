#!/usr/bin/env bash
# make bench-preprocess: `chuanspeed preprocess` throughput (documents/s, tokens/s, MB/s) with 1
# and 2 workers on a >= 50 MB JSONL corpus, beside SentencePiece alone encoding the same texts in
# one thread (and through preprocess's word cache) and the Python pipeline doing the same job (json + sentencepiece +
# Megatron's IndexedDatasetBuilder; tools/reference/preprocess_ref.py), same run, as ratios; and
# peak RSS on a corpus a quarter of the size, to show memory does not grow with the input.
set -euo pipefail
BUILD=${1:-build}
PY=${PYTHON:-/usr/bin/python3}
MB=${MB:-64}
OUT=out/bench-preprocess
TOK=assets/demo/tokenizer
rm -rf "$OUT"; mkdir -p "$OUT/small"
"$PY" tools/bench/make_preprocess_corpus.py "$OUT" "$MB"
"$PY" tools/bench/make_preprocess_corpus.py "$OUT/small" "$((MB / 4))"
timed() {  # label, command... -> prints the command's last line and "label seconds peak_kB"
  local label=$1; shift
  /usr/bin/time -f "$label %e %M" -o "$OUT/time.txt" "$@" > "$OUT/cmd.txt" 2>&1 || { cat "$OUT/cmd.txt"; exit 1; }
  tail -n 1 "$OUT/cmd.txt" | grep -v '^wrote' || grep '^preprocessed' "$OUT/cmd.txt"
  cat "$OUT/time.txt" >> "$OUT/times.txt"
}
: > "$OUT/times.txt"
echo "== SentencePiece alone vs through the word cache, one thread, texts in memory"
"$BUILD/bench/tokenize_bench" "$TOK" "$OUT/texts.bin" | tee "$OUT/spm.json"
BAICHUAN=../shared/reference/baichuan-13b-base
if [ -f "$BAICHUAN/tokenizer.model" ]; then
  echo "== the same with the Baichuan-13B tokenizer"
  "$BUILD/bench/tokenize_bench" "$BAICHUAN" "$OUT/texts.bin"
fi
for w in 1 2; do
  echo "== chuanspeed preprocess --workers $w"
  timed "ours$w" "$BUILD/chuanspeed" preprocess --input "$OUT/corpus.jsonl" --output-prefix "$OUT/ours$w" \
    --tokenizer-name-or-path "$TOK" --append-eod --workers "$w" --log-interval 0
done
cmp "$OUT/ours1_text_document.bin" "$OUT/ours2_text_document.bin"
cmp "$OUT/ours1_text_document.idx" "$OUT/ours2_text_document.idx"
echo "   1 and 2 workers: identical bytes"
timed "small1" "$BUILD/chuanspeed" preprocess --input "$OUT/small/corpus.jsonl" --output-prefix "$OUT/small/ours" \
  --tokenizer-name-or-path "$TOK" --append-eod --workers 1 --log-interval 0 > /dev/null
if "$PY" -c "import sentencepiece, numpy" 2>/dev/null && "$PY" -c "import importlib.util as u, sys; sys.exit(u.find_spec('megatron') is None)"; then
  for w in 1 2; do
    echo "== Python pipeline (json + sentencepiece + Megatron's IndexedDatasetBuilder), $w process(es)"
    timed "py$w" "$PY" tools/reference/preprocess_ref.py --input "$OUT/corpus.jsonl" --output-prefix "$OUT/py$w" \
      --tokenizer-name-or-path "$TOK" --append-eod --workers "$w"
  done
  cmp "$OUT/ours1_text_document.bin" "$OUT/py1_text_document.bin" && cmp "$OUT/ours1_text_document.idx" "$OUT/py1_text_document.idx"
  echo "   chuanspeed and the Python pipeline: identical bytes"
else
  echo "== Python pipeline skipped (pip install sentencepiece; pip install --no-deps megatron-core)"
fi
"$PY" - "$OUT" "$MB" <<'PY'
import json, sys
out, mb = sys.argv[1], float(sys.argv[2])
rows = {r["bench"]: r for r in map(json.loads, open(f"{out}/spm.json"))}
spm, cached = rows["sentencepiece_alone"], rows["word_cached"]
t = {l.split()[0]: (float(l.split()[1]), int(l.split()[2])) for l in open(f"{out}/times.txt")}
docs, tokens = spm["documents"], spm["tokens"]
print(f"corpus: {docs} documents, {mb:.0f} MB; 1 thread: SentencePiece alone {spm['tokens_per_s']:.0f} tokens/s, "
      f"through the word cache {cached['tokens_per_s']:.0f} tokens/s ({cached['tokens_per_s'] / spm['tokens_per_s']:.2f}x)")
for k, name in (("ours1", "chuanspeed, 1 worker"), ("ours2", "chuanspeed, 2 workers"),
                ("py1", "python pipeline, 1 process"), ("py2", "python pipeline, 2 processes")):
    if k in t:
        s, rss = t[k]
        print(f"{name:30s} {s:6.2f} s  {docs / s:8.0f} docs/s  {tokens / s:9.0f} tokens/s  {mb / s:6.1f} MB/s  "
              f"{tokens / s / spm['tokens_per_s']:.2f}x SentencePiece alone  peak RSS {rss / 1024:.0f} MiB")
for w in ("1", "2"):
    if "py" + w in t:
        print(f"ratio chuanspeed / python pipeline, {w} worker(s): {t['py' + w][0] / t['ours' + w][0]:.2f}x")
print(f"peak RSS, 1 worker: {t['small1'][1] / 1024:.0f} MiB on {mb / 4:.0f} MB, {t['ours1'][1] / 1024:.0f} MiB on {mb:.0f} MB")
PY
rm -rf "$OUT"/*.bin "$OUT"/*.idx "$OUT/small"
