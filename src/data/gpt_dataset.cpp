// GPT dataset indices (Megatron-LM megatron/core/datasets/gpt_dataset.py, helpers.cpp
// build_sample_idx; megatron/data/gpt_dataset.py _build_index_mappings) and the stateless sample
// reader. Index building runs once, on the builder; sample() validates every cached value it uses,
// so a damaged cache file is a cs::Error, never an out-of-bounds read.
#include "data/gpt_dataset.h"

#include <chrono>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <numeric>
#include <utility>

#include "core/checked.h"
#include "core/error.h"
#include "core/log.h"

namespace cs {

namespace {

// Bump when the index algorithm or the shuffle stream changes (it is part of the cache hash, so old
// caches are left unused, never misread). 2: numpy's MT19937 stream, as Megatron (1 was Philox).
constexpr int kIndexVersion = 2;

[[noreturn]] void split_error(const std::string& split, const std::string& what) {
  throw UsageError("[gpt_dataset] --split \"" + split + "\": " + what +
                   ". Hint: give 1 to 3 non-negative weights separated by ',' or '/', e.g. 949,50,1");
}

}  // namespace

std::array<int64_t, 4> split_boundaries(const std::string& split, int64_t num_docs) {
  CS_CHECK(num_docs >= 0) << num_docs;
  // Megatron splits on ',' when there is one, else on '/', else takes one weight.
  char sep = split.find(',') != std::string::npos   ? ','
             : split.find('/') != std::string::npos ? '/'
                                                    : '\0';
  std::vector<std::string> parts;
  size_t at = 0;
  while (true) {
    size_t next = sep ? split.find(sep, at) : std::string::npos;
    parts.push_back(split.substr(at, next == std::string::npos ? std::string::npos : next - at));
    if (next == std::string::npos) break;
    at = next + 1;
  }
  if (parts.size() > 3)
    split_error(split, "got " + std::to_string(parts.size()) + " weights, expected at most 3 (train, valid, test)");
  std::array<double, 3> w = {0, 0, 0};
  for (size_t i = 0; i < parts.size(); ++i) {
    const char* s = parts[i].c_str();
    char* end = nullptr;
    w[i] = std::strtod(s, &end);
    while (end && (*end == ' ' || *end == '\t')) ++end;
    if (end == s || *end != '\0' || !std::isfinite(w[i]))
      split_error(split, "weight \"" + parts[i] + "\" is not a number");
    if (w[i] < 0) split_error(split, "weight " + parts[i] + " is negative");
  }
  const double sum = numpy_sum(w);  // utils.normalize
  if (!(sum > 0)) split_error(split, "the weights sum to 0");
  // The running sums as functools.reduce forms them, scaled and rounded as the builder does:
  // int(round(c * float(N))), Python's round taking halves to even as nearbyint does. A split of
  // weight 0 has c[k+1] == c[k] (Megatron builds no dataset for it): an empty range here.
  std::array<int64_t, 4> idx = {0, 0, 0, 0};
  double c = 0.0;
  for (int i = 0; i < 3; ++i) {
    c = c + w[size_t(i)] / sum;
    idx[size_t(i) + 1] = int64_t(std::nearbyint(c * double(num_docs)));
  }
  CS_CHECK(idx[1] <= idx[2] && idx[2] <= idx[3] && idx[3] == num_docs)
      << idx[1] << " " << idx[2] << " " << idx[3] << " of " << num_docs;
  return idx;
}

int64_t gpt_num_epochs(int64_t tokens_per_epoch, int64_t seq_length, int64_t num_samples) {
  CS_CHECK(tokens_per_epoch > 0 && seq_length > 0 && num_samples >= 0);
  // Megatron adds epochs until epochs * tokens >= num_samples * seq_length + 1.
  const char* what = "[gpt_dataset] the tokens asked for, samples x --seq-length + 1";
  const int64_t requested = checked_add(checked_mul(num_samples, seq_length, what, 2), 1, what, 2);
  return std::max<int64_t>(1, (requested + tokens_per_epoch - 1) / tokens_per_epoch);
}

int64_t gpt_samples_before_last_epoch(int64_t tokens_per_epoch, int64_t seq_length,
                                      int64_t num_epochs) {
  return ((num_epochs - 1) * tokens_per_epoch - 1) / seq_length;
}

bool gpt_separate_last_epoch(int64_t tokens_per_epoch, int64_t seq_length, int64_t num_samples,
                             int64_t num_epochs) {
  if (num_epochs == 1) return false;
  int64_t from_last = num_samples - gpt_samples_before_last_epoch(tokens_per_epoch, seq_length, num_epochs);
  int64_t per_epoch = (tokens_per_epoch - 1) / seq_length;
  CS_CHECK(from_last >= 0 && from_last <= per_epoch + 1) << from_last << " of " << per_epoch;
  return from_last < int64_t(0.80 * double(per_epoch));  // Megatron's threshold, truncated as int()
}

std::vector<int32_t> gpt_build_doc_idx(int64_t begin, int64_t end, int64_t num_epochs,
                                       bool separate_last_epoch, NumpyRandomState& rng) {
  CS_CHECK(0 <= begin && begin <= end && end <= INT32_MAX && num_epochs >= 1);
  std::vector<int32_t> out;
  out.reserve(size_t(num_epochs * (end - begin)));
  auto add = [&](int64_t epochs) {
    size_t first = out.size();
    for (int64_t e = 0; e < epochs; ++e)
      for (int64_t d = begin; d < end; ++d) out.push_back(int32_t(d));
    rng.shuffle(out.data() + first, int64_t(out.size() - first));
  };
  if (!separate_last_epoch || num_epochs == 1) {
    add(num_epochs);
  } else {
    add(num_epochs - 1);
    add(1);
  }
  return out;
}

std::vector<int64_t> gpt_build_sample_idx(std::span<const int32_t> lengths,
                                          std::span<const int32_t> doc_idx, int64_t seq_length,
                                          int64_t num_epochs, int64_t tokens_per_epoch) {
  CS_CHECK(seq_length > 0 && num_epochs > 0 && tokens_per_epoch > 1 && !doc_idx.empty());
  const int64_t num_samples = (num_epochs * tokens_per_epoch - 1) / seq_length;
  std::vector<int64_t> out(size_t(2 * (num_samples + 1)));
  int64_t pos = 0, offset = 0;  // position in doc_idx, token offset in that document
  out[0] = out[1] = 0;
  for (int64_t s = 1; s <= num_samples; ++s) {
    int64_t remaining = seq_length + 1;
    while (remaining != 0) {
      int64_t doc_length = lengths[size_t(doc_idx[size_t(pos)])] - offset;
      remaining -= doc_length;
      if (remaining <= 0) {
        // The sample ends inside this document; the next one starts on its last token.
        offset += remaining + doc_length - 1;
        remaining = 0;
      } else {
        CS_CHECK(pos + 1 < int64_t(doc_idx.size()))
            << "documents exhausted at sample " << s << " of " << num_samples;
        ++pos;
        offset = 0;
      }
    }
    out[size_t(2 * s)] = pos;
    out[size_t(2 * s + 1)] = offset;
  }
  return out;
}

std::vector<int64_t> gpt_build_shuffle_idx(int64_t num_first, int64_t total, NumpyRandomState& rng) {
  CS_CHECK(0 <= num_first && num_first <= total);
  std::vector<int64_t> out(static_cast<size_t>(total));
  std::iota(out.begin(), out.end(), int64_t(0));
  rng.shuffle(out.data(), num_first);
  rng.shuffle(out.data() + num_first, total - num_first);
  return out;
}

GptIndices gpt_build_indices(std::span<const int32_t> lengths, int64_t begin, int64_t end,
                             int64_t num_samples, int64_t seq_length, uint32_t seed) {
  CS_CHECK(0 <= begin && begin <= end && end <= int64_t(lengths.size()) && seq_length > 0);
  int64_t tokens = 0;
  for (int64_t d = begin; d < end; ++d) tokens += lengths[size_t(d)];
  CS_CHECK(tokens >= 2) << tokens << " tokens";
  GptIndices x;
  x.num_epochs = gpt_num_epochs(tokens, seq_length, num_samples);
  x.separate_last_epoch = gpt_separate_last_epoch(tokens, seq_length, num_samples, x.num_epochs);
  x.num_samples = (x.num_epochs * tokens - 1) / seq_length;
  const int64_t num_first = x.separate_last_epoch
                                ? gpt_samples_before_last_epoch(tokens, seq_length, x.num_epochs)
                                : x.num_samples;
  // One RandomState(seed) for both shuffles, the document index first (gpt_dataset.py
  // _build_document_sample_shuffle_indices).
  NumpyRandomState rng(seed);
  x.doc_idx = gpt_build_doc_idx(begin, end, x.num_epochs, x.separate_last_epoch, rng);
  x.sample_idx = gpt_build_sample_idx(lengths, x.doc_idx, seq_length, x.num_epochs, tokens);
  x.shuffle_idx = gpt_build_shuffle_idx(num_first, x.num_samples, rng);
  return x;
}

GptDataset GptDataset::build_or_load(std::shared_ptr<const IndexedDataset> data, int64_t begin,
                                     int64_t end, int64_t num_samples,
                                     const GptDatasetOptions& opt, bool may_build) {
  CS_CHECK(data && 0 <= begin && begin <= end && end <= data->size() && num_samples >= 0)
      << "documents [" << begin << ", " << end << ") of " << (data ? data->size() : -1);
  const std::string& prefix = data->prefix();
  if (opt.seq_length < 1)
    throw UsageError("[gpt_dataset] --seq-length: got " + std::to_string(opt.seq_length) +
                     ", expected at least 1. Hint: pass the model's context length, e.g. 4096");
  if (opt.seed > 0xffffffffull)
    throw UsageError("[gpt_dataset] --seed " + std::to_string(opt.seed) +
                     ": expected 0 .. 4294967295 (numpy.random.RandomState's range, whose stream "
                     "Megatron's dataset shuffles use). Hint: pass a smaller seed, e.g. 1234");
  if (end > INT32_MAX)
    throw Error("[gpt_dataset] " + prefix + ": " + std::to_string(end) +
                " documents, expected at most 2^31 - 1 (Megatron's int32 document index). Hint: "
                "split the corpus into several datasets and blend them");
  int64_t tokens = 0;
  for (int64_t d = begin; d < end; ++d) tokens += data->length(d);
  if (tokens < 2)
    throw EmptySplitError<Error>("[gpt_dataset] " + prefix + ": documents [" + std::to_string(begin) + ", " +
                std::to_string(end) + ") hold " + std::to_string(tokens) +
                " tokens, expected at least 2 to make a sample. Hint: this split of the data is "
                "(nearly) empty: add documents (or, with --data-path, give the split a larger --split share)");

  GptDataset ds;
  ds.data_ = std::move(data);
  ds.seq_length_ = opt.seq_length;
  ds.num_epochs_ = gpt_num_epochs(tokens, opt.seq_length, num_samples);
  ds.separate_last_epoch_ = gpt_separate_last_epoch(tokens, opt.seq_length, num_samples, ds.num_epochs_);
  ds.num_samples_ = (ds.num_epochs_ * tokens - 1) / opt.seq_length;

  // Every parameter the indices depend on, plus the data's shape so a re-made corpus at the same
  // prefix does not reuse stale indices.
  std::string desc = "chuanspeed gpt_dataset indices v" + std::to_string(kIndexVersion) +
                     "\nprefix=" + prefix + "\ndocuments=[" + std::to_string(begin) + "," +
                     std::to_string(end) + ")\nsequences=" + std::to_string(ds.data_->size()) +
                     "\ntokens=" + std::to_string(tokens) + "\nseq_length=" +
                     std::to_string(opt.seq_length) + "\nnum_samples=" + std::to_string(num_samples) +
                     "\nseed=" + std::to_string(opt.seed) + "\n";
  uint64_t hash = stable_hash(desc);
  ds.cache_base_ = index_cache_base(prefix, opt.cache_dir, hash);
  std::vector<IndexFileSpec> specs = {
      {ds.cache_base_ + "_doc_idx.bin", hash, 4, uint64_t(ds.num_epochs_ * (end - begin))},
      {ds.cache_base_ + "_sample_idx.bin", hash, 8, uint64_t(2 * (ds.num_samples_ + 1))},
      {ds.cache_base_ + "_shuffle_idx.bin", hash, 8, uint64_t(ds.num_samples_)},
  };

  auto build = [&](const IndexWriteFn& write) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<int32_t> lengths(size_t(end), 0);
    for (int64_t d = begin; d < end; ++d) lengths[size_t(d)] = ds.data_->length(d);
    GptIndices x = gpt_build_indices(lengths, begin, end, num_samples, opt.seq_length,
                                     uint32_t(opt.seed));
    CS_CHECK(x.num_epochs == ds.num_epochs_ && x.num_samples == ds.num_samples_);
    write(0, x.doc_idx.data());
    write(1, x.sample_idx.data());
    write(2, x.shuffle_idx.data());
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    log_info("[gpt_dataset] {} documents [{}, {}): {} epoch(s){}, {} samples of {} tokens, "
             "indices built in {:.2f} s -> {}_*_idx.bin", prefix, begin, end, ds.num_epochs_,
             ds.separate_last_epoch_ ? " (last shuffled apart)" : "", ds.num_samples_,
             opt.seq_length + 1, secs, ds.cache_base_);
  };
  std::vector<IndexFile> files = index_files_build_or_map(specs, may_build, build, &ds.built_);
  ds.doc_ = std::move(files[0]);
  ds.sample_ = std::move(files[1]);
  ds.shuffle_ = std::move(files[2]);
  return ds;
}

