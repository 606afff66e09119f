// Instruction datasets (data/sft_dataset.h) and their micro-batches: packing places every sample
// of the split exactly once per epoch, whole (or cut to seq_length + 1, counted), with its loss
// mask and its own segment; padding is what the stats say; the order is a function of the seed;
// unpacked samples are one per sequence; the micro-batch's targets count only trained tokens
// predicted from their own sample; a missing or mismatched mask is one clear error.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "data/sft_dataset.h"
#include "mmidx_test_util.h"
#include "data/sft_test_util.h"
#include "train/micro_batch.h"

namespace cs {
namespace {

// Documents whose tokens all equal 1000 + d (so a sample's document is visible in its tokens), of
// random lengths 2 .. max_len; the mask marks the second half of each as trained.
struct Corpus {
  std::string text;
  std::vector<int64_t> lengths;
};
Corpus make_corpus(const std::string& name, int64_t docs, int64_t max_len, uint32_t seed = 5) {
  Corpus c;
  c.text = test::fresh_prefix(name);  // .../corpus_text_document
  std::mt19937 rng(seed);
  test::write_sft_dataset(c.text, int(docs), [&](int d, std::vector<int32_t>& ids, std::vector<int32_t>& mask) {
    const int64_t len = 2 + int64_t(rng() % uint32_t(max_len - 1));
    ids.assign(size_t(len), int32_t(1000 + d));
    mask.assign(size_t(len), 0);
    for (int64_t j = len / 2; j < len; ++j) mask[size_t(j)] = 1;
    c.lengths.push_back(len);
  });
  return c;
}

struct Seq {
  std::vector<int32_t> tokens, segments;
  std::vector<uint8_t> trained;
};
Seq read(const SftDataset& d, int64_t i) {
  const size_t cap = size_t(d.seq_length() + 1);
  Seq s{std::vector<int32_t>(cap), std::vector<int32_t>(cap), std::vector<uint8_t>(cap)};
  d.sample(i, s.tokens.data(), s.trained.data(), s.segments.data());
  return s;
}

TEST(SftDataset, PackingPlacesEverySampleOncePerEpochWhole) {
  const Corpus c = make_corpus("sft_pack", 200, 40);
  const SftOptions opt{63, 1234, true, 0};
  const SftDataset d = SftDataset::build(c.text, "100,0,0", DataSplit::kTrain, 100, opt);
  const SftStats& st = d.stats();
  ASSERT_GE(d.num_samples(), 100);
  ASSERT_GE(st.epochs, 2);
  EXPECT_EQ(st.documents, 200);
  EXPECT_EQ(st.cut, 0);
  const int64_t per_epoch = st.sequences / st.epochs;
  int64_t pad = 0, tokens = 0;
  for (int64_t e = 0; e < 2; ++e) {
    std::map<int32_t, int64_t> seen;  // document -> tokens placed
    for (int64_t i = e * per_epoch; i < (e + 1) * per_epoch; ++i) {
      const Seq s = read(d, i);
      for (size_t p = 0; p < s.tokens.size(); ++p) {
        if (s.tokens[p] == 0) {  // padding: after every sample, in the last segment, never trained
          ++pad;
          EXPECT_EQ(s.trained[p], 0);
          EXPECT_TRUE(p + 1 == s.tokens.size() || s.tokens[p + 1] == 0);
          continue;
        }
        ++tokens;
        const int32_t doc = s.tokens[p] - 1000;
        const int64_t first = seen.count(doc) ? -1 : int64_t(p);
        if (first >= 0) {
          // A new sample starts a new segment, and the whole sample follows contiguously.
          EXPECT_TRUE(p == 0 || s.segments[p] != s.segments[p - 1]);
          const int64_t len = c.lengths[size_t(doc)];
          for (int64_t j = 0; j < len; ++j) {
            ASSERT_LT(p + size_t(j), s.tokens.size());
            EXPECT_EQ(s.tokens[p + size_t(j)], 1000 + doc);
            EXPECT_EQ(s.segments[p + size_t(j)], s.segments[p]);
            EXPECT_EQ(s.trained[p + size_t(j)], j >= len / 2 ? 1 : 0);
          }
        }
        seen[doc] += 1;
      }
    }
    ASSERT_EQ(seen.size(), 200u) << "epoch " << e;
    for (const auto& [doc, n] : seen) EXPECT_EQ(n, c.lengths[size_t(doc)]) << "document " << doc;
  }
  const double pad_fraction = double(pad) / double(pad + tokens);
  EXPECT_NEAR(st.padding_fraction(), pad_fraction, 1e-12);
  EXPECT_LT(pad_fraction, 0.05) << "best fit of 2..40-token samples into 64";
}

TEST(SftDataset, OrderIsAFunctionOfTheSeed) {
  const Corpus c = make_corpus("sft_seed", 60, 30);
  auto all = [&](uint32_t seed) {
    const SftDataset d = SftDataset::build(c.text, "100,0,0", DataSplit::kTrain, 40, {31, seed, true, 0});
    std::vector<int32_t> v;
    for (int64_t i = 0; i < d.num_samples(); ++i) {
      const Seq s = read(d, i);
      v.insert(v.end(), s.tokens.begin(), s.tokens.end());
    }
    return v;
  };
  EXPECT_EQ(all(7), all(7));
  EXPECT_NE(all(7), all(8));
}

TEST(SftDataset, UnpackedIsOneSamplePerSequenceAndLongOnesAreCut) {
  const Corpus c = make_corpus("sft_unpacked", 30, 50);
  const SftDataset d = SftDataset::build(c.text, "100,0,0", DataSplit::kTrain, 30, {19, 1, false, 0});
  int64_t cut = 0;
  for (int64_t len : c.lengths) cut += len > 20;
  EXPECT_GT(cut, 0);
  EXPECT_EQ(d.stats().cut, cut);
  EXPECT_EQ(d.num_samples(), 30);
  std::set<int32_t> docs;
  for (int64_t i = 0; i < 30; ++i) {
    const Seq s = read(d, i);
    const int32_t doc = s.tokens[0] - 1000;
    docs.insert(doc);
    const int64_t len = std::min<int64_t>(c.lengths[size_t(doc)], 20);
    for (int64_t p = 0; p < 20; ++p) {
      EXPECT_EQ(s.tokens[size_t(p)], p < len ? 1000 + doc : 0);
      EXPECT_EQ(s.segments[size_t(p)], p < len ? 0 : 1);
    }
  }
  EXPECT_EQ(docs.size(), 30u);
}

TEST(SftDataset, MicroBatchCountsTrainedTokensOfTheirOwnSample) {
  const Corpus c = make_corpus("sft_batch", 40, 20);
  const SftDataset d = SftDataset::build(c.text, "100,0,0", DataSplit::kTrain, 8, {31, 3, true, 0});
  MicroBatch mb(2, 31);
  mb.fill(SampleSource{nullptr, &d}, 0);
  ASSERT_NE(mb.segments(), nullptr);
  int64_t want = 0;
  for (int64_t r = 0; r < 2; ++r) {
    const Seq s = read(d, r);
    for (int64_t t = 0; t < 31; ++t) {
      const int64_t i = r * 31 + t;
      EXPECT_EQ(mb.tokens()[i], s.tokens[size_t(t)]);
      EXPECT_EQ(mb.segments()[i], s.segments[size_t(t)]);
      // The next token is trained and belongs to the same sample: it is the target.
      const bool counted = s.trained[size_t(t + 1)] && s.tokens[size_t(t + 1)] == s.tokens[size_t(t)];
      EXPECT_EQ(mb.targets()[i], counted ? s.tokens[size_t(t + 1)] : -1) << "row " << r << " position " << t;
      want += counted;
    }
  }
  EXPECT_GT(want, 0);
  EXPECT_EQ(mb.target_count(), want);
}

TEST(SftDataset, MissingOrMismatchedMaskIsOneClearError) {
  const Corpus c = make_corpus("sft_errors", 10, 10);
  const SftOptions opt{15, 1, true, 0};
  EXPECT_NE(test::error_of([&] { loss_mask_prefix("data/corpus"); }).find("_text_document"), std::string::npos);
  const std::string mask = loss_mask_prefix(c.text);
  std::filesystem::rename(mask + ".idx", mask + ".idx.away");
  const std::string missing = test::error_of([&] { SftDataset::build(c.text, "100,0,0", DataSplit::kTrain, 4, opt); });
  EXPECT_NE(missing.find("corpus_loss_mask_document.idx: not found"), std::string::npos) << missing;
  EXPECT_NE(missing.find("--is-instruction-dataset"), std::string::npos) << missing;
  std::filesystem::rename(mask + ".idx.away", mask + ".idx");

  // A mask of other lengths, and one holding a value that is not 0 or 1.
  IndexedDatasetWriter bad(mask, DType::U8);
  for (size_t d = 0; d < c.lengths.size(); ++d) {
    std::vector<int32_t> m(size_t(c.lengths[d] + (d == 3 ? 1 : 0)), 0);
    bad.add_item(m.data(), int64_t(m.size()));
    bad.end_document();
  }
  bad.finalize();
  const std::string len = test::error_of([&] { SftDataset::build(c.text, "100,0,0", DataSplit::kTrain, 4, opt); });
  EXPECT_NE(len.find("sequence 3 has"), std::string::npos) << len;
  IndexedDatasetWriter two(mask, DType::U8);
  for (size_t d = 0; d < c.lengths.size(); ++d) {
    std::vector<int32_t> m(size_t(c.lengths[d]), d == 5 ? 2 : 1);
    two.add_item(m.data(), int64_t(m.size()));
    two.end_document();
  }
  two.finalize();
  const std::string val = test::error_of([&] { SftDataset::build(c.text, "100,0,0", DataSplit::kTrain, 4, opt); });
  EXPECT_NE(val.find("sequence 5 holds 2"), std::string::npos) << val;
}

}  // namespace
}  // namespace cs
