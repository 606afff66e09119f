#!/usr/bin/env bash
# make bench-convert: `chuanspeed convert` throughput and peak RSS on a synthetic
# Baichuan-7B-shaped checkpoint (4 layers, bf16; tools/make_synthetic_checkpoint.py writes it with
# safetensors and with torch.save), beside `dd` reading the same file, same run.
#   HF safetensors -> native fp32, HF .bin -> native fp32, native -> HF bf16 (checked bit-exact).
# Needs /usr/bin/python3 with torch and safetensors (the generator only) and ~16 GB free under
# WORK (default /tmp/cs_bench_convert); everything written is removed at exit.
set -euo pipefail
BUILD=${1:-build}
BIN=$BUILD/chuanspeed
PY=${PYTHON:-/usr/bin/python3}
WORK=${WORK:-/tmp/cs_bench_convert}
LAYERS=${LAYERS:-4}
NEED_GB=16

mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
avail=$(df --output=avail -BG "$WORK" | tail -1 | tr -dc 0-9)
echo "== disk: ${avail} GB free under $WORK (need ${NEED_GB})"
df -h "$WORK" | tail -1
if [ "$avail" -lt "$NEED_GB" ]; then echo "not enough space under $WORK: set WORK=" >&2; exit 1; fi
echo "== memory: $(free -g | awk '/Mem:/ {print $2 " GB total, " $7 " GB available"}') (the page cache can hold the files: dd figures are warm-cache)"

"$PY" tools/make_synthetic_checkpoint.py --output "$WORK" --layers "$LAYERS"

# cached: the share of FILE in the page cache right now (fincore), or "unknown".
cached() { fincore -b -n -o RES,SIZE "$1" 2>/dev/null | awk '{printf "%.0f%%", 100 * $1 / ($2 > 0 ? $2 : 1)}' || echo unknown; }
ddspeed() { dd if="$1" of=/dev/null bs=16M 2>&1 | tail -1 | sed 's/.*s, //'; }

# convert_run LABEL FILE ARGS...: dd of FILE, then the conversion under /usr/bin/time -v.
convert_run() {
  local label=$1 file=$2
  shift 2
  local size
  size=$(stat -c %s "$file")
  sync  # earlier writes (the generator's, the last conversion's) finish first; the cache stays
  echo "== $label"
  echo "   input $file: $(awk -v s="$size" 'BEGIN {printf "%.2f GB", s / 1e9}'), page cache before dd: $(cached "$file")"
  echo "   dd if=FILE of=/dev/null bs=16M: $(ddspeed "$file")"
  if ! CS_LOG_QUIET=1 /usr/bin/time -v "$BIN" convert "$@" 2>"$WORK/time.txt" >"$WORK/out.txt"; then
    grep -v '^\s' "$WORK/time.txt" >&2
    exit 1
  fi
  sed 's/^/   /' "$WORK/out.txt"
  echo "   peak RSS (/usr/bin/time -v): $(awk '/Maximum resident/ {printf "%.0f MB", $NF / 1024}' "$WORK/time.txt")"
}

convert_run "HF safetensors (bf16) -> native fp32" "$WORK/st/model.safetensors" \
  --input "$WORK/st" --output "$WORK/native"
convert_run "HF pytorch_model.bin (bf16, torch.save) -> native fp32" "$WORK/bin/pytorch_model.bin" \
  --input "$WORK/bin" --output "$WORK/native_bin"
rm -rf "$WORK/native_bin" "$WORK/bin"
# The disk's write speed for the same amount (fsynced, as the converter's files are): the bound
# for HF -> native, which writes twice what it reads (bf16 in, fp32 out).
wsize=$(stat -c %s "$WORK/native/iter_0000000/model-tp00-pp000.safetensors")
echo "== disk write: dd if=/dev/zero of=FILE bs=16M conv=fsync, $(awk -v s="$wsize" 'BEGIN {printf "%.2f GB", s / 1e9}'): \
$(dd if=/dev/zero of="$WORK/zero" bs=16M count=$((wsize / 16777216)) conv=fsync 2>&1 | tail -1 | sed 's/.*s, //')"
rm -f "$WORK/zero"
convert_run "native fp32 -> HF bf16" "$WORK/native/iter_0000000/model-tp00-pp000.safetensors" \
  --input "$WORK/native" --output "$WORK/back" --dtype bf16
convert_run "HF safetensors (bf16) -> native fp32, TP 4 x PP 2" "$WORK/st/model.safetensors" \
  --input "$WORK/st" --output "$WORK/native_tp4pp2" --tensor-model-parallel-size 4 --pipeline-model-parallel-size 2
if cmp -s "$WORK/st/model.safetensors" "$WORK/back/model.safetensors"; then
  echo "== round trip HF -> native -> HF: byte-identical file"
else
  "$PY" - "$WORK/st/model.safetensors" "$WORK/back/model.safetensors" <<'PY'
import sys
from safetensors import safe_open
a, b = (safe_open(p, "pt") for p in sys.argv[1:])
bad = [k for k in a.keys() if not a.get_tensor(k).equal(b.get_tensor(k))]
print("== round trip HF -> native -> HF:", "every tensor bit-exact" if not bad else f"MISMATCH in {bad[:3]}")
sys.exit(1 if bad else 0)
PY
fi
