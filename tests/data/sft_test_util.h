// Test helper: an instruction dataset (PREFIX_text_document and its uint8 loss mask beside it,
// data/sft_dataset.h) written with the real MMIDIDX writer, one sample per document.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "data/indexed_dataset.h"
#include "data/sft_dataset.h"

namespace cs::test {

// Writes DOCS samples to TEXT (which ends in _text_document) and its mask; make(d, ids, mask)
// fills sample d's tokens and its 0/1 mask (equal lengths).
inline void write_sft_dataset(const std::string& text, int docs,
                              const std::function<void(int d, std::vector<int32_t>& ids, std::vector<int32_t>& mask)>& make) {
  IndexedDatasetWriter tw(text, DType::U16), mw(loss_mask_prefix(text), DType::U8);
  for (int d = 0; d < docs; ++d) {
    std::vector<int32_t> ids, mask;
    make(d, ids, mask);
    tw.add_item(ids.data(), int64_t(ids.size()));
    mw.add_item(mask.data(), int64_t(mask.size()));
    tw.end_document();
    mw.end_document();
  }
  tw.finalize();
  mw.finalize();
}

}  // namespace cs::test
