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
# One xz archive to carry (a device call takes at most 64 MiB of files): bench/gpu_check.sh unpacks it.
tar cJf gpu-bundle.tar.xz "$OUT"
echo "[gpu_bundle] $(du -sh "$OUT" | cut -f1) in $OUT/, $(du -sh gpu-bundle.tar.xz | cut -f1) in gpu-bundle.tar.xz"
