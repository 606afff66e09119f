// The parts of CUB the CUDA backend uses, as the emulated GPU runs them: DeviceRadixSort::SortPairs
// (stable, on the key bits [begin_bit, end_bit) with a signed key's sign bit flipped, as CUB's
// radix sort orders signed integers; the size query first, then the sort in the scratch it asked
// for) and BlockScan's ExclusiveSum (a block-wide collective: every thread of a block of exactly
// the scan's size must call it).
#pragma once
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <type_traits>
#include <vector>

#include "cuda_emu/device/emulated_gpu.h"

namespace cub {

struct DeviceRadixSort {
  template <typename K, typename V, typename N>
  static cudaError_t SortPairs(void* temp, size_t& temp_bytes, const K* keys_in, K* keys_out, const V* values_in,
                               V* values_out, N num_items, int begin_bit = 0, int end_bit = int(sizeof(K) * 8),
                               cudaStream_t stream = nullptr) {
    static_assert(std::is_integral_v<K>, "the emulated radix sort takes integer keys");
    const size_t n = num_items > 0 ? size_t(num_items) : 0;
    if (!temp) {  // the size query
      temp_bytes = n * (sizeof(K) + sizeof(V)) + 256;
      return cudaSuccess;
    }
    if (emu::gpu::sticky() != cudaSuccess) return emu::gpu::sticky();
    if (!emu::gpu::live_stream(stream)) return cudaErrorInvalidResourceHandle;
    if (begin_bit < 0 || end_bit > int(sizeof(K) * 8) || begin_bit > end_bit ||
        temp_bytes < n * (sizeof(K) + sizeof(V)) + 256 || !emu::gpu::device_range(temp, temp_bytes))
      return cudaErrorInvalidValue;
    if (!n) return cudaSuccess;
    for (const void* p : {static_cast<const void*>(keys_in), static_cast<const void*>(keys_out)})
      if (!emu::gpu::device_range(p, n * sizeof(K))) return cudaErrorIllegalAddress;
    for (const void* p : {static_cast<const void*>(values_in), static_cast<const void*>(values_out)})
      if (!emu::gpu::device_range(p, n * sizeof(V))) return cudaErrorIllegalAddress;
    using U = std::make_unsigned_t<K>;
    const U sign = std::is_signed_v<K> ? U(U(1) << (sizeof(K) * 8 - 1)) : U(0);
    const int width = end_bit - begin_bit;
    const U mask = width >= int(sizeof(U) * 8) ? U(~U(0)) : U((U(1) << width) - 1);
    auto digit = [&](size_t i) { return U((U(keys_in[i]) ^ sign) >> begin_bit) & mask; };
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), size_t(0));
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return digit(a) < digit(b); });
    std::vector<K> k(n);
    std::vector<V> v(n);
    for (size_t i = 0; i < n; ++i) k[i] = keys_in[order[i]], v[i] = values_in[order[i]];
    std::copy(k.begin(), k.end(), keys_out);
    std::copy(v.begin(), v.end(), values_out);
    return cudaSuccess;
  }
};

template <typename T, int kThreads>
class BlockScan {
 public:
  struct TempStorage {
    T v[kThreads];
  };
  explicit BlockScan(TempStorage& s) : s_(s) {
    if (blockDim.x != unsigned(kThreads)) {
      std::fprintf(stderr, "[emulated gpu] BlockScan<%d> in a block of %u threads\n", kThreads, blockDim.x);
      std::abort();
    }
  }
  void ExclusiveSum(T in, T& out) {
    s_.v[threadIdx.x] = in;
    __syncthreads();
    T acc{};
    for (unsigned i = 0; i < threadIdx.x; ++i) acc += s_.v[i];
    out = acc;  // no barrier after: as with CUB, a caller that reuses the storage must sync first
  }

 private:
  TempStorage& s_;
};

}  // namespace cub
