#include "data/sft_dataset.h"

#include <fmt/core.h>

#include <algorithm>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "data/numpy_random.h"

namespace cs {

namespace {
constexpr const char* kTextSuffix = "_text_document";
}  // namespace

std::string loss_mask_prefix(const std::string& text_prefix) {
  const std::string suffix = kTextSuffix;
  if (text_prefix.size() <= suffix.size() ||
      text_prefix.compare(text_prefix.size() - suffix.size(), suffix.size(), suffix) != 0)
    throw UsageError(fmt::format("--data-path {}: expected PREFIX_text_document with --is-instruction-dataset (its "
                                 "loss mask is PREFIX_loss_mask_document beside it). Hint: preprocess with "
                                 "--is-instruction-dataset and pass the _text_document prefix it prints",
                                 text_prefix));
  return text_prefix.substr(0, text_prefix.size() - suffix.size()) + "_loss_mask_document";
}

double SftStats::padding_fraction() const {
  return sequences ? 1.0 - double(tokens) / (double(sequences) * double(seq_length_plus_one)) : 0.0;
}

namespace {
Error mask_mismatch(const std::string& mask_prefix, const std::string& what) {
  return Error(fmt::format("[data] {}: {}. Hint: the text and its loss mask must come from one preprocess run "
                           "with --is-instruction-dataset", mask_prefix, what));
}
}  // namespace

std::shared_ptr<const IndexedDataset> open_loss_mask(const IndexedDataset& text) {
  const std::string mask_prefix = loss_mask_prefix(text.prefix());
  if (!std::filesystem::exists(mask_prefix + ".idx"))
    throw Error(fmt::format("[data] {}.idx: not found; --is-instruction-dataset reads which tokens are trained from it. Hint: "
                            "preprocess the corpus with --is-instruction-dataset (it writes {} beside {})",
                            mask_prefix, mask_prefix, text.prefix()));
  auto mask = std::make_shared<const IndexedDataset>(mask_prefix);
  if (mask->dtype() != DType::U8)
    throw mask_mismatch(mask_prefix, fmt::format("dtype {}, expected uint8", dtype_name(mask->dtype())));
  if (mask->doc_index() != text.doc_index() || mask->size() != text.size())
    throw mask_mismatch(mask_prefix, fmt::format("{} documents of {} sequences, the text has {} of {}",
                                                 mask->num_docs(), mask->size(), text.num_docs(), text.size()));
  for (int64_t s = 0; s < text.size(); ++s)
    if (mask->length(s) != text.length(s))
      throw mask_mismatch(mask_prefix, fmt::format("sequence {} has {} tokens, the text's has {}", s,
                                                   mask->length(s), text.length(s)));
  return mask;
}

SftDataset SftDataset::build(const std::string& text_prefix, const std::string& split, DataSplit which,
                             int64_t num_samples, const SftOptions& opt) {
  CS_CHECK(opt.seq_length >= 1 && num_samples >= 0) << opt.seq_length << " " << num_samples;
  loss_mask_prefix(text_prefix);  // a prefix the mask cannot be found from: the usage error first
  SftDataset ds;
  ds.opt_ = opt;
  ds.text_ = std::make_shared<const IndexedDataset>(text_prefix);
  ds.mask_ = open_loss_mask(*ds.text_);
  const IndexedDataset &text = *ds.text_, &mask = *ds.mask_;
  const std::string mask_prefix = mask.prefix();
  auto mismatch = [&](const std::string& what) { return mask_mismatch(mask_prefix, what); };

  // The split's samples: the sequences of its documents. One pass over their masks checks the
  // values and counts the trained tokens one epoch holds.
  const auto bounds = split_boundaries(split, text.num_docs());
  const int64_t first = text.doc_index()[size_t(bounds[size_t(which)])],
                last = text.doc_index()[size_t(bounds[size_t(which) + 1])];
  const int64_t cap = opt.seq_length + 1;
  SftStats& st = ds.stats_;
  st.seq_length_plus_one = cap;
  st.documents = last - first;
  if (num_samples > 0 && st.documents == 0)
    throw EmptySplitError<UsageError>(fmt::format(
        "the {} split of {} has no documents (of {}, cut by {}). Hint: add documents (or, with --data-path, give the "
        "split a share of --split){}",
        which == DataSplit::kTrain ? "train" : which == DataSplit::kValid ? "valid" : "test", text_prefix,
        text.num_docs(), split, which == DataSplit::kTrain ? "" : ", or set --eval-iters 0"));
  int64_t epoch_tokens = 0, epoch_trained = 0;
  std::vector<int32_t> buf;
  for (int64_t s = first; s < last; ++s) {
    const int64_t len = mask.length(s), used = std::min(len, cap);
    st.cut += len > cap;
    epoch_tokens += used;
    buf.resize(size_t(len));
    mask.read(s, 0, len, buf.data());
    for (int64_t j = 0; j < len; ++j) {
      if (buf[size_t(j)] != 0 && buf[size_t(j)] != 1)
        throw mismatch(fmt::format("sequence {} holds {} at token {}; a loss mask holds 0 (context) or 1 (trained)",
                                   s, buf[size_t(j)], j));
      if (j < used) epoch_trained += buf[size_t(j)];
    }
  }

  NumpyRandomState rng(opt.seed);
  std::vector<int64_t> order(size_t(st.documents));
  std::vector<std::vector<int64_t>> seqs;
  ds.seq_begin_.assign(1, 0);
  while (num_samples > 0 && ds.num_samples() < num_samples) {
    for (int64_t i = 0; i < st.documents; ++i) order[size_t(i)] = first + i;
    rng.shuffle(order.data(), st.documents);
    seqs.clear();
    if (opt.pack) {
      // Best fit: each sample goes to the open sequence with the least room that still holds it.
      std::multimap<int64_t, size_t> room;  // free tokens -> sequence
      for (const int64_t s : order) {
        const int64_t len = std::min<int64_t>(text.length(s), cap);
        auto it = room.lower_bound(len);
        size_t q;
        int64_t left;
        if (it == room.end()) {
          q = seqs.size();
          seqs.emplace_back();
          left = cap - len;
        } else {
          q = it->second;
          left = it->first - len;
          room.erase(it);
        }
        seqs[q].push_back(s);
        if (left > 0) room.emplace(left, q);
      }
      rng.shuffle(seqs.data(), int64_t(seqs.size()));
    } else {
      for (const int64_t s : order) seqs.push_back({s});
    }
    for (const auto& q : seqs) {
      ds.items_.insert(ds.items_.end(), q.begin(), q.end());
      ds.seq_begin_.push_back(int64_t(ds.items_.size()));
    }
    st.epochs += 1;
    st.sequences += int64_t(seqs.size());
    st.tokens += epoch_tokens;
    st.trained += epoch_trained;
  }
  return ds;
}

void SftDataset::sample(int64_t i, int32_t* tokens, uint8_t* trained, int32_t* segments) const {
  CS_CHECK(i >= 0 && i < num_samples()) << "sample " << i << " of " << num_samples();
  const int64_t cap = opt_.seq_length + 1;
  thread_local std::vector<int32_t> mask;
  mask.resize(size_t(cap));
  int64_t pos = 0;
  int32_t seg = 0;
  for (int64_t k = seq_begin_[size_t(i)]; k < seq_begin_[size_t(i) + 1]; ++k, ++seg) {
    const int64_t s = items_[size_t(k)], len = std::min<int64_t>(text_->length(s), cap - pos);
    CS_CHECK(len >= 0) << "sequence " << i << " overfull";
    text_->read(s, 0, len, tokens + pos);
    mask_->read(s, 0, len, mask.data());
    for (int64_t j = 0; j < len; ++j) {
      trained[pos + j] = uint8_t(mask[size_t(j)]);
      segments[pos + j] = seg;
    }
    pos += len;
  }
  for (; pos < cap; ++pos) {  // padding: one segment of its own, never trained
    tokens[pos] = opt_.pad_id;
    trained[pos] = 0;
    segments[pos] = seg;
  }
}

}  // namespace cs
