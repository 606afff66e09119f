// Test-only builders for torch.save-shaped files, written byte by byte: a STORED zip (optionally
// with every ZIP64 record and extra field, and with zero-filled entries left as file holes so a
// > 4 GiB archive costs no disk), and a state-dict pickle made of the opcodes torch.save uses.
// Not a general zip or pickle writer: the CRC of an entry with a hole is left zero (the reader
// does not check CRCs; Python's zipfile reads the other archives).
#pragma once
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace cs::testzip {

// Appends V as N little-endian bytes.
inline void put(std::string& s, uint64_t v, int n) {
  for (int i = 0; i < n; ++i) s.push_back(char(uint8_t(v >> (8 * i))));
}

// CRC-32 (IEEE, as zip uses) of BYTES.
inline uint32_t crc32(const std::string& bytes) {
  uint32_t c = 0xffffffff;
  for (unsigned char b : bytes) {
    c ^= b;
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
  }
  return ~c;
}

struct ZipEntrySpec {
  std::string name;
  std::string data;
  uint64_t zeros = 0;   // zero bytes after DATA, left as a hole in the file
  uint16_t method = 0;  // 0 STORED, 8 DEFLATE (the bytes are not actually compressed)
};

// A file as (offset, bytes) chunks over SIZE bytes; the gaps read as zeros.
struct ZipImage {
  std::vector<std::pair<uint64_t, std::string>> chunks;
  uint64_t size = 0;
  uint64_t cd_offset = 0;  // where the central directory starts
  std::string bytes() const {
    std::string out(size, '\0');
    for (const auto& [off, b] : chunks) out.replace(off, b.size(), b);
    return out;
  }
};

// Lays out ENTRIES as torch's writer does (local headers, data, central directory, ZIP64 end
// record and locator, end record). ZIP64 puts every size and offset in ZIP64 extra fields and
// 0xff.. sentinels in the 16/32-bit fields, as a > 4 GiB archive must.
inline ZipImage zip_image(const std::vector<ZipEntrySpec>& entries, bool zip64) {
  ZipImage img;
  std::vector<uint64_t> local_offsets;
  uint64_t at = 0;
  for (const auto& e : entries) {
    std::string h;
    put(h, 0x04034b50, 4);
    put(h, 45, 2);
    put(h, 0, 2);
    put(h, e.method, 2);
    put(h, 0, 4);  // time, date
    put(h, 0, 4);  // crc
    put(h, 0, 4);  // sizes: zero, as with a data descriptor
    put(h, 0, 4);
    put(h, e.name.size(), 2);
    put(h, 0, 2);
    h += e.name + e.data;
    local_offsets.push_back(at);
    img.chunks.push_back({at, h});
    at += h.size() + e.zeros;
  }
  img.cd_offset = at;
  std::string cd;
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    uint64_t size = e.data.size() + e.zeros;
    std::string extra;
    if (zip64) {
      put(extra, 0x0001, 2);
      put(extra, 24, 2);
      put(extra, size, 8);
      put(extra, size, 8);
      put(extra, local_offsets[i], 8);
    }
    put(cd, 0x02014b50, 4);
    put(cd, 45, 2);
    put(cd, 45, 2);
    put(cd, 0, 2);
    put(cd, e.method, 2);
    put(cd, 0, 4);
    put(cd, e.zeros ? 0 : crc32(e.data), 4);
    put(cd, zip64 ? 0xffffffff : size, 4);
    put(cd, zip64 ? 0xffffffff : size, 4);
    put(cd, e.name.size(), 2);
    put(cd, extra.size(), 2);
    put(cd, 0, 2);  // comment
    put(cd, 0, 2);  // disk
    put(cd, 0, 2);
    put(cd, 0, 4);
    put(cd, zip64 ? 0xffffffff : local_offsets[i], 4);
    cd += e.name + extra;
  }
  const uint64_t end64 = at + cd.size();
  std::string tail = cd;
  put(tail, 0x06064b50, 4);
  put(tail, 44, 8);
  put(tail, 45, 2);
  put(tail, 45, 2);
  put(tail, 0, 4);
  put(tail, 0, 4);
  put(tail, entries.size(), 8);
  put(tail, entries.size(), 8);
  put(tail, cd.size(), 8);
  put(tail, at, 8);
  put(tail, 0x07064b50, 4);  // locator
  put(tail, 0, 4);
  put(tail, end64, 8);
  put(tail, 1, 4);
  put(tail, 0x06054b50, 4);  // end record
  put(tail, 0, 2);
  put(tail, 0, 2);
  put(tail, zip64 ? 0xffff : entries.size(), 2);
  put(tail, zip64 ? 0xffff : entries.size(), 2);
  put(tail, zip64 ? 0xffffffff : cd.size(), 4);
  put(tail, zip64 ? 0xffffffff : at, 4);
  put(tail, 0, 2);
  img.chunks.push_back({at, tail});
  img.size = at + tail.size();
  return img;
}

