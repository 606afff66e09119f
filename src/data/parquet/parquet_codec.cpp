// Snappy through its C API, GZIP through zlib's inflate (windowBits 15 + 32: gzip or zlib header
// detected, as parquet-mr and Arrow accept both), ZSTD through ZSTD_decompress (one frame or
// several, as Arrow writes). Every library status is checked; sizes must match exactly.
#include "data/parquet/parquet_codec.h"

#include <snappy-c.h>
#include <zlib.h>
#include <zstd.h>

#include <climits>
#include <cstring>

#include "core/error.h"
#include "data/parquet/parquet_metadata.h"

namespace cs::parquet {

namespace {

// A buffer the decompressor overwrites whole (no zero fill: untouched pages cost nothing).
std::unique_ptr<uint8_t[]> uninitialized(size_t n) { return std::unique_ptr<uint8_t[]>(new uint8_t[n]); }

[[noreturn]] void fail(int32_t codec, const std::string& context, const std::string& why) {
  throw Error(context + ": " + codec_name(codec) + " page does not decompress: " + why +
              ". Hint: the file is corrupt or truncated; rewrite it with a Parquet writer");
}

void inflate_gzip(const uint8_t* src, size_t src_size, uint8_t* dst, size_t dst_size,
                  const std::string& context) {
  if (src_size > UINT_MAX || dst_size > UINT_MAX) fail(kGzip, context, "page over 4 GiB");
  z_stream z;
  std::memset(&z, 0, sizeof(z));
  if (inflateInit2(&z, 15 + 32) != Z_OK) fail(kGzip, context, "inflateInit2 failed");
  z.next_in = const_cast<Bytef*>(src);
  z.avail_in = uInt(src_size);
  z.next_out = dst;
  z.avail_out = uInt(dst_size);
  int rc = Z_BUF_ERROR;
  // Several gzip members may follow one another; inflate each until the input is used up.
  while (z.avail_in > 0) {
    rc = inflate(&z, Z_FINISH);
    if (rc == Z_STREAM_END && z.avail_in > 0) {
      if (inflateReset(&z) != Z_OK) break;
      continue;
    }
    break;
  }
  size_t produced = dst_size - z.avail_out;
  std::string msg = z.msg ? z.msg : "";
  inflateEnd(&z);
  if (rc == Z_BUF_ERROR && produced == dst_size)
    fail(kGzip, context, "more than the expected " + std::to_string(dst_size) + " bytes");
  if (rc == Z_BUF_ERROR) fail(kGzip, context, "the compressed data ends early");
  if (rc != Z_STREAM_END)
    fail(kGzip, context, "zlib error " + std::to_string(rc) + (msg.empty() ? "" : " (" + msg + ")"));
  if (produced != dst_size)
    fail(kGzip, context,
         "got " + std::to_string(produced) + " bytes, expected " + std::to_string(dst_size));
}

}  // namespace

bool codec_supported(int32_t codec) {
  return codec == kUncompressed || codec == kSnappy || codec == kGzip || codec == kZstd;
}

std::unique_ptr<uint8_t[]> decompress(int32_t codec, const uint8_t* src, size_t src_size,
                                      size_t dst_size, const std::string& context) {
  auto sizes = [&](size_t got) {
    return "got " + std::to_string(got) + " bytes, expected " + std::to_string(dst_size);
  };
  std::unique_ptr<uint8_t[]> dst;
  switch (codec) {
    case kUncompressed:
      if (src_size != dst_size)
        fail(codec, context,
             "compressed size " + std::to_string(src_size) + " differs from uncompressed size " +
                 std::to_string(dst_size));
      dst = uninitialized(dst_size);
      if (dst_size) std::memcpy(dst.get(), src, dst_size);
      return dst;
    case kSnappy: {
      size_t n = 0;
      auto s = reinterpret_cast<const char*>(src);
      if (snappy_uncompressed_length(s, src_size, &n) != SNAPPY_OK) fail(codec, context, "bad header");
      if (n != dst_size) fail(codec, context, sizes(n));
      dst = uninitialized(dst_size);
      if (snappy_uncompress(s, src_size, reinterpret_cast<char*>(dst.get()), &n) != SNAPPY_OK ||
          n != dst_size)
        fail(codec, context, "corrupt stream");
      return dst;
    }
    case kGzip:
      // deflate cannot expand data more than 1032:1 (zlib's technical details, "maximum
      // compression factor"); headers add a few bytes per member.
      if (dst_size / 1032 > src_size + 64)
        fail(codec, context, std::to_string(src_size) + " compressed bytes cannot inflate to " +
                                 std::to_string(dst_size));
      dst = uninitialized(dst_size);
      inflate_gzip(src, src_size, dst.get(), dst_size, context);
      return dst;
    case kZstd: {
      unsigned long long first = ZSTD_getFrameContentSize(src, src_size);
      if (first == ZSTD_CONTENTSIZE_ERROR) fail(codec, context, "not a zstd frame");
      if (first != ZSTD_CONTENTSIZE_UNKNOWN && first > dst_size)
        fail(codec, context, "the first frame holds " + std::to_string(first) +
                                 " bytes, more than the expected " + std::to_string(dst_size));
      dst = uninitialized(dst_size);
      size_t n = ZSTD_decompress(dst.get(), dst_size, src, src_size);
      if (ZSTD_isError(n)) fail(codec, context, ZSTD_getErrorName(n));
      if (n != dst_size) fail(codec, context, sizes(n));
      return dst;
    }
    default:
      fail(codec, context, "codec not supported");
  }
}

}  // namespace cs::parquet
