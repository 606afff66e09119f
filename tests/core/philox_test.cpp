// Philox-4x32-10 against the Random123 known-answer vectors, and the normal generator's moments.
#include <gtest/gtest.h>

#include <cmath>

#include "core/half.h"
#include "core/philox.h"

namespace cs {
namespace {

TEST(Philox, KnownAnswerVectors) {
  // Random123 kat_vectors: philox4x32 10 rounds, counter 0 / key 0 and counter ~0 / key ~0.
  PhiloxBlock z = philox4x32(0, 0, 0);
  EXPECT_EQ(z[0], 0x6627e8d5u);
  EXPECT_EQ(z[1], 0xe169c58du);
  EXPECT_EQ(z[2], 0xbc57ac4cu);
  EXPECT_EQ(z[3], 0x9b00dbd8u);
  PhiloxBlock f = philox4x32(~0ull, ~0ull, ~0ull);
  EXPECT_EQ(f[0], 0x408f276du);
  EXPECT_EQ(f[1], 0x41c83b0eu);
  EXPECT_EQ(f[2], 0xa20bc7c6u);
  EXPECT_EQ(f[3], 0x6d5451fdu);
}

TEST(Philox, NormalMomentsAndIndependenceOfOrder) {
  const uint64_t key = philox_key(42, "model.layers.0.mlp.up_proj.weight");
  std::vector<float> a(100000), b(50000);
  philox_fill_normal(a.data(), int64_t(a.size()), key, 0, 0.f, 1.f);
  philox_fill_normal(b.data(), int64_t(b.size()), key, 50000, 0.f, 1.f);  // a second "shard"
  for (size_t i = 0; i < b.size(); ++i) ASSERT_EQ(a[50000 + i], b[i]);
  double m = 0, v = 0;
  for (float x : a) { m += x; v += double(x) * x; }
  m /= double(a.size());
  v = v / double(a.size()) - m * m;
  EXPECT_NEAR(m, 0.0, 0.02);
  EXPECT_NEAR(v, 1.0, 0.02);
  EXPECT_NE(philox_key(42, "a"), philox_key(42, "b"));
  EXPECT_NE(philox_key(42, "a"), philox_key(43, "a"));
}

TEST(Half, Bf16AndF16Conversions) {
  EXPECT_EQ(bf16_to_f32(0x3f80), 1.0f);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(3.140625f)), 3.140625f);
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80);  // ties to even
  EXPECT_EQ(f16_to_f32(0x3c00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xc000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x7bff), 65504.0f);
  EXPECT_TRUE(std::isinf(f16_to_f32(0x7c00)));
}

}  // namespace
}  // namespace cs

namespace cs {
namespace {
TEST(Half, F16RoundTripsEveryHalfAndRoundsToNearestEven) {
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const uint16_t x = uint16_t(h);
    const float f = f16_to_f32(x);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f))));
      continue;
    }
    ASSERT_EQ(f32_to_f16(f), x) << std::hex << h;
  }
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie -> even (down)
  EXPECT_EQ(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie -> even (up)
  EXPECT_EQ(f32_to_f16(70000.f), 0x7c00);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -30)), 0x0000);
}
}  // namespace
}  // namespace cs
