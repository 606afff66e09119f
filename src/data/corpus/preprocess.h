// `chuanspeed preprocess`: records (Parquet / JSON / JSONL, record_source.h) -> documents
// (handlers.h) -> SentencePiece ids -> Megatron MMIDIDX datasets PREFIX_<key>_document.{bin,idx},
// what Megatron-LM's tools/preprocess_data.py writes (and, for an instruction dataset, the loss
// mask PREFIX_loss_mask_document.{bin,idx} with the same sequence lengths and documents). One reader thread, N tokenizing workers
// and the writer (the calling thread) pass batches of records through a bounded ring, and the
// writer takes batches in input order: the output bytes are the same for any worker count, and
// memory is bounded by the ring, never by the input size.
#pragma once
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace cs {

// The most tokenizing threads --workers may ask for.
inline constexpr int kMaxWorkers = 1024;
// --max-record-bytes' default: 8 MiB, longer than any book of a pretraining corpus, and at most
// about 1.7 GB of SentencePiece's memory for one record (200 bytes a byte for a text without
// spaces, measured; far less for words, which the word cache encodes one by one).
inline constexpr int64_t kDefaultMaxRecordBytes = int64_t(8) << 20;

struct PreprocessOptions {
  std::vector<std::string> inputs;  // files or directories
  std::string output_prefix;
  std::string tokenizer;  // a Hugging Face tokenizer directory or a .model file
  std::vector<std::string> json_keys{"text"};
  std::string handler = "plain";
  // --prompt-type: alpaca | vicuna | baichuan; empty: the handler's own (prompt_template.h).
  std::string prompt_type;
  // --is-instruction-dataset: also write PREFIX_loss_mask_document.{bin,idx}, uint8, one value
  // per token of the text dataset: 1 for a response token (trained), 0 for context.
  bool instruction = false;
  bool append_eod = false;
  int workers = 1;
  int64_t log_interval = 100;  // documents between progress lines (0: none)
  int64_t batch_records = 64;  // records per batch handed to a worker
  int64_t max_record_bytes = kDefaultMaxRecordBytes;  // a longer record is an error (0: no limit)
  // Set (by a signal handler) to stop: no more records are read, the run ends with an Error
  // (exit 130) and its .tmp outputs removed. Null: never stopped.
  const std::atomic<bool>* stop = nullptr;
};

struct PreprocessStats {
  int64_t documents = 0;
  int64_t tokens = 0;
  int64_t input_bytes = 0;
  double seconds = 0;
  std::vector<std::string> output_prefixes;  // PREFIX_<key>_document, one per key
};

// Runs the whole job. Throws cs::Error (the first bad record in input order, naming file and
// line) or cs::UsageError; on any error no output file is left under its final name.
PreprocessStats run_preprocess(const PreprocessOptions& opt);

}  // namespace cs
