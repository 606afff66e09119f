// The training log record (DESIGN §7): one per --log-interval, printed as Megatron's log line and
// appended to metrics.jsonl. Throughput per device p: samples/s/p = global batch / step time /
// world size; tokens/s/p = samples/s/p x seq length; TFLOPs/p = model FLOPs / step time / world.
#pragma once
#include <cstdio>
#include <memory>
#include <string>

namespace cs {

struct LogRecord {
  int64_t iteration = 0, train_iters = 0, consumed_samples = 0, global_batch = 0;
  double elapsed_ms_per_iter = 0, learning_rate = 0, lm_loss = 0, loss_scale = 1, grad_norm = 0;
  int64_t skipped_iters = 0, nan_iters = 0;
  double samples_per_s_per_device = 0, tokens_per_s_per_device = 0, tflops_per_device = 0;
  int64_t trained_tokens = -1;  // instruction data: trained tokens of the interval's batches (-1: not shown)
  // As Megatron: no "lm loss" for an interval where no iteration stepped (nothing to average), no
  // "grad norm" when the logged iteration itself was skipped (its norm is not finite).
  bool has_loss = true, has_grad_norm = true;
  double params_norm = -1;  // --log-params-norm: the parameters' L2 norm at the logged iteration (-1: not shown)
  double num_zeros = -1;    // --log-num-zeros-in-grad: the logged iteration's zero gradients (-1: not shown)
};

// " iteration 10/100 | consumed samples: 80 | elapsed time per iteration (ms): ... | ..."
std::string format_log_line(const LogRecord& r);
// One JSON object (no newline).
std::string format_jsonl(const LogRecord& r);

// Megatron's perplexity of an evaluation's loss: exp(min(20, loss)), so a diverged run prints
// e^20, not inf.
double megatron_ppl(double loss);

// Appends records to DIR/metrics.jsonl (created with the directory; flushed per record).
class MetricsWriter {
 public:
  explicit MetricsWriter(const std::string& dir);  // empty dir: writes nothing
  ~MetricsWriter();
  void write(const LogRecord& r);
  // {"iteration": i, "valid_lm_loss": x, "valid_ppl": p} (test: "test_lm_loss", "test_ppl"; an
  // evaluation at the end of training has "end_of_training": true after the iteration): a
  // validation (or, test: the test split's) evaluation at `iteration`, its loss and Megatron's
  // perplexity, exp(min(20, loss)).
  void write_validation(int64_t iteration, double loss, bool test = false, bool end_of_training = false);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
};

}  // namespace cs
