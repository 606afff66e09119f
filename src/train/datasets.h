// The training run's data: Megatron's train, validation and test splits of --data-path (GPT
// samples, or instruction samples with --is-instruction-dataset), sized as Megatron sizes them:
// train for the whole run, validation for every evaluation (those at the multiples of eval_interval
// from start_eval_at_iter on, and the one at the end of training, eval_iters global batches each), test for one
// (eval_iters global batches, evaluated once at the end). Under --skip-train: no train split, and
// the others sized for one evaluation (eval_iters global batches each), as Megatron sizes them.
#pragma once
#include <array>
#include <memory>

#include "data/blended_dataset.h"
#include "data/sft_dataset.h"
#include "train/micro_batch.h"
#include "train/trainer.h"

namespace cs {

struct Datasets {
  std::unique_ptr<BlendedDataset> train, valid, test;
  std::unique_ptr<SftDataset> sft_train, sft_valid, sft_test;  // --is-instruction-dataset
  SampleSource train_src, valid_src, test_src;                 // whichever of the two is in use
  std::array<std::unique_ptr<SampleOrder>, 3> orders;         // each split's, once order_samples set them
  bool has_valid() const { return valid_src.gpt || valid_src.sft; }
  bool has_test() const { return test_src.gpt || test_src.sft; }
};

// may_build: whether this process may build the index cache (one rank of a job builds it, the
// others load it afterwards, as in Megatron). say: print what was built and why the validation
// or test split is left out (no share in --split, too few tokens, an unreadable index); a test
// split too small for a sample is left out silently.
Datasets open_datasets(const TrainArgs& a, bool may_build, bool say);

// Megatron's --dataloader-type (a.dataloader, a.data_sharding) for each split of d, as micro-batches
// of a.micro_batch samples on dp data-parallel ranks take them (data/sample_order.h). UsageError
// for a split the cyclic order cannot take.
void order_samples(Datasets& d, const TrainArgs& a, int64_t dp);

}  // namespace cs
