// What the trainer tests share: the tiny model planned for 16-token samples, and a dataset of
// `docs` documents of `len` tokens written at PREFIX, token i of document d being token(d, i).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/indexed_dataset.h"
#include "model/config.h"

namespace cs::test {

inline ModelConfig tiny16() {
  ModelConfig c = model_preset("tiny");
  c.max_seq_length = 16;
  return c;
}

inline std::string write_dataset(const std::string& prefix, int docs, int len,
                                 const std::function<int32_t(int d, int i)>& token) {
  IndexedDatasetWriter w(prefix, DType::U16);
  for (int d = 0; d < docs; ++d) {
    std::vector<int32_t> ids;
    for (int i = 0; i < len; ++i) ids.push_back(token(d, i));
    w.add_item(ids.data(), int64_t(ids.size()));
    w.end_document();
  }
  w.finalize();
  return prefix;
}

}  // namespace cs::test