void GptDataset::corrupt(const IndexFile& f, const std::string& what) const {
  throw Error("[gpt_dataset] " + f.path() + ": corrupt index cache: " + what +
              ". Hint: delete " + cache_base_ + "_*_idx.bin; the next run rebuilds them");
}

void GptDataset::sample(int64_t i, int32_t* out) const {
  CS_CHECK(i >= 0 && i < num_samples_) << "sample " << i << " of " << num_samples_;
  const int64_t j = shuffle_.data<int64_t>()[i];
  if (j < 0 || j >= num_samples_)
    corrupt(shuffle_, "entry " + std::to_string(i) + " = " + std::to_string(j) + " is outside [0, " +
                          std::to_string(num_samples_) + ")");
  const int64_t* s = sample_.data<int64_t>() + 2 * j;
  const int64_t p0 = s[0], o0 = s[1], p1 = s[2], o1 = s[3];
  if (!(0 <= p0 && p0 <= p1 && p1 < doc_.count()))
    corrupt(sample_, "sample " + std::to_string(j) + " spans document-index positions " +
                         std::to_string(p0) + ".." + std::to_string(p1) + " of " +
                         std::to_string(doc_.count()));
  const int32_t* docs = doc_.data<int32_t>();
  const int64_t want = seq_length_ + 1;
  int64_t got = 0;
  for (int64_t p = p0; p <= p1; ++p) {
    const int64_t doc = docs[p];
    if (doc < 0 || doc >= data_->size())
      corrupt(doc_, "entry " + std::to_string(p) + " = " + std::to_string(doc) + " is not a document");
    const int64_t len = data_->length(doc);
    const int64_t from = p == p0 ? o0 : 0, to = p == p1 ? o1 + 1 : len;
    if (from < 0 || from > to || to > len || got + (to - from) > want)
      corrupt(sample_, "sample " + std::to_string(j) + " reads tokens [" + std::to_string(from) +
                           ", " + std::to_string(to) + ") of a " + std::to_string(len) +
                           "-token document");
    if (to > from) data_->read(doc, from, to - from, out + got);
    got += to - from;
  }
  if (got != want)
    corrupt(sample_, "sample " + std::to_string(j) + " has " + std::to_string(got) +
                         " tokens, expected " + std::to_string(want));
}

std::span<const int32_t> GptDataset::doc_idx() const {
  return {doc_.data<int32_t>(), size_t(doc_.count())};
}
std::span<const int64_t> GptDataset::sample_idx() const {
  return {sample_.data<int64_t>(), size_t(sample_.count())};
}
std::span<const int64_t> GptDataset::shuffle_idx() const {
  return {shuffle_.data<int64_t>(), size_t(shuffle_.count())};
}

}  // namespace cs
