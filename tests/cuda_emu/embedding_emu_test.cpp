// The GPU embedding backward's kernels (src/backend/cuda/embedding_kernels.cuh), their own text,
// run on the CPU under the emulation: keys, then a stable sort by key (std::stable_sort standing
// in for cub::DeviceRadixSort, which is stable), then one block per run of equal keys. The result
// must have the bits of the plain walk over the tokens (the CPU backend's order): runs longer than
// a staged chunk, tokens outside the shard, a row in several column slices, fewer blocks than
// runs or slices (the grid-stride loops).
#include <gtest/gtest.h>

#include <numeric>

#include "cuda_emu/launch.h"
#include "backend/cuda/embedding_kernels.cuh"

namespace {
namespace embed = cs::cuda::embed;

// dw after the backward of tokens ids (shard rows [off, off + v)) with gradient rows dout, by the kernels.
std::vector<float> kernels(const std::vector<int32_t>& ids, int64_t v, int64_t off, int64_t d,
                           const std::vector<float>& dout, std::vector<float> dw) {
  const int64_t n = int64_t(ids.size());
  std::vector<int32_t> keys(size_t(n), -7), pos(size_t(n), -7);
  emu::launch(3, 1, 64, 0, [&] { embed::keys_kernel(ids.data(), n, v, off, keys.data(), pos.data()); });
  std::vector<int32_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return keys[size_t(a)] < keys[size_t(b)]; });
  std::vector<int32_t> sk(static_cast<size_t>(n)), sp(static_cast<size_t>(n));
  for (size_t i = 0; i < size_t(n); ++i) {
    sk[i] = keys[size_t(order[i])];
    sp[i] = pos[size_t(order[i])];
  }
  // Fewer blocks than sorted indices: the grid-stride loop takes the rest; a column slice per
  // block row, and a second block row when the row has slices to spare (then one takes two).
  const unsigned slices = unsigned((d + embed::kColsPerBlock - 1) / embed::kColsPerBlock);
  emu::launch(unsigned(std::min<int64_t>(n, 97)), slices > 2 ? slices - 1 : slices, embed::kThreads, 0,
              [&] { embed::runs_kernel(sk.data(), sp.data(), n, v, d, dout.data(), dw.data()); });
  return dw;
}

// The walk over the tokens in order, as the CPU backend sums.
std::vector<float> walk(const std::vector<int32_t>& ids, int64_t v, int64_t off, int64_t d,
                        const std::vector<float>& dout, std::vector<float> dw) {
  for (size_t i = 0; i < ids.size(); ++i) {
    const int64_t row = int64_t(ids[i]) - off;
    if (row < 0 || row >= v) continue;
    for (int64_t j = 0; j < d; ++j) dw[size_t(row * d + j)] += dout[i * size_t(d) + size_t(j)];
  }
  return dw;
}

void check(const std::vector<int32_t>& ids, int64_t v, int64_t off, int64_t d, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> dout(ids.size() * size_t(d)), dw(size_t(v * d));
  for (auto& x : dout) x = nd(rng);
  for (auto& x : dw) x = nd(rng);
  const std::vector<float> got = kernels(ids, v, off, d, dout, dw), want = walk(ids, v, off, d, dout, dw);
  ASSERT_EQ(got.size(), want.size());
  size_t differ = 0;
  for (size_t i = 0; i < got.size(); ++i) differ += std::memcmp(&got[i], &want[i], sizeof(float)) != 0;
  EXPECT_EQ(differ, 0u) << "of " << got.size() << " weight-gradient elements differ from the walk's bits";
}

TEST(EmbeddingBackwardEmulated, SameBitsAsTheWalkOverTokens) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int32_t> tok(0, 99);
  // 600 of 1000 tokens are one token (a run over three staged chunks), the rest spread over 100
  // ids, of which this shard holds [20, 70); hidden 2100 (a second pass of columns, partly filled).
  std::vector<int32_t> ids(1000);
  for (auto& x : ids) x = tok(rng);
  for (size_t i = 0; i < ids.size(); i += 5)
    for (size_t k = i; k < i + 3 && k < ids.size(); ++k) ids[k] = 33;
  check(ids, 50, 20, 2100, 1);
  // Three column slices over two block rows (one block row takes two), a run past one chunk.
  std::vector<int32_t> wide(300);
  for (size_t i = 0; i < wide.size(); ++i) wide[i] = i % 7 != 3 ? 4 : int32_t(i % 9);
  check(wide, 9, 0, 4500, 5);
  // A run of exactly one chunk, ending the sort; a run of one token; nothing in the shard.
  std::vector<int32_t> one_chunk(size_t(embed::kChunk), 7);
  one_chunk.push_back(3);
  check(one_chunk, 8, 0, 9, 2);
  check({5}, 10, 0, 3, 3);
  check({1, 2, 3}, 4, 10, 5, 4);
}

TEST(EmbeddingBackwardEmulated, KeyBitsHoldTheSentinel) {
  for (int64_t v : {1, 2, 7, 8, 50, 64, 64000, 125696}) {
    const int bits = embed::key_bits(v);
    EXPECT_GT(int64_t(1) << bits, v) << v;
    EXPECT_LE(int64_t(1) << (bits - 1), v) << v;
  }
}

}  // namespace
