#!/usr/bin/env bash
# Packs what bench/gpu_check.sh runs on a GPU machine into gpu-bundle/ and gpu-bundle.tar.xz
# (both git-ignored): the CUDA
# build's chuanspeed, gpu_bench and the test binaries with cuda-labelled tests, and every shared
# library they load from this machine's Debian packages (OpenBLAS, oneDNN, SentencePiece, fmt,
# Open MPI, GoogleTest...), which a GPU image need not have. Not packed: glibc (the GPU image's is
# newer) and the CUDA libraries (cudart, cuBLASLt: the image's own CUDA 13, found at run time).
# Usage: scripts/gpu_bundle.sh [BUILD]   (BUILD: a CUDA-enabled build folder, default build)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
grep -q "CS_WITH_CUDA:BOOL=ON" "$BUILD/CMakeCache.txt" 2>/dev/null ||
  { echo "[gpu_bundle] $BUILD is not a CUDA build. Hint: cmake -S . -B $BUILD -DCS_WITH_CUDA=ON" >&2; exit 1; }
cmake --build "$BUILD" -j "$(nproc)" --target chuanspeed gpu_bench backend_ops_test backend_attention_test \
  backend_attention_bf16_test backend_attention_packed_test backend_bf16_ops_test backend_reduce_cast_test \
  backend_memory_test backend_arg_check_test cuda_model_parity_test >/dev/null
# A hash of the contents of src/, tests/ and bench/ as they travel: tracked and untracked files
# that git does not ignore (gpu_check.sh has the same function over the files it finds).
source_hash() {
  git ls-files --cached --others --exclude-standard -- src tests bench | LC_ALL=C sort | xargs sha1sum | sha1sum | cut -c1-16
}
OUT=gpu-bundle
rm -rf "$OUT"; mkdir -p "$OUT/bin" "$OUT/tests" "$OUT/lib"
cp "$BUILD/chuanspeed" "$BUILD/bench/gpu_bench" "$OUT/bin/"
for t in "$BUILD"/tests/backend_*_test "$BUILD"/tests/cuda_*_test; do
  [[ "$t" == *_mpi_* ]] || cp "$t" "$OUT/tests/"
done
# Shared libraries outside glibc and CUDA, resolved here.
for f in "$OUT"/bin/* "$OUT"/tests/*; do ldd "$f"; done | awk '/=> \//{print $3}' | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*|libcuda.so*|libcudart.so*|libcublas*|libnccl*) ;;
    *) cp -L "$lib" "$OUT/lib/" ;;
  esac
done
strip "$OUT"/bin/* "$OUT"/tests/*
# The sources this bundle was built from (what a device call carries of src/, tests/ and bench/),
# which gpu_check.sh recomputes there: a bundle older than the checkout it runs beside is refused.
source_hash > "$OUT/STAMP"
# One xz archive to carry (a device call takes at most 64 MiB of files): bench/gpu_check.sh unpacks it.
# xz -9: its 64 MiB window spans several binaries, whose CUDA kernels (the same fatbin, linked
# into each) then compress to one copy: 26 MB where the default level gave 60.
tar cf - "$OUT" | xz -9 -T2 > gpu-bundle.tar.xz
echo "[gpu_bundle] $(du -sh "$OUT" | cut -f1) in $OUT/, $(du -sh gpu-bundle.tar.xz | cut -f1) in gpu-bundle.tar.xz"
