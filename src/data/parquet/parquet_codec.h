// Page decompression for the codecs the reader supports: UNCOMPRESSED, SNAPPY (raw snappy),
// GZIP (zlib inflate, gzip or zlib header) and ZSTD. Others (LZO, BROTLI, LZ4, LZ4_RAW) are
// refused by the caller before this is reached. The output size is always the page header's
// uncompressed size, and a stream that does not inflate to exactly that is an error.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace cs::parquet {

// True for the codecs decompress() handles.
bool codec_supported(int32_t codec);

// Decompresses [src, src + src_size) into a new buffer of exactly DST_SIZE bytes; throws
// cs::Error "CONTEXT: SNAPPY page does not decompress: ..." on corrupt input or a size mismatch.
// A DST_SIZE the stream cannot hold (snappy/zstd headers, deflate's 1032:1 bound) is refused
// before anything is allocated, so a corrupt header cannot ask for gigabytes.
std::unique_ptr<uint8_t[]> decompress(int32_t codec, const uint8_t* src, size_t src_size,
                                      size_t dst_size, const std::string& context);

}  // namespace cs::parquet
