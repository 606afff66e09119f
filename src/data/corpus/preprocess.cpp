#include "data/corpus/preprocess.h"

#include <fmt/core.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "core/timer.h"
#include "data/corpus/handlers.h"
#include "data/corpus/record_source.h"
#include "data/indexed_dataset.h"
#include "data/tokenizer.h"
#include "data/word_cache.h"

namespace cs {

namespace {

// The tokens of one batch for one output key, laid out as the writer adds them.
struct KeyTokens {
  std::vector<int32_t> ids;          // every sequence back to back
  std::vector<int64_t> seq_lengths;  // tokens per sequence
  std::vector<int32_t> doc_seqs;     // sequences per document (0 for an empty document)
  std::vector<int32_t> mask;         // instruction datasets: 1 / 0 per id of `ids`
};

struct Batch {
  int64_t seq = 0;
  std::vector<RawRecord> records;
  int64_t bytes_end = 0;  // input bytes consumed when the batch was closed
  std::vector<KeyTokens> out;
  std::exception_ptr error;
  bool done = false;
};

// Tokenizes one batch: parse, handle, encode. Any error is kept for the writer, which reports
// the batch's error only when it reaches it in order, so the first bad record is the one named.
void process(Batch& b, const std::vector<std::string>& files, const RecordHandler& handler, const Tokenizer& tok,
             WordCachedEncoder& enc, bool append_eod, bool instruction, size_t nkeys) {
  b.out.assign(nkeys, {});
  std::vector<DocumentText> docs;
  // SentencePiece's ids, through this worker's word cache.
  const EncodeFn encode = [&enc](std::string_view text, std::vector<int32_t>& out) { enc.encode(text, out); };
  try {
    for (auto& r : b.records) {
      parse_record(files, r);
      handler.handle(r.row, record_origin(files, r), docs);
      for (size_t k = 0; k < nkeys; ++k) {
        KeyTokens& kt = b.out[k];
        std::vector<int32_t>* mask = instruction ? &kt.mask : nullptr;
        int32_t nseq = 0;
        bool last_trained = false;  // the last piece written: an EOD after it is trained as it is
        for (const Sequence& s : docs[k]) {
          const size_t start = kt.ids.size();
          // A model without BOS / EOS pieces (id -1) skips them, as Tokenizer::encode does.
          if (tok.add_bos() && tok.bos_id() >= 0) {
            kt.ids.push_back(tok.bos_id());
            if (mask) mask->push_back(0);
          }
          for (const TextPiece& p : s)
            if (p.eos_after && tok.eos_id() < 0)
              throw Error(fmt::format("[preprocess] {}: the tokenizer {} has no EOS piece, which this handler "
                                      "ends each answer with. Hint: use a tokenizer with </s>",
                                      record_origin(files, r), tok.model_path()));
          encode_pieces(s, encode, tok.eos_id(), kt.ids, mask);
          const bool trained = !s.empty() && s.back().trained;
          if (tok.add_eos() && tok.eos_id() >= 0) {
            kt.ids.push_back(tok.eos_id());
            if (mask) mask->push_back(trained);
          }
          if (kt.ids.size() == start) continue;  // Megatron drops empty sentences
          last_trained = trained;
          kt.seq_lengths.push_back(int64_t(kt.ids.size() - start));
          ++nseq;
        }
        // --append-eod: EOD ends the document's last sequence (Megatron), unless it already does.
        if (append_eod && nseq > 0 && kt.ids.back() != tok.eos_id()) {
          kt.ids.push_back(tok.eos_id());
          if (mask) mask->push_back(last_trained);
          ++kt.seq_lengths.back();
        }
        kt.doc_seqs.push_back(nseq);
      }
      r = RawRecord{};  // free the text now
    }
  } catch (...) {
    b.error = std::current_exception();
  }
}

// The shared state of the reader, the workers and the writer.
struct Ring {
  std::mutex m;
  std::condition_variable cv;
  std::deque<Batch*> todo;
  std::map<int64_t, std::unique_ptr<Batch>> in_flight;
  int64_t produced = 0, next_write = 0;
  bool producer_done = false, abort = false;
  std::exception_ptr producer_error;
};

}  // namespace

PreprocessStats run_preprocess(const PreprocessOptions& opt) {
  // Each worker holds its own SentencePiece model and word cache (a few MB): thousands would only
  // exhaust threads or memory, so the count is bounded with one clear line.
  if (opt.workers < 1 || opt.workers > kMaxWorkers)
    throw UsageError(fmt::format("--workers {}: expected 1 to {} (one tokenizing thread each; the CPU count is "
                                 "the useful most)", opt.workers, kMaxWorkers));
  if (opt.output_prefix.empty()) throw UsageError("--output-prefix: required");
  const std::vector<std::string> files = expand_inputs(opt.inputs);
  const auto handler = make_handler(opt.handler, opt.json_keys, opt.prompt_type, opt.instruction);
  const Tokenizer tok(opt.tokenizer);
  if (!opt.prompt_type.empty()) check_prompt_tokenizer(parse_prompt_type(opt.prompt_type), tok);
  const std::vector<std::string> keys = handler->output_keys();
  const DType dtype = best_dtype(tok.vocab_size());
  if (opt.append_eod && tok.eos_id() < 0)
    throw UsageError(fmt::format("--append-eod: the tokenizer {} has no EOS piece to append. Hint: drop "
                                 "--append-eod or use a tokenizer with </s>", tok.model_path()));

  PreprocessStats st;
  const auto parent = std::filesystem::path(opt.output_prefix).parent_path();
  std::error_code ec;
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  std::vector<std::unique_ptr<IndexedDatasetWriter>> writers;
  for (const auto& k : keys) {
    st.output_prefixes.push_back(opt.output_prefix + "_" + k + "_document");
    writers.push_back(std::make_unique<IndexedDatasetWriter>(st.output_prefixes.back(), dtype));
  }
  // The loss mask of the (one) text key: Megatron's uint8 dtype, the same sequences and documents.
  std::unique_ptr<IndexedDatasetWriter> mask_writer;
  if (opt.instruction) {
    CS_CHECK(keys.size() == 1) << "an instruction handler writes one key";
    st.output_prefixes.push_back(opt.output_prefix + "_loss_mask_document");
    mask_writer = std::make_unique<IndexedDatasetWriter>(st.output_prefixes.back(), DType::U8);
  }

  Ring ring;
  const int64_t cap = 4 * int64_t(opt.workers);
  int64_t bytes = 0;
  std::vector<std::thread> threads;
  // Whatever happens, stop and join every thread before the writers (and their .tmp files) go.
  struct Joiner {
    Ring& ring;
    std::vector<std::thread>& threads;
    ~Joiner() {
      {
        std::lock_guard<std::mutex> lk(ring.m);
        ring.abort = true;
      }
      ring.cv.notify_all();
      for (auto& t : threads) t.join();
    }
  } joiner{ring, threads};

  threads.emplace_back([&] {
    auto batch = std::make_unique<Batch>();
    auto push = [&] {
      batch->bytes_end = bytes;
      std::unique_lock<std::mutex> lk(ring.m);
      ring.cv.wait(lk, [&] { return ring.abort || ring.produced - ring.next_write < cap; });
      if (ring.abort) throw std::runtime_error("aborted");
      batch->seq = ring.produced++;
      ring.todo.push_back(batch.get());
      ring.in_flight.emplace(batch->seq, std::move(batch));
      lk.unlock();
      ring.cv.notify_all();
      batch = std::make_unique<Batch>();
    };
    try {
      for_each_record(files, handler->parquet_columns(), handler->optional_columns(), bytes, opt.max_record_bytes,
                      [&](RawRecord&& r) {
        if (opt.stop && opt.stop->load())
          throw Error(fmt::format("[preprocess] interrupted at {}: stopped; no output written (the .tmp files are "
                                  "removed). Hint: run it again; it starts from the beginning",
                                  record_origin(files, r)), 130);
        batch->records.push_back(std::move(r));
        if (int64_t(batch->records.size()) >= opt.batch_records) push();
      });
      if (!batch->records.empty()) push();
    } catch (...) {
      const std::exception_ptr error = std::current_exception();
      // The records read before the failure still go to the workers: one of them may be a bad
      // record earlier in the input than this error, and the writer reports that one first.
      try {
        if (batch && !batch->records.empty()) push();
      } catch (...) {
      }
      std::lock_guard<std::mutex> lk(ring.m);
      if (!ring.abort) ring.producer_error = error;
    }
    {
      std::lock_guard<std::mutex> lk(ring.m);
      ring.producer_done = true;
    }
    ring.cv.notify_all();
  });
  for (int w = 0; w < opt.workers; ++w) {
    threads.emplace_back([&] {
      WordCachedEncoder enc(tok.model_path());
      for (;;) {
        Batch* b = nullptr;
        {
          std::unique_lock<std::mutex> lk(ring.m);
          ring.cv.wait(lk, [&] { return ring.abort || !ring.todo.empty() || ring.producer_done; });
          if (ring.abort || ring.todo.empty()) return;
          b = ring.todo.front();
          ring.todo.pop_front();
        }
        process(*b, files, *handler, tok, enc, opt.append_eod, opt.instruction, keys.size());
        {
          std::lock_guard<std::mutex> lk(ring.m);
          b->done = true;
        }
        ring.cv.notify_all();
      }
    });
  }

  // The writer: batches in input order.
  Timer timer;
  int64_t next_log = opt.log_interval;
  for (;;) {
    std::unique_ptr<Batch> b;
    {
      std::unique_lock<std::mutex> lk(ring.m);
      ring.cv.wait(lk, [&] {
        const auto it = ring.in_flight.find(ring.next_write);
        return (it != ring.in_flight.end() && it->second->done) ||
               (ring.producer_done && ring.next_write == ring.produced);
      });
      const auto it = ring.in_flight.find(ring.next_write);
      if (it == ring.in_flight.end()) {
        if (ring.producer_error) std::rethrow_exception(ring.producer_error);
        break;
      }
      b = std::move(it->second);
      ring.in_flight.erase(it);
    }
    if (b->error) std::rethrow_exception(b->error);
    for (size_t k = 0; k < keys.size(); ++k) {
      const KeyTokens& kt = b->out[k];
      const int32_t* p = kt.ids.data();
      size_t s = 0;
      const int32_t* m = kt.mask.data();
      for (int32_t nseq : kt.doc_seqs) {
        for (int32_t i = 0; i < nseq; ++i, ++s) {
          writers[k]->add_item(p, kt.seq_lengths[s]);
          p += kt.seq_lengths[s];
          if (mask_writer) {
            mask_writer->add_item(m, kt.seq_lengths[s]);
            m += kt.seq_lengths[s];
          }
        }
        writers[k]->end_document();
        if (mask_writer) mask_writer->end_document();
      }
      st.tokens += int64_t(kt.ids.size());
    }
    st.documents += int64_t(b->out.empty() ? 0 : b->out[0].doc_seqs.size());
    st.input_bytes = b->bytes_end;
    {
      std::lock_guard<std::mutex> lk(ring.m);
      ++ring.next_write;
    }
    ring.cv.notify_all();
    if (opt.log_interval > 0 && st.documents >= next_log) {
      const double s = std::max(timer.seconds(), 1e-9);
      log_info("[preprocess] processed {} documents ({:.0f} docs/s, {:.0f} tokens/s, {:.2f} MB/s)", st.documents,
               st.documents / s, st.tokens / s, st.input_bytes / s / 1e6);
      next_log = (st.documents / opt.log_interval + 1) * opt.log_interval;
    }
  }
  st.input_bytes = bytes;
  for (auto& w : writers) w->finalize();
  if (mask_writer) mask_writer->finalize();
  st.seconds = timer.seconds();
  return st;
}

}  // namespace cs
