#!/usr/bin/env bash
# Compiler launcher of the warpgroup-MMA attention (src/backend/CMakeLists.txt): runs the compile
# and fails it when ptxas reports "Potential Performance Loss" (wgmma.mma_async serialised: a
# running product's registers written, or a product issued under a condition ptxas cannot prove
# uniform). ptxas prints that as information, not as a warning, so -Werror does not catch it, and
# a kernel that lost its overlap would still build and pass every test, only slower. The object
# is removed so the next build compiles it again rather than keeping it.
set -uo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$@" >"$log" 2>&1
rc=$?
cat "$log"
((rc == 0)) || exit "$rc"
if grep -q 'Potential Performance Loss' "$log"; then
  out=
  prev=
  for arg in "$@"; do
    [[ $prev == -o ]] && out=$arg
    prev=$arg
  done
  [[ -n $out ]] && rm -f "$out"
  echo "error: ptxas serialised the wgmma products above (the kernel builds, but without its overlap):" \
       "keep the products' registers untouched until their wait, and issue them under uniform conditions" >&2
  exit 1
fi
