// Per-document evaluation (chuanspeed eval): each document of a dataset, in order, scored alone:
// inputs tokens[0:N], targets tokens[1:N+1]; a shorter document uses all its tokens. Documents
// are batched micro_batch at a time, padded at the end (causal attention: padding never
// influences earlier positions) with ignored targets.
#pragma once
#include <functional>

#include "data/indexed_dataset.h"
#include "model/model.h"

namespace cs {

struct DocScore {
  int64_t doc;
  int64_t tokens;   // targets scored
  double loss;      // mean negative log-likelihood over them (0 when none)
};

struct EvalSummary {
  int64_t docs = 0, tokens = 0;
  double total_nll = 0, seconds = 0;
  double mean_loss() const { return tokens ? total_nll / double(tokens) : 0.0; }
};

// Calls on_doc for every document in order; returns the totals. mask (instruction data, the
// document's loss mask, data/sft_dataset.h): only the targets it marks trained are scored.
EvalSummary evaluate_documents(Model& model, const IndexedDataset& data, int64_t seq_length,
                               int64_t micro_batch, const std::function<void(const DocScore&)>& on_doc,
                               const IndexedDataset* mask = nullptr);

}  // namespace cs