// Writes IMG to PATH with pwrite, leaving its gaps as holes; false on any I/O failure.
inline bool write_image(const std::string& path, const ZipImage& img) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return false;
  bool ok = ::ftruncate(fd, off_t(img.size)) == 0;
  for (const auto& [off, b] : img.chunks)
    ok = ok && ::pwrite(fd, b.data(), b.size(), off_t(off)) == ssize_t(b.size());
  return ::close(fd) == 0 && ok;
}

// One tensor of a hand-made state dict.
struct TensorSpec {
  std::string name;
  std::vector<int64_t> sizes, strides;
  std::string storage_type = "FloatStorage";
  std::string key = "0";
  int64_t storage_numel = 0;
  int64_t offset = 0;
};

// Pickle opcodes, appended one call at a time.
struct PickleWriter {
  std::string s;
  PickleWriter& raw(const std::string& b) {
    s += b;
    return *this;
  }
  PickleWriter& op(uint8_t c) {
    s.push_back(char(c));
    return *this;
  }
  PickleWriter& global(const std::string& module, const std::string& name) {
    return op('c').raw(module + "\n" + name + "\n");
  }
  PickleWriter& str(const std::string& v) {
    op('X');
    put(s, v.size(), 4);
    return raw(v);
  }
  PickleWriter& integer(int64_t v) {
    if (v >= 0 && v < 256) {
      op('K');
      put(s, uint64_t(v), 1);
    } else {
      op(0x8a).op(8);
      put(s, uint64_t(v), 8);
    }  // LONG1, 8 bytes
    return *this;
  }
  PickleWriter& ints(const std::vector<int64_t>& v) {
    op('(');
    for (int64_t x : v) integer(x);
    return op('t');
  }
  // The _rebuild_tensor_v2 call torch.save emits for T.
  PickleWriter& tensor(const TensorSpec& t) {
    global("torch._utils", "_rebuild_tensor_v2").op('(');
    op('(')
        .str("storage")
        .global("torch", t.storage_type)
        .str(t.key)
        .str("cpu")
        .integer(t.storage_numel);
    op('t').op('Q').integer(t.offset).ints(t.sizes).ints(t.strides).op(0x89);
    global("collections", "OrderedDict").op(')').op('R');
    return op('t').op('R');
  }
};

// PROTO 2, an OrderedDict of TENSORS, STOP.
inline std::string state_dict_pickle(const std::vector<TensorSpec>& tensors) {
  PickleWriter w;
  w.op(0x80).op(2).global("collections", "OrderedDict").op(')').op('R').op('(');
  for (const auto& t : tensors) w.str(t.name).tensor(t);
  return w.op('u').op('.').s;
}

// The entries of a torch.save archive under PREFIX: data.pkl, each storage, version.
inline std::vector<ZipEntrySpec> torch_entries(
    const std::string& prefix, const std::string& pickle,
    const std::vector<std::pair<std::string, std::string>>& storages) {
  std::vector<ZipEntrySpec> out = {{prefix + "/data.pkl", pickle}};
  for (const auto& [key, bytes] : storages) out.push_back({prefix + "/data/" + key, bytes});
  out.push_back({prefix + "/version", "3\n"});
  return out;
}

}  // namespace cs::testzip
