// ZipReader: end of central directory (and its ZIP64 locator and record), the central directory,
// then each entry's local header, which only tells where the data starts (torch sets the
// data-descriptor flag, so local sizes are zero; the central directory's sizes are the truth).
// Record layouts: PKWARE APPNOTE.TXT 4.3.7 (local), 4.3.12 (central), 4.3.14-16 (ends), 4.5.3
// (ZIP64 extra). CRCs are not verified: that would read a 14 GB checkpoint twice.
#include "checkpoint/zip_reader.h"

#include <algorithm>
#include <cstring>

namespace cs {

namespace {

constexpr uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEndSig = 0x06054b50;
constexpr uint32_t kEnd64Sig = 0x06064b50, kLocator64Sig = 0x07064b50;
constexpr uint64_t kLocalBytes = 30, kCentralBytes = 46, kEndBytes = 22;
constexpr uint64_t kLocatorBytes = 20, kEnd64Bytes = 56;
constexpr uint64_t kMaxComment = 0xffff;
constexpr uint16_t kZip64ExtraId = 0x0001;

// Little-endian unsigned integer of N bytes at P.
uint64_t le(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string num(uint64_t v) { return std::to_string(v); }

const char* kTruncated = "the file is truncated or corrupt; re-download it";

}  // namespace

ZipReader::ZipReader(const std::string& path) : map_(MappedFile::open(path, "zip")) { parse(); }

void ZipReader::fail(const std::string& what) const { fail(what, kTruncated); }

void ZipReader::fail(const std::string& what, const std::string& hint) const {
  throw Error("[zip] " + path() + ": " + what + ". Hint: " + hint);
}

void ZipReader::parse() {
  const uint8_t* f = map_.data();
  const uint64_t size = map_.size();
  if (size >= 2 && f[0] == 0x80 && f[1] <= 5)
    fail("got a bare pickle, expected a zip archive",
         "this is the legacy (PyTorch < 1.6) torch.save format; re-save it with a newer torch");
  if (size < kEndBytes)
    fail("file too short: got " + num(size) + " bytes, expected at least " + num(kEndBytes) +
         " (a zip end-of-central-directory record)");

  // The end record is the last 22 bytes plus a comment of its stated length.
  uint64_t end = UINT64_MAX;
  const uint64_t lowest = size - kEndBytes > kMaxComment ? size - kEndBytes - kMaxComment : 0;
  for (uint64_t pos = size - kEndBytes + 1; pos-- > lowest;)
    if (le(f + pos, 4) == kEndSig && pos + kEndBytes + le(f + pos + 20, 2) == size) {
      end = pos;
      break;
    }
  if (end == UINT64_MAX)
    fail("no zip end-of-central-directory record in the last " + num(size - lowest) + " bytes",
         "the file is truncated, or is not a PyTorch zip checkpoint; re-download it");
  const uint8_t* e = f + end;
  uint64_t disk = le(e + 4, 2), cd_disk = le(e + 6, 2), n_disk = le(e + 8, 2);
  uint64_t n_entries = le(e + 10, 2), cd_size = le(e + 12, 4), cd_offset = le(e + 16, 4);
  uint64_t cd_end_limit = end;  // the central directory must end where the end records begin

  const bool has_locator = end >= kLocatorBytes && le(f + end - kLocatorBytes, 4) == kLocator64Sig;
  if (has_locator) {
    // ZIP64: the locator points at the ZIP64 end record, whose 64-bit fields are authoritative;
    // each 16/32-bit field of the plain end record must agree or hold the 0xff.. sentinel.
    const uint8_t* loc = f + end - kLocatorBytes;
    uint64_t end64 = le(loc + 8, 8);
    if (le(loc + 4, 4) != 0 || le(loc + 16, 4) != 1)
      fail("ZIP64 locator names disk " + num(le(loc + 4, 4)) + " of " + num(le(loc + 16, 4)) +
               ", expected a single-disk archive",
           "split (multi-disk) archives are not supported");
    if (end64 > end - kLocatorBytes || end - kLocatorBytes - end64 < kEnd64Bytes)
      fail("ZIP64 end record offset " + num(end64) + " out of range (locator at " +
           num(end - kLocatorBytes) + ")");
    const uint8_t* z = f + end64;
    if (le(z, 4) != kEnd64Sig) fail("no ZIP64 end record at offset " + num(end64));
    uint64_t record = le(z + 4, 8);  // size of the rest of the record, from byte 12
    if (record < kEnd64Bytes - 12 || record > end - kLocatorBytes - end64 - 12)
      fail("ZIP64 end record size " + num(record) + " out of range");
    const uint64_t v64[5] = {le(z + 16, 4), le(z + 20, 4), le(z + 24, 8), le(z + 32, 8),
                             le(z + 40, 8)};
    uint64_t* v32[5] = {&disk, &cd_disk, &n_disk, &n_entries, &cd_size};
    const uint64_t sentinel[5] = {0xffff, 0xffff, 0xffff, 0xffff, 0xffffffff};
    for (int i = 0; i < 5; ++i) {
      if (*v32[i] != v64[i] && *v32[i] != sentinel[i])
        fail("end record and ZIP64 end record disagree (" + num(*v32[i]) + " vs " + num(v64[i]) +
             ")");
      *v32[i] = v64[i];
    }
    if (cd_offset != le(z + 48, 8) && cd_offset != 0xffffffff)
      fail("end record and ZIP64 end record disagree on the central directory offset");
    cd_offset = le(z + 48, 8);
    cd_end_limit = end64;
  } else if (n_entries == 0xffff || cd_size == 0xffffffff || cd_offset == 0xffffffff) {
    fail("end record needs ZIP64 (a field is 0xff..), but there is no ZIP64 locator before it");
  }
  if (disk != 0 || cd_disk != 0 || n_disk != n_entries)
    fail("archive spans several disks, expected a single-disk archive",
         "split (multi-disk) archives are not supported");
  if (cd_offset > cd_end_limit || cd_size != cd_end_limit - cd_offset)
    fail("central directory [" + num(cd_offset) + ", +" + num(cd_size) + ") does not end at the " +
         "end record (offset " + num(cd_end_limit) + ")");
  if (n_entries > cd_size / kCentralBytes)
    fail("end record claims " + num(n_entries) + " entries, but the central directory has only " +
         num(cd_size) + " bytes");

  // Central directory: one record per entry.
  struct Located {
    const std::string* name;
    uint64_t local;
  };
  std::vector<Located> order;
  const uint8_t* cd = f + cd_offset;
  uint64_t at = 0;
  names_.reserve(n_entries);
  for (uint64_t i = 0; i < n_entries; ++i) {
    const std::string where = "central directory record " + num(i);
    if (cd_size - at < kCentralBytes || le(cd + at, 4) != kCentralSig)
      fail(where + " at offset " + num(cd_offset + at) + " is missing or has a bad signature");
    const uint8_t* r = cd + at;
    uint64_t flags = le(r + 8, 2), method = le(r + 10, 2), csize = le(r + 20, 4),
             usize = le(r + 24, 4);
    uint64_t name_len = le(r + 28, 2), extra_len = le(r + 30, 2), comment_len = le(r + 32, 2);
    uint64_t start_disk = le(r + 34, 2), local = le(r + 42, 4);
    if (cd_size - at - kCentralBytes < name_len + extra_len + comment_len)
      fail(where + " runs past the end of the central directory");
    std::string name(reinterpret_cast<const char*>(r + kCentralBytes), name_len);
    if (name.empty()) fail(where + " has an empty entry name");
    const std::string entry = "entry '" + name + "'";
    if (flags & 0x41)
      fail(entry + " is encrypted",
           "encrypted archives are not supported; re-save with torch.save");
    if (method != 0)
      fail(entry + " is compressed with " +
               (method == 8 ? std::string("DEFLATE (method 8)") : "method " + num(method)) +
               ", expected STORED (method 0)",
           "torch.save writes uncompressed archives; do not re-zip a checkpoint with a zip tool");
    // ZIP64 extra field: the 64-bit values of the fields that hold a 0xff.. sentinel, in order.
    uint64_t* wide[4] = {&usize, &csize, &local, &start_disk};
    const uint64_t wide_sentinel[4] = {0xffffffff, 0xffffffff, 0xffffffff, 0xffff};
    const int wide_bytes[4] = {8, 8, 8, 4};
    const uint8_t* x = r + kCentralBytes + name_len;
    bool zip64_seen = false;
    for (uint64_t k = 0; k < extra_len;) {
      if (extra_len - k < 4) fail(entry + ": extra field is truncated");
      uint64_t id = le(x + k, 2), len = le(x + k + 2, 2);
      if (extra_len - k - 4 < len) fail(entry + ": extra field runs past its record");
      if (id == kZip64ExtraId) {
        zip64_seen = true;
        uint64_t p = 0;
        for (int j = 0; j < 4; ++j) {
          if (*wide[j] != wide_sentinel[j]) continue;
          if (len - p < uint64_t(wide_bytes[j])) fail(entry + ": ZIP64 extra field is too short");
          *wide[j] = le(x + k + 4 + p, wide_bytes[j]);
          p += wide_bytes[j];
        }
      }
      k += 4 + len;
    }
    if (!zip64_seen && (usize == 0xffffffff || csize == 0xffffffff || local == 0xffffffff))
      fail(entry + " needs a ZIP64 extra field (a size or offset is 0xffffffff), found none");
    if (start_disk != 0) fail(entry + " starts on disk " + num(start_disk) + ", expected disk 0");
    if (csize != usize)
      fail(entry + " is STORED but its stored size " + num(csize) + " differs from its size " +
           num(usize));
    if (entries_.count(name)) fail("entry '" + name + "' appears twice in the central directory");
    entries_[name] = Entry{local, usize};  // offset fixed below, from the local header
    names_.push_back(name);
    at += kCentralBytes + name_len + extra_len + comment_len;
  }
  if (at != cd_size)
    fail("central directory has " + num(cd_size - at) + " bytes after its " + num(n_entries) +
         " records, expected none");

  // Local headers: they give the data's start (after their own name and extra field, which
  // torch uses to pad data to 64 bytes). Entries must lie before the central directory and,
  // sorted by position, must not overlap.
  for (const std::string& name : names_) order.push_back({&name, entries_[name].offset});
  std::sort(order.begin(), order.end(),
            [](const Located& a, const Located& b) { return a.local < b.local; });
  uint64_t prev_end = 0;
  for (const Located& lc : order) {
    Entry& en = entries_[*lc.name];
    const std::string entry = "entry '" + *lc.name + "'";
    if (lc.local < prev_end) fail(entry + " overlaps the entry before it");
    if (lc.local > cd_offset || cd_offset - lc.local < kLocalBytes ||
        le(f + lc.local, 4) != kLocalSig)
      fail(entry + ": no local header at offset " + num(lc.local));
    const uint8_t* h = f + lc.local;
    uint64_t name_len = le(h + 26, 2), extra_len = le(h + 28, 2);
    if (le(h + 8, 2) != 0 || (le(h + 6, 2) & 0x41))
      fail(entry + ": local header says compressed or encrypted, expected STORED");
    if (cd_offset - lc.local - kLocalBytes < name_len + extra_len)
      fail(entry + ": local header runs into the central directory");
    if (name_len != lc.name->size() || std::memcmp(h + kLocalBytes, lc.name->data(), name_len) != 0)
      fail(entry + ": local header names another entry");
    en.offset = lc.local + kLocalBytes + name_len + extra_len;
    if (en.size > cd_offset - en.offset)
      fail(entry + ": data [" + num(en.offset) + ", +" + num(en.size) +
           ") runs into the central directory at " + num(cd_offset));
    prev_end = en.offset + en.size;
  }
}

std::pair<const uint8_t*, uint64_t> ZipReader::data(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end())
    fail("no entry named '" + name + "' (the archive has " + num(names_.size()) + " entries)",
         "the checkpoint is incomplete or not a torch.save archive");
  return {map_.data() + it->second.offset, it->second.size};
}

}  // namespace cs
