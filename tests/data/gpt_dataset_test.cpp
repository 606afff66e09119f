// GPT dataset: split boundaries against values worked by hand from Megatron-core's split matrix, epochs and the separate-last-epoch rule, build_sample_idx on hand
// cases, shuffles, and whole datasets: every sample is the doc-index token stream at its place,
// stable across runs, different across seeds, cached, and rebuilt (or refused) when the cache is bad.
#include "data/gpt_dataset.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>

#include "data/gpt_test_util.h"
#include "data/mmidx_test_util.h"

namespace cs {
namespace {

namespace fs = std::filesystem;
using testing::ElementsAre;
using testing::HasSubstr;
using namespace cs::test;

using Bounds = std::array<int64_t, 4>;

GptDatasetOptions opts(int64_t seq_length, uint64_t seed = 1234) {
  GptDatasetOptions o;
  o.seq_length = seq_length;
  o.seed = seed;
  return o;
}

TEST(GptSplit, MatchesMegatronByHand) {
  // Running sums 0.949, 0.999, 1 times 1000.
  EXPECT_EQ(split_boundaries("949,50,1", 1000), (Bounds{0, 949, 999, 1000}));
  EXPECT_EQ(split_boundaries("969,30,1", 1000), (Bounds{0, 969, 999, 1000}));
  // 39.96 -> 40: the test split of 40 documents is empty.
  EXPECT_EQ(split_boundaries("949,50,1", 40), (Bounds{0, 38, 40, 40}));
  // 9.8 -> 10, 9.9 -> 10.
  EXPECT_EQ(split_boundaries("98,1,1", 10), (Bounds{0, 10, 10, 10}));
  EXPECT_EQ(split_boundaries("969,30,1", 10), (Bounds{0, 10, 10, 10}));
  // 96.9 -> 97, 99.9 -> 100.
  EXPECT_EQ(split_boundaries("969,30,1", 100), (Bounds{0, 97, 100, 100}));
  // Slashes, and fewer than three weights (the rest are 0).
  EXPECT_EQ(split_boundaries("98/1/1", 10), (Bounds{0, 10, 10, 10}));
  EXPECT_EQ(split_boundaries("1", 7), (Bounds{0, 7, 7, 7}));
  // 5/3 = 1.67 -> 2, 10/3 = 3.33 -> 3 (the legacy megatron/data formula gave [0,1,3,5]).
  EXPECT_EQ(split_boundaries("1,1,1", 5), (Bounds{0, 2, 3, 5}));
  // Python's round() takes halves to even: 2.5 -> 2, 3.5 -> 4.
  EXPECT_EQ(split_boundaries("1,1", 5), (Bounds{0, 2, 5, 5}));
  EXPECT_EQ(split_boundaries("1,1", 7), (Bounds{0, 4, 7, 7}));
  // A zero weight gives an empty range (Megatron builds no dataset for it).
  EXPECT_EQ(split_boundaries("0,1,1", 3), (Bounds{0, 0, 2, 3}));
  EXPECT_EQ(split_boundaries("949,50,1", 0), (Bounds{0, 0, 0, 0}));
}

TEST(GptSplit, BadFormsAreClearErrors) {
  EXPECT_THAT(error_of([] { split_boundaries("a,b", 10); }),
              HasSubstr("--split \"a,b\": weight \"a\" is not a number"));
  EXPECT_THAT(error_of([] { split_boundaries("-1,2,3", 10); }), HasSubstr("weight -1 is negative"));
  EXPECT_THAT(error_of([] { split_boundaries("0,0,0", 10); }), HasSubstr("the weights sum to 0"));
  EXPECT_THAT(error_of([] { split_boundaries("1,2,3,4", 10); }),
              HasSubstr("got 4 weights, expected at most 3"));
  EXPECT_THAT(error_of([] { split_boundaries("", 10); }), HasSubstr("is not a number"));
}

TEST(GptIndices, EpochsAndSeparateLastEpoch) {
  // 17 tokens per epoch, samples of 4 + 1 tokens: 4 samples per epoch ((17 - 1) / 4).
  EXPECT_EQ(gpt_num_epochs(17, 4, 0), 1);
  EXPECT_EQ(gpt_num_epochs(17, 4, 4), 1);  // 4 * 4 + 1 = 17 tokens
  EXPECT_EQ(gpt_num_epochs(17, 4, 5), 2);  // 21 tokens
  EXPECT_EQ(gpt_num_epochs(17, 4, 10), 3);
  EXPECT_FALSE(gpt_separate_last_epoch(17, 4, 4, 1));
  // 2 epochs, 4 samples before the last; 1 from it < int(0.8 * 4) = 3: separate.
  EXPECT_EQ(gpt_samples_before_last_epoch(17, 4, 2), 4);
  EXPECT_TRUE(gpt_separate_last_epoch(17, 4, 5, 2));
  EXPECT_TRUE(gpt_separate_last_epoch(17, 4, 6, 2));   // 2 < 3
  EXPECT_FALSE(gpt_separate_last_epoch(17, 4, 7, 2));  // 3 is not < 3
  EXPECT_FALSE(gpt_separate_last_epoch(17, 4, 8, 2));
  // 3 epochs: (2 * 17 - 1) / 4 = 8 before the last; 10 - 8 = 2 < 3.
  EXPECT_TRUE(gpt_separate_last_epoch(17, 4, 10, 3));
}

TEST(GptIndices, SampleIdxHandCases) {
  std::vector<int32_t> lengths = {3, 5, 2, 7};
  // Stream: doc0 [0,3) doc1 [3,8) doc2 [8,10) doc3 [10,17); samples start at 0, 4, 8, 12, 16.
  std::vector<int32_t> identity = {0, 1, 2, 3};
  EXPECT_THAT(gpt_build_sample_idx(lengths, identity, 4, 1, 17),
              ElementsAre(0, 0, 1, 1, 2, 0, 3, 2, 3, 6));
  // Order 3, 0, 2, 1: doc3 [0,7) doc0 [7,10) doc2 [10,12) doc1 [12,17).
  std::vector<int32_t> permuted = {3, 0, 2, 1};
  EXPECT_THAT(gpt_build_sample_idx(lengths, permuted, 4, 1, 17),
              ElementsAre(0, 0, 0, 4, 1, 1, 3, 0, 3, 4));
  // Two epochs with an empty document: lengths [2, 0, 3], seq 3, (2 * 5 - 1) / 3 = 3 samples.
  std::vector<int32_t> lengths2 = {2, 0, 3}, two_epochs = {0, 1, 2, 0, 1, 2};
  EXPECT_THAT(gpt_build_sample_idx(lengths2, two_epochs, 3, 2, 5),
              ElementsAre(0, 0, 2, 1, 3, 1, 5, 2));
}

std::vector<int32_t> doc_idx(int64_t begin, int64_t end, int64_t epochs, bool separate, uint32_t seed) {
  NumpyRandomState rng(seed);
  return gpt_build_doc_idx(begin, end, epochs, separate, rng);
}

std::vector<int64_t> shuffle_idx(int64_t num_first, int64_t total, uint32_t seed) {
  NumpyRandomState rng(seed);
  return gpt_build_shuffle_idx(num_first, total, rng);
}

TEST(GptIndices, DocIdxRepeatsEachDocumentOncePerEpoch) {
  std::vector<int32_t> d = doc_idx(10, 30, 3, false, 7);
  ASSERT_EQ(d.size(), 60u);
  std::map<int32_t, int> seen;
  for (int32_t x : d) seen[x]++;
  EXPECT_EQ(seen.size(), 20u);
  for (auto [doc, n] : seen) EXPECT_EQ(n, 3) << doc;
  EXPECT_NE(d, doc_idx(10, 30, 3, false, 8));
  EXPECT_EQ(d, doc_idx(10, 30, 3, false, 7));

  // Separate last epoch: the last 20 entries are one shuffled copy on their own.
  std::vector<int32_t> s = doc_idx(10, 30, 3, true, 7);
  std::vector<int32_t> last(s.end() - 20, s.end()), first(s.begin(), s.end() - 20);
  std::sort(last.begin(), last.end());
  for (int i = 0; i < 20; ++i) EXPECT_EQ(last[size_t(i)], 10 + i);
  std::map<int32_t, int> first_seen;
  for (int32_t x : first) first_seen[x]++;
  for (auto [doc, n] : first_seen) EXPECT_EQ(n, 2) << doc;
}

TEST(GptIndices, ShuffleIdxKeepsTheLastEpochApart) {
  std::vector<int64_t> s = shuffle_idx(30, 40, 1234);
  std::vector<int64_t> a(s.begin(), s.begin() + 30), b(s.begin() + 30, s.end());
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  for (int i = 0; i < 30; ++i) EXPECT_EQ(a[size_t(i)], i);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(b[size_t(i)], 30 + i);
  EXPECT_NE(s, shuffle_idx(30, 40, 1235));
}

TEST(GptIndices, ShuffleStreamIsPinned) {
  // The order a resumed run depends on: changing it needs a new index version (kIndexVersion).
  // numpy: rs = RandomState(1234); a = arange(8, dtype=int32); rs.shuffle(a);
  // b = arange(10, dtype=uint32); rs.shuffle(b) gives these (one state for both, as Megatron).
  NumpyRandomState rng(1234);
  EXPECT_THAT(gpt_build_doc_idx(0, 8, 1, false, rng), ElementsAre(2, 1, 6, 0, 4, 5, 3, 7));
  EXPECT_THAT(gpt_build_shuffle_idx(10, 10, rng), ElementsAre(8, 5, 6, 0, 4, 3, 2, 9, 7, 1));
}

// The doc-index token stream: every document of doc_idx back to back.
std::vector<int32_t> doc_stream(const IndexedDataset& data, std::span<const int32_t> doc_idx) {
  std::vector<int32_t> out;
  for (int32_t d : doc_idx) {
    std::vector<int32_t> t(size_t(data.length(d)));
    data.read(d, 0, int64_t(t.size()), t.data());
    out.insert(out.end(), t.begin(), t.end());
  }
  return out;
}

// Every sample i is stream[j * seq, j * seq + seq + 1) for j = shuffle[i], and the shuffle is a
// permutation: so the samples cover the stream once, overlapping by one token.
void expect_samples_are_the_stream(const GptDataset& ds, const IndexedDataset& data) {
  std::vector<int32_t> stream = doc_stream(data, ds.doc_idx());
  const int64_t seq = ds.seq_length();
  std::vector<int32_t> got(size_t(seq + 1));
  std::vector<bool> hit(size_t(ds.num_samples()), false);
  for (int64_t i = 0; i < ds.num_samples(); ++i) {
    int64_t j = ds.shuffle_idx()[size_t(i)];
    ASSERT_FALSE(hit[size_t(j)]) << "sample " << j << " twice";
    hit[size_t(j)] = true;
    ds.sample(i, got.data());
    std::vector<int32_t> want(stream.begin() + j * seq, stream.begin() + j * seq + seq + 1);
    ASSERT_EQ(got, want) << "sample " << i << " (unshuffled " << j << ")";
  }
}

struct Fixture {
  std::string dir, prefix;
  std::shared_ptr<const IndexedDataset> data;
  explicit Fixture(const std::string& name, int docs = 40) {
    dir = fresh_dir(name);
    prefix = write_unique_dataset(dir, "corpus", irregular_lengths(docs));
    data = std::make_shared<const IndexedDataset>(prefix);
  }
};

TEST(GptDataset, OneEpochCoversEveryTokenOnce) {
  Fixture f("one_epoch");
  int64_t tokens = 0;
  for (int64_t d = 5; d < 35; ++d) tokens += f.data->length(d);
  GptDataset ds = GptDataset::build_or_load(f.data, 5, 35, 3, opts(6, 1), true);
  EXPECT_EQ(ds.num_epochs(), 1);
  EXPECT_EQ(ds.num_samples(), (tokens - 1) / 6);
  expect_samples_are_the_stream(ds, *f.data);
  // Each token of the range appears once in the samples' first seq tokens, bar the last few.
  std::map<int32_t, int> count;
  std::vector<int32_t> s(7);
  for (int64_t i = 0; i < ds.num_samples(); ++i) {
    ds.sample(i, s.data());
    for (int k = 0; k < 6; ++k) count[s[size_t(k)]]++;
  }
  for (auto [tok, n] : count) EXPECT_EQ(n, 1) << tok;
  EXPECT_EQ(int64_t(count.size()), ds.num_samples() * 6);
  EXPECT_LT(tokens - int64_t(count.size()), 7);
}

TEST(GptDataset, ManyEpochsWithSeparateLastEpoch) {
  Fixture f("epochs");
  int64_t tokens = 0;
  for (int64_t d = 0; d < 40; ++d) tokens += f.data->length(d);
  const int64_t per_epoch = (tokens - 1) / 5;
  GptDataset ds = GptDataset::build_or_load(f.data, 0, 40, 2 * per_epoch + 3, opts(5), true);
  EXPECT_EQ(ds.num_epochs(), 3);
  EXPECT_TRUE(ds.separate_last_epoch());
  EXPECT_EQ(ds.doc_idx().size(), 120u);
  EXPECT_GE(ds.num_samples(), 2 * per_epoch + 3);
  expect_samples_are_the_stream(ds, *f.data);
  // Samples of the first two epochs are shuffled among themselves only.
  int64_t first = gpt_samples_before_last_epoch(tokens, 5, 3);
  for (int64_t i = 0; i < ds.num_samples(); ++i)
    EXPECT_EQ(ds.shuffle_idx()[size_t(i)] < first, i < first) << i;
}

TEST(GptDataset, StableAcrossRunsDifferentAcrossSeeds) {
  Fixture a("stable_a"), b("stable_b");
  GptDatasetOptions opt = opts(4, 99);
  GptDataset x = GptDataset::build_or_load(a.data, 0, 40, 50, opt, true);
  GptDataset y = GptDataset::build_or_load(b.data, 0, 40, 50, opt, true);  // same corpus elsewhere
  ASSERT_EQ(x.num_samples(), y.num_samples());
  std::vector<int32_t> sx(5), sy(5);
  for (int64_t i = 0; i < x.num_samples(); ++i) {
    x.sample(i, sx.data());
    y.sample(i, sy.data());
    ASSERT_EQ(sx, sy) << i;
  }
  opt.seed = 100;
  GptDataset z = GptDataset::build_or_load(a.data, 0, 40, 50, opt, true);
  EXPECT_NE(z.cache_base(), x.cache_base());
  EXPECT_FALSE(std::equal(x.doc_idx().begin(), x.doc_idx().end(), z.doc_idx().begin()));
  EXPECT_FALSE(std::equal(x.shuffle_idx().begin(), x.shuffle_idx().end(), z.shuffle_idx().begin()));
}

std::vector<std::vector<int32_t>> all_samples(const GptDataset& ds) {
  std::vector<std::vector<int32_t>> out;
  for (int64_t i = 0; i < ds.num_samples(); ++i) {
    out.emplace_back(size_t(ds.seq_length() + 1));
    ds.sample(i, out.back().data());
  }
  return out;
}

TEST(GptDataset, CacheHitMapsTheSameIndices) {
  Fixture f("cache_hit");
  GptDatasetOptions opt = opts(4, 3);
  GptDataset a = GptDataset::build_or_load(f.data, 0, 30, 20, opt, true);
  EXPECT_TRUE(a.built_cache());
  for (const char* kind : {"_doc_idx.bin", "_sample_idx.bin", "_shuffle_idx.bin"})
    EXPECT_TRUE(fs::exists(a.cache_base() + kind)) << kind;
  EXPECT_THAT(a.cache_base(), testing::MatchesRegex(".*/corpus_text_document_[0-9a-f]{16}"));
  GptDataset b = GptDataset::build_or_load(f.data, 0, 30, 20, opt, false);
  EXPECT_FALSE(b.built_cache());
  EXPECT_EQ(all_samples(a), all_samples(b));
  // Another split range is another cache.
  GptDataset c = GptDataset::build_or_load(f.data, 30, 40, 20, opt, true);
  EXPECT_NE(c.cache_base(), a.cache_base());
  // --data-cache-path puts the files there.
  GptDatasetOptions elsewhere = opt;
  elsewhere.cache_dir = f.dir + "/cache";
  GptDataset d = GptDataset::build_or_load(f.data, 0, 30, 20, elsewhere, true);
  EXPECT_TRUE(fs::exists(d.cache_base() + "_doc_idx.bin"));
  EXPECT_EQ(fs::path(d.cache_base()).parent_path(), fs::path(elsewhere.cache_dir));
  EXPECT_EQ(all_samples(a), all_samples(d));
}

TEST(GptDataset, MissingCacheWithoutBuildingIsAnError) {
  Fixture f("no_build");
  EXPECT_THAT(error_of([&] { GptDataset::build_or_load(f.data, 0, 40, 10, opts(4), false); }),
              testing::AllOf(HasSubstr("_doc_idx.bin: cannot use the index cache: missing"),
                             HasSubstr("Hint: let the building process (rank 0) create it")));
}

TEST(GptDataset, CorruptCacheIsRebuiltOrRefused) {
  Fixture f("corrupt");
  GptDatasetOptions opt = opts(4);
  GptDataset a = GptDataset::build_or_load(f.data, 0, 40, 10, opt, true);
  auto want = all_samples(a);
  std::string base = a.cache_base();

  fs::resize_file(base + "_sample_idx.bin", fs::file_size(base + "_sample_idx.bin") - 8);
  EXPECT_THAT(error_of([&] { GptDataset::build_or_load(f.data, 0, 40, 10, opt, false); }),
              HasSubstr("_sample_idx.bin: cannot use the index cache: bad size"));
  GptDataset b = GptDataset::build_or_load(f.data, 0, 40, 10, opt, true);
  EXPECT_TRUE(b.built_cache());
  EXPECT_EQ(all_samples(b), want);

  Bytes doc = file_bytes(base + "_doc_idx.bin");
  doc[0] = 'X';  // magic
  write_bytes(base + "_doc_idx.bin", doc);
  EXPECT_THAT(error_of([&] { GptDataset::build_or_load(f.data, 0, 40, 10, opt, false); }),
              HasSubstr("bad magic"));
  GptDataset c = GptDataset::build_or_load(f.data, 0, 40, 10, opt, true);
  EXPECT_TRUE(c.built_cache());
  EXPECT_EQ(all_samples(c), want);

  // A value out of range inside a well-formed file: an error when read, never a wild read.
  Bytes shuffle = file_bytes(base + "_shuffle_idx.bin");
  int64_t huge = int64_t(1) << 40;
  std::memcpy(shuffle.data() + 32, &huge, 8);
  write_bytes(base + "_shuffle_idx.bin", shuffle);
  GptDataset d = GptDataset::build_or_load(f.data, 0, 40, 10, opt, false);
  std::vector<int32_t> s(5);
  EXPECT_THAT(error_of([&] { d.sample(0, s.data()); }),
              testing::AllOf(HasSubstr("_shuffle_idx.bin: corrupt index cache"),
                             HasSubstr("Hint: delete")));
}

TEST(GptDataset, EmptySplitIsAClearError) {
  Fixture f("empty_split");
  EXPECT_THAT(error_of([&] { GptDataset::build_or_load(f.data, 40, 40, 10, opts(4), true); }),
              testing::AllOf(HasSubstr("documents [40, 40) hold 0 tokens"), HasSubstr("--split")));
}

}  // namespace
}  // namespace cs
