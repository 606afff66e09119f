// GPT dataset indices where the requested tokens land exactly on an epoch boundary, and one
// sample either side, against Megatron-core's semantics written out here from
// megatron/core/datasets/gpt_dataset.py and helpers.cpp (the fixtures of
// megatron_indices_test.cpp come from that code itself but no case of theirs sits on a boundary):
//  - _get_num_epochs: epochs are added while epochs * tokens_per_epoch < num_samples * seq + 1;
//  - the final epoch is shuffled apart when it gives fewer than int(0.8 * samples per epoch);
//  - build_sample_idx: (num_epochs * tokens_per_epoch - 1) // seq samples, sample s starting at
//    token s * seq of the doc_idx stream; the shuffle a permutation, the final epoch's apart.
// An off-by-one in the requested token count (num_samples * seq instead of + 1) passes cases off
// the boundary; these catch it.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>

#include "data/gpt_dataset.h"

namespace cs {
namespace {

// Megatron-core's _get_num_epochs, as written there (a loop, not a division).
int64_t megatron_num_epochs(int64_t tokens_per_epoch, int64_t seq, int64_t num_samples) {
  int64_t epochs = 1, tokens = tokens_per_epoch;
  const int64_t requested = num_samples * seq + 1;  // add_extra_token_to_sequence
  while (tokens < requested) {
    ++epochs;
    tokens += tokens_per_epoch;
  }
  return epochs;
}

// Megatron-core's separate_final_epoch decision, with its two asserts.
bool megatron_separate_final_epoch(int64_t tokens_per_epoch, int64_t seq, int64_t num_samples, int64_t epochs) {
  if (epochs == 1) return false;
  const int64_t sans_final = ((epochs - 1) * tokens_per_epoch - 1) / seq;
  const int64_t from_final = num_samples - sans_final;
  const int64_t per_epoch = (tokens_per_epoch - 1) / seq;
  EXPECT_GE(from_final, 0);
  EXPECT_LE(from_final, per_epoch + 1);
  return from_final < int64_t(0.80 * double(per_epoch));
}

// Checks the three indices of one case against the semantics above.
void check_indices(const std::vector<int32_t>& lengths, int64_t seq, int64_t num_samples) {
  const int64_t tokens = std::accumulate(lengths.begin(), lengths.end(), int64_t(0));
  const int64_t docs = int64_t(lengths.size());
  SCOPED_TRACE("tokens per epoch " + std::to_string(tokens) + ", seq " + std::to_string(seq) + ", " +
               std::to_string(num_samples) + " samples asked for");
  const int64_t epochs = megatron_num_epochs(tokens, seq, num_samples);
  const bool separate = megatron_separate_final_epoch(tokens, seq, num_samples, epochs);
  EXPECT_EQ(gpt_num_epochs(tokens, seq, num_samples), epochs);
  EXPECT_EQ(gpt_separate_last_epoch(tokens, seq, num_samples, epochs), separate);

  const GptIndices x = gpt_build_indices(lengths, 0, docs, num_samples, seq, 1234);
  ASSERT_EQ(x.num_epochs, epochs);
  EXPECT_EQ(x.separate_last_epoch, separate);
  const int64_t available = (epochs * tokens - 1) / seq;
  EXPECT_EQ(x.num_samples, available);
  EXPECT_GE(x.num_samples, num_samples) << "fewer samples than asked for";
  // The document index: every document once per epoch.
  ASSERT_EQ(int64_t(x.doc_idx.size()), epochs * docs);
  std::vector<int64_t> seen(size_t(docs), 0);
  for (int32_t d : x.doc_idx) seen[size_t(d)]++;
  for (int64_t n : seen) EXPECT_EQ(n, epochs);
  // The sample index: entry s is where token s * seq of the doc_idx stream lies.
  ASSERT_EQ(int64_t(x.sample_idx.size()), 2 * (available + 1));
  std::vector<int64_t> start(x.doc_idx.size() + 1, 0);  // stream position of each doc_idx entry
  for (size_t p = 0; p < x.doc_idx.size(); ++p) start[p + 1] = start[p] + lengths[size_t(x.doc_idx[p])];
  for (int64_t s = 0; s <= available; ++s) {
    const int64_t p = x.sample_idx[size_t(2 * s)], o = x.sample_idx[size_t(2 * s + 1)];
    ASSERT_TRUE(p >= 0 && p < int64_t(x.doc_idx.size())) << "sample " << s;
    EXPECT_EQ(start[size_t(p)] + o, s * seq) << "sample " << s;
  }
  EXPECT_LE(available * seq + 1, start.back()) << "the last sample reads past the final epoch";
  // The shuffle: a permutation, the final epoch's samples among themselves when separate.
  ASSERT_EQ(int64_t(x.shuffle_idx.size()), available);
  const int64_t first = separate ? ((epochs - 1) * tokens - 1) / seq : available;
  std::vector<int64_t> sorted = x.shuffle_idx;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < available; ++i) {
    EXPECT_EQ(sorted[size_t(i)], i);
    EXPECT_EQ(x.shuffle_idx[size_t(i)] < first, i < first) << "shuffle entry " << i;
  }
}

struct Corpus {
  std::vector<int32_t> lengths;
  int64_t seq;
};

TEST(GptEpochBoundary, RequestedTokensOnAndBesideEveryEpochBoundary) {
  // Tokens per epoch 17 (seq 4), 16 (seq 5, 3 and 4) and 23 (seq 2): between them both kinds of
  // boundary occur for 1 to 6 epochs.
  const Corpus corpora[] = {{{3, 5, 2, 7}, 4}, {{4, 4, 1, 7}, 5}, {{4, 4, 1, 7}, 3}, {{4, 4, 1, 7}, 4},
                            {{6, 9, 8}, 2}};
  int on_boundary = 0, beside_boundary = 0;
  for (const Corpus& c : corpora) {
    const int64_t tokens = std::accumulate(c.lengths.begin(), c.lengths.end(), int64_t(0));
    for (int64_t epochs = 1; epochs <= 6; ++epochs) {
      // num_samples * seq + 1 == epochs * tokens: exactly this many epochs are needed.
      if ((epochs * tokens - 1) % c.seq == 0) {
        const int64_t n = (epochs * tokens - 1) / c.seq;
        ++on_boundary;
        EXPECT_EQ(megatron_num_epochs(tokens, c.seq, n), epochs);
        for (int64_t k : {n - 1, n, n + 1}) check_indices(c.lengths, c.seq, k);
      }
      // num_samples * seq == epochs * tokens: one token short of the boundary, so one epoch more.
      if (epochs * tokens % c.seq == 0) {
        const int64_t n = epochs * tokens / c.seq;
        ++beside_boundary;
        EXPECT_EQ(megatron_num_epochs(tokens, c.seq, n), epochs + 1);
        for (int64_t k : {n - 1, n, n + 1}) check_indices(c.lengths, c.seq, k);
      }
    }
  }
  EXPECT_GE(on_boundary, 5);
  EXPECT_GE(beside_boundary, 5);
}

TEST(GptEpochBoundary, EverySampleCountUpToSixEpochs) {
  const std::vector<int32_t> lengths = {3, 5, 2, 7};  // 17 tokens per epoch
  for (int64_t seq : {1, 2, 4, 16})
    for (int64_t n = 0; n <= 6 * 17 / seq; ++n) check_indices(lengths, seq, n);
}

}  // namespace
}  // namespace cs
