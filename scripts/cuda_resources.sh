#!/usr/bin/env bash
# What ptxas gives every kernel of src/backend/cuda (registers, static shared memory, spills) for
# sm_80 and sm_90 (sm_90a for the warpgroup-MMA file, as the build does), and the one launch failure the emulated GPU cannot see: a kernel that uses more
# than 64 registers per thread fails to launch a 1024-thread block ("too many resources requested
# for launch") unless its __launch_bounds__ made ptxas fit its block size. Exit status 1 when a
# kernel over 64 registers has no __launch_bounds__, or static shared memory exceeds 48 KB.
# Usage: scripts/cuda_resources.sh [ARCH...]   (default: 80 90; about 7 minutes per arch here)
set -euo pipefail
cd "$(dirname "$0")/.."
NVCC=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
[[ -x "$NVCC" ]] || { echo "[cuda_resources] nvcc not found. Hint: install the CUDA toolkit or set NVCC" >&2; exit 1; }
ARCHS=("$@")
[[ ${#ARCHS[@]} -gt 0 ]] || ARCHS=(80 90)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for f in src/backend/cuda/*.cu; do
  for a in "${ARCHS[@]}"; do
    # wgmma exists on sm_90a only: the build compiles that file alone for it (src/backend/CMakeLists.txt).
    [[ "$a" == 90 && "$f" == */attention_wgmma.cu ]] && a=90a
    # The build's flags that change code generation (CMakeLists.txt, src/backend/CMakeLists.txt).
    "$NVCC" -O3 -DNDEBUG -DCS_WITH_CUDA -DCS_WITH_MPI -I src -isystem /usr/include/x86_64-linux-gnu/openblas-openmp \
      --expt-relaxed-constexpr -lineinfo -std=c++20 -arch="sm_$a" --resource-usage -c "$f" -o "$OUT/k.o" \
      >"$OUT/$(basename "$f" .cu).$a.txt" 2>&1 || { cat "$OUT/$(basename "$f" .cu).$a.txt" >&2; exit 1; }
  done
done
python3 - "$OUT" <<'EOF'
import glob, re, subprocess, sys
src = "".join(open(p).read() for p in glob.glob("src/backend/cuda/*.cu*"))
bounded = set(re.findall(r"__launch_bounds__\([^)]*\)\s+(\w+)\s*\(", src))
bad, rows = [], []
for path in sorted(glob.glob(sys.argv[1] + "/*.txt")):
    name = None
    for line in open(path):
        m = re.search(r"Compiling entry function '(\S+)' for '(\S+)'", line)
        if m:
            name, arch, spill = m.group(1), m.group(2), "0"
        m = re.search(r"(\d+) bytes spill stores", line)
        if m and name:
            spill = m.group(1)
        m = re.search(r"Used (\d+) registers", line)
        if m and name:
            regs = int(m.group(1))
            s = re.search(r"(\d+) bytes smem", line)
            smem = int(s.group(1)) if s else 0
            pretty = subprocess.run(["c++filt", name], capture_output=True, text=True).stdout.strip()
            # "void ns::name<T, N>(args)" or "ns::(anonymous namespace)::name(args)" -> "name"
            bare = pretty.replace("(anonymous namespace)", "anon").removeprefix("void ")
            base = re.split(r"[<(]", bare, maxsplit=1)[0].split("::")[-1]
            rows.append((arch, regs, smem, spill, pretty[:110]))
            ours = not pretty.split("::")[0].endswith("cub")
            if ours and regs > 64 and base not in bounded:
                bad.append(f"{arch} {pretty}: {regs} registers and no __launch_bounds__")
            if smem > 48 * 1024:
                bad.append(f"{arch} {pretty}: {smem} bytes of static shared memory (limit 48 KB)")
            name = None
print(f"{'arch':7} {'regs':>4} {'smem':>6} {'spill':>5}  kernel")
for r in sorted(rows, key=lambda r: (-r[1], r[4])):
    print(f"{r[0]:7} {r[1]:4d} {r[2]:6d} {r[3]:>5}  {r[4]}")
print(f"{len(rows)} kernels; {len(bad)} problem(s)")
for b in bad:
    print("[cuda_resources] " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
