#!/usr/bin/env bash
# Trains the demo's SentencePiece tokenizer on the demo corpus and writes it, as a Hugging Face
# tokenizer directory, to assets/demo/tokenizer/ (committed; `make demo` never runs this).
#
# Settings follow Baichuan-13B's tokenizer.model (its trainer_spec, read with a protobuf dump):
# BPE, byte_fallback, character_coverage 1.0, digits one per piece, "\n" and "\t" as user-defined
# pieces (so newlines survive nmt_nfkc normalisation, which would otherwise turn them into spaces),
# remove_extra_whitespaces false (runs of spaces are kept), add_dummy_prefix true, unk 0 / bos 1 /
# eos 2 and no pad piece (pad_token is <unk>). Only the size differs: 1024 pieces instead of 64000,
# so the tiny model's embedding stays small and matches `init --model demo --vocab-size 1024`.
#
# Deterministic: spm_train (Debian's, 0.1.97) gives byte-identical models for the same input file,
# input name and flags (checked by training twice); --num_threads only changes the number recorded
# in the model's trainer_spec, not the vocabulary. The input is the corpus's `text` column split at
# newlines, in row order, with no sampling or shuffling.
#
# Usage: tools/demo/train_demo_tokenizer.sh      (needs /usr/bin/python3 with pyarrow, spm_train)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT="$ROOT/assets/demo/tokenizer"
PYTHON=${PYTHON:-/usr/bin/python3}
VOCAB=1024

command -v spm_train > /dev/null || { echo "train_demo_tokenizer.sh: spm_train not found (apt-get install sentencepiece)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The corpus is regenerated into the temporary directory (the same bytes as assets/demo: the
# generator is deterministic), together with the tokenizer's training lines.
"$PYTHON" "$ROOT/tools/demo/make_demo_corpus.py" --out "$tmp/corpus" \
  --tokenizer-text "$tmp/demo_tokenizer_corpus.txt" > /dev/null
cmp -s "$tmp/corpus/alpaca_demo.parquet" "$ROOT/assets/demo/alpaca_demo.parquet" ||
  echo "train_demo_tokenizer.sh: warning: assets/demo/alpaca_demo.parquet differs from the generator's output; rerun tools/demo/make_demo_corpus.py" >&2

# Relative names: the input name and model prefix are stored in the model's trainer_spec.
(cd "$tmp" && spm_train \
  --input=demo_tokenizer_corpus.txt --model_prefix=tokenizer \
  --model_type=bpe --vocab_size=$VOCAB --character_coverage=1.0 --byte_fallback=true \
  --split_digits=true --user_defined_symbols=$'\n,\t' \
  --normalization_rule_name=nmt_nfkc --add_dummy_prefix=true --remove_extra_whitespaces=false \
  --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1 \
  --max_sentencepiece_length=16 --max_sentence_length=8192 \
  --input_sentence_size=0 --shuffle_input_sentence=false --num_threads=1 --random_seed=1 \
  > spm_train.log 2>&1) || { cat "$tmp/spm_train.log" >&2; exit 1; }

mkdir -p "$OUT"
cp "$tmp/tokenizer.model" "$OUT/tokenizer.model"

# As Baichuan-13B's: no bos/eos added by the tokenizer (the data pipeline appends eos itself),
# pad is <unk>. LlamaTokenizer (legacy) encodes exactly like BaichuanTokenizer and needs no
# remote code.
token() { printf '{\n    "content": "%s",\n    "lstrip": false,\n    "normalized": true,\n    "rstrip": false,\n    "single_word": true\n  }' "$1"; }
cat > "$OUT/tokenizer_config.json" <<EOF
{
  "add_bos_token": false,
  "add_eos_token": false,
  "bos_token": $(token '<s>'),
  "clean_up_tokenization_spaces": false,
  "eos_token": $(token '</s>'),
  "legacy": true,
  "model_max_length": 4096,
  "pad_token": $(token '<unk>'),
  "sp_model_kwargs": {},
  "tokenizer_class": "LlamaTokenizer",
  "unk_token": $(token '<unk>')
}
EOF
cat > "$OUT/special_tokens_map.json" <<EOF
{
  "bos_token": $(token '<s>'),
  "eos_token": $(token '</s>'),
  "unk_token": $(token '<unk>'),
  "pad_token": $(token '<unk>')
}
EOF

echo "wrote $OUT: $VOCAB pieces, $(stat -c %s "$OUT/tokenizer.model") bytes"
printf 'Below is an instruction that describes a task.\nWhat is 345 + 27?\n' |
  spm_encode --model="$OUT/tokenizer.model" --output_format=piece
