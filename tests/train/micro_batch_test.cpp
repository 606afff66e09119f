// Pretraining micro-batches under --reset-attention-mask, --reset-position-ids and --eod-mask-loss,
// in every combination, against Megatron's get_ltor_masks_and_position_ids written out here as
// Megatron writes it (a causal mask with a block cleared after each EOD, positions decremented
// after each EOD, the loss mask cleared where the input is the EOD): the segments must allow
// exactly the pairs Megatron's mask allows, the positions must be Megatron's, and the ignored
// targets Megatron's zeros of the loss mask.
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "data/indexed_dataset.h"
#include "train/micro_batch.h"

namespace cs {
namespace {

constexpr int32_t kEod = 2;
constexpr int64_t kT = 24, kB = 3;

// Documents of 1 to 13 tokens, each ending with the EOD, so samples span several.
BlendedDataset documents() {
  const std::string prefix = ::testing::TempDir() + "/cs_micro_batch_" + std::to_string(getpid());
  {
    IndexedDatasetWriter w(prefix, DType::U16);
    for (int d = 0; d < 60; ++d) {
      std::vector<int32_t> ids;
      for (int i = 0; i < (d * 7) % 13; ++i) ids.push_back(3 + (d + i) % 40);
      ids.push_back(kEod);
      w.add_item(ids.data(), int64_t(ids.size()));
      w.end_document();
    }
    w.finalize();
  }
  return BlendedDataset::build_or_load(parse_data_path({prefix}), "100,0,0", DataSplit::kTrain, 12,
                                       GptDatasetOptions{kT, 7, ""}, true);
}

struct Megatron {
  std::vector<std::vector<bool>> mask;  // mask[q][k]: q may attend to k
  std::vector<int32_t> positions;
  std::vector<bool> loss;               // loss_mask
};

Megatron megatron(const int32_t* data, const EodOptions& o) {
  Megatron m;
  m.mask.assign(kT, std::vector<bool>(kT, false));
  for (int64_t q = 0; q < kT; ++q)
    for (int64_t k = 0; k <= q; ++k) m.mask[q][k] = true;  // torch.tril
  m.loss.assign(kT, true);
  for (int64_t i = 0; i < kT; ++i)
    if (o.eod_mask_loss && data[i] == o.eod) m.loss[i] = false;
  for (int64_t i = 0; i < kT; ++i) m.positions.push_back(int32_t(i));
  int64_t prev = 0;
  for (int64_t i = 0; i < kT; ++i) {
    if (data[i] != o.eod) continue;
    if (o.reset_attention_mask)
      for (int64_t q = i + 1; q < kT; ++q)
        for (int64_t k = 0; k <= i; ++k) m.mask[q][k] = false;
    if (o.reset_position_ids) {
      for (int64_t q = i + 1; q < kT; ++q) m.positions[q] -= int32_t(i + 1 - prev);
      prev = i + 1;
    }
  }
  return m;
}

TEST(MicroBatch, EodMasksArePretrainingMegatrons) {
  const BlendedDataset ds = documents();
  std::vector<int32_t> sample(size_t(kT + 1));
  int eods = 0;
  for (int flags = 0; flags < 8; ++flags) {
    const EodOptions o{kEod, bool(flags & 1), bool(flags & 2), bool(flags & 4)};
    MicroBatch mb(kB, kT, o);
    for (int64_t first : {0, 5}) {
      mb.fill(ds, first);
      EXPECT_EQ(mb.segments() != nullptr, o.reset_attention_mask);
      // Given whenever segments are: the model would otherwise restart them with each segment.
      EXPECT_EQ(mb.positions() != nullptr, o.reset_position_ids || o.reset_attention_mask);
      int64_t counted = 0;
      for (int64_t b = 0; b < kB; ++b) {
        ds.sample(first + b, sample.data());
        const Megatron m = megatron(sample.data(), o);
        const int64_t row = b * kT;
        for (int64_t q = 0; q < kT; ++q) {
          eods += sample[size_t(q)] == kEod;
          ASSERT_EQ(mb.tokens()[row + q], sample[size_t(q)]);
          ASSERT_EQ(mb.targets()[row + q], m.loss[size_t(q)] ? sample[size_t(q + 1)] : -1) << "flags " << flags << " q " << q;
          counted += m.loss[size_t(q)];
          const int32_t pos = mb.positions() ? mb.positions()[row + q] : int32_t(q);
          ASSERT_EQ(pos, m.positions[size_t(q)]) << "flags " << flags << " row " << b << " q " << q;
          for (int64_t k = 0; k < kT; ++k) {
            const bool ours = k <= q && (!mb.segments() || mb.segments()[row + q] == mb.segments()[row + k]);
            ASSERT_EQ(ours, m.mask[size_t(q)][size_t(k)]) << "flags " << flags << " row " << b << " q " << q << " k " << k;
          }
        }
      }
      EXPECT_EQ(mb.target_count(), counted);
    }
  }
  EXPECT_GT(eods, 8 * 2 * kB * 2) << "the samples hold several documents each";
}

}  // namespace
}  // namespace cs
