#include "data/packed_dataset.h"

#include <fmt/core.h>

#include <algorithm>

namespace cs {

PackedDataset::PackedDataset(const std::vector<std::string>& prefixes, int64_t seq_length)
    : seq_length_(seq_length) {
  if (prefixes.empty()) throw UsageError("[data] --data-path is required: a dataset prefix (PREFIX.bin/.idx)");
  for (const std::string& p : prefixes) sets_.emplace_back(p);
  for (size_t s = 0; s < sets_.size(); ++s)
    for (int64_t q = 0; q < sets_[s].size(); ++q) {
      const int64_t len = sets_[s].length(q);
      if (len == 0) continue;
      pieces_.push_back({int32_t(s), q, total_});
      total_ += len;
    }
  num_samples_ = (total_ - 1) / seq_length;
  if (num_samples_ < 1)
    throw Error(fmt::format("[data] {}: {} tokens in all, fewer than one sample of --seq-length {} + 1. "
                            "Hint: use more data or a shorter --seq-length",
                            prefixes[0], total_, seq_length));
}

void PackedDataset::read_stream(int64_t pos, int64_t count, int32_t* out) const {
  auto it = std::upper_bound(pieces_.begin(), pieces_.end(), pos,
                             [](int64_t p, const Piece& pc) { return p < pc.start; });
  size_t k = size_t(it - pieces_.begin()) - 1;
  while (count > 0) {
    const Piece& pc = pieces_[k];
    const IndexedDataset& ds = sets_[size_t(pc.set)];
    const int64_t off = pos - pc.start, take = std::min<int64_t>(count, ds.length(pc.seq) - off);
    ds.read(pc.seq, off, take, out);
    out += take;
    pos += take;
    count -= take;
    ++k;
  }
}

void PackedDataset::sample(int64_t i, int32_t* out) const {
  read_stream((i % num_samples_) * seq_length_, seq_length_ + 1, out);
}

}  // namespace cs
