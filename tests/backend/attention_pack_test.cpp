// The bf16 attention's operand layouts (backend/cpu/attention_pack.h, transpose.h): the vector
// forms equal their element-loop twins bit for bit, and the twins equal the layouts' definitions,
// at the shapes the kernel uses (64-row key blocks, head dims 64 and 128) and at ones that leave
// every remainder (rows and columns not multiples of 16 or 32, odd k, strides wider than the data),
// with the padding zero. A destination is pre-filled with a non-zero pattern so a missed element
// shows.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "backend/cpu/attention_pack.h"
#include "backend/cpu/transpose.h"
#include "test_util.h"

namespace cs {
namespace {
using cpu::Bf16;

std::vector<Bf16> random_bf16(size_t n, uint32_t seed) {
  const auto x = test::randn(n, 1.0, seed);
  std::vector<Bf16> y(n);
  for (size_t i = 0; i < n; ++i) y[i] = Bf16{uint16_t(f32_to_bf16(float(x[i])))};
  return y;
}
bool same(const std::vector<Bf16>& a, const std::vector<Bf16>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(Bf16)) == 0;
}
uint16_t at(const std::vector<Bf16>& v, int64_t i) { return v[size_t(i)].bits; }

TEST(Transpose32, EqualsTheDefinition) {
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{64, 64}, {16, 16}, {37, 21}, {5, 70}, {33, 3}}) {
    const int64_t lds = cols + 5, ldd = rows + 3;
    std::vector<float> src(size_t(rows * lds)), dst(size_t(cols * ldd), -7.f);
    for (size_t i = 0; i < src.size(); ++i) src[i] = float(i) + 0.5f;
    cpu::transpose32(src.data(), lds, rows, cols, dst.data(), ldd);
    for (int64_t j = 0; j < cols; ++j)
      for (int64_t i = 0; i < ldd; ++i)
        ASSERT_EQ(dst[size_t(j * ldd + i)], i < rows ? src[size_t(i * lds + j)] : -7.f)
            << rows << "x" << cols << " at " << j << "," << i;
  }
}

TEST(AttentionPack, PackNkEqualsTheDefinition) {
  for (auto [n, k, ldb] : {std::tuple<int64_t, int64_t, int64_t>{64, 64, 64}, {64, 128, 64}, {37, 64, 64},
                           {5, 6, 16}, {19, 34, 32}}) {
    SCOPED_TRACE(::testing::Message() << "n " << n << " k " << k << " ldb " << ldb);
    const int64_t lds = k + 6;
    const auto src = random_bf16(size_t(n * lds), 51);
    std::vector<Bf16> got(size_t(k / 2 * ldb * 2), Bf16{0x4000}), port(got);
    cpu::pack_nk(src.data(), lds, n, k, ldb, got.data());
    cpu::pack_nk_portable(src.data(), lds, n, k, ldb, port.data());
    EXPECT_TRUE(same(got, port));
    for (int64_t p = 0; p < k / 2; ++p)
      for (int64_t j = 0; j < ldb; ++j)
        for (int64_t e = 0; e < 2; ++e)
          ASSERT_EQ(at(port, (p * ldb + j) * 2 + e), j < n ? at(src, j * lds + 2 * p + e) : 0);
  }
}

TEST(AttentionPack, PackKnEqualsTheDefinition) {
  for (auto [k, n, ldb] : {std::tuple<int64_t, int64_t, int64_t>{64, 64, 64}, {64, 128, 128}, {37, 64, 64},
                           {5, 6, 16}, {19, 34, 48}, {1, 20, 32}}) {
    SCOPED_TRACE(::testing::Message() << "k " << k << " n " << n << " ldb " << ldb);
    const int64_t lds = n + 6, kp = (k + 1) / 2;
    const auto src = random_bf16(size_t(k * lds), 52);
    std::vector<Bf16> got(size_t(kp * ldb * 2), Bf16{0x4000}), port(got);
    cpu::pack_kn(src.data(), lds, k, n, ldb, got.data());
    cpu::pack_kn_portable(src.data(), lds, k, n, ldb, port.data());
    EXPECT_TRUE(same(got, port));
    for (int64_t p = 0; p < kp; ++p)
      for (int64_t j = 0; j < ldb; ++j)
        for (int64_t e = 0; e < 2; ++e) {
          const int64_t r = 2 * p + e;
          ASSERT_EQ(at(port, (p * ldb + j) * 2 + e), r < k && j < n ? at(src, r * lds + j) : 0) << p << "," << j;
        }
  }
}

TEST(AttentionPack, TransposeHeadEqualsTheDefinition) {
  for (auto [t_len, hd] : {std::pair<int64_t, int64_t>{512, 64}, {128, 128}, {37, 64}, {17, 6}, {50, 34}}) {
    SCOPED_TRACE(::testing::Message() << "T " << t_len << " hd " << hd);
    const int64_t tpad = t_len + (t_len & 1);
    const auto x = random_bf16(size_t(t_len * hd), 53);
    std::vector<Bf16> got(size_t(hd * tpad), Bf16{0x4000}), port(got);
    cpu::transpose_head(x.data(), t_len, hd, tpad, got.data());
    cpu::transpose_head_portable(x.data(), t_len, hd, tpad, port.data());
    EXPECT_TRUE(same(got, port));
    for (int64_t d = 0; d < hd; ++d)
      for (int64_t i = 0; i < tpad; ++i)
        ASSERT_EQ(at(port, d * tpad + i), i < t_len ? at(x, i * hd + d) : 0) << d << "," << i;
  }
}

}  // namespace
}  // namespace cs
