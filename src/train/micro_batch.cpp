#include "train/micro_batch.h"

#include <algorithm>

namespace cs {

MicroBatch::MicroBatch(int64_t batch, int64_t seq_length, const EodOptions& eod)
    : b_(batch), t_(seq_length), eod_(eod), sample_(size_t(seq_length + 1)), tokens_(size_t(batch * seq_length)),
      targets_(tokens_.size()), seg_sample_(sample_.size()), segments_(tokens_.size()),
      positions_(tokens_.size()), trained_(sample_.size()) {}

void MicroBatch::fill_gpt_row(int64_t row) {
  int32_t seg = 0, pos = 0;
  for (int64_t t = 0; t < t_; ++t) {
    const int32_t token = sample_[size_t(t)];
    const bool masked = eod_.eod_mask_loss && token == eod_.eod;
    tokens_[size_t(row + t)] = token;
    targets_[size_t(row + t)] = masked ? -1 : sample_[size_t(t + 1)];
    count_ += !masked;
    // The EOD belongs to the document it ends; the next token starts the next one.
    segments_[size_t(row + t)] = eod_.reset_attention_mask ? seg : 0;
    positions_[size_t(row + t)] = eod_.reset_position_ids ? pos : int32_t(t);
    ++pos;
    if (token == eod_.eod) ++seg, pos = 0;
  }
}

void MicroBatch::fill(const SampleSource& data, int64_t first) {
  const int64_t n = data.num_samples();
  count_ = 0;
  segmented_ = data.sft ? data.sft->packed() : eod_.reset_attention_mask;
  // Under --reset-attention-mask alone the positions stay 0.. (Megatron's): given explicitly, as the
  // model would otherwise restart them with each segment.
  positioned_ = !data.sft && (eod_.reset_position_ids || eod_.reset_attention_mask);
  for (int64_t bi = 0; bi < b_; ++bi) {
    const int64_t row = bi * t_, index = data.order ? data.order->index(first + bi) : (first + bi) % n;
    if (data.gpt) {
      data.gpt->sample(index, sample_.data());
      fill_gpt_row(row);
      continue;
    }
    data.sft->sample(index, sample_.data(), trained_.data(), seg_sample_.data());
    for (int64_t t = 0; t < t_; ++t) {
      // Trained, and predicted from its own sample (the token before it in the same segment).
      const bool counted = trained_[size_t(t + 1)] && seg_sample_[size_t(t + 1)] == seg_sample_[size_t(t)] &&
                           !(eod_.eod_mask_loss && sample_[size_t(t)] == eod_.eod);
      tokens_[size_t(row + t)] = sample_[size_t(t)];
      targets_[size_t(row + t)] = counted ? sample_[size_t(t + 1)] : -1;
      segments_[size_t(row + t)] = seg_sample_[size_t(t)];
      count_ += counted;
    }
  }
}

}  // namespace cs
