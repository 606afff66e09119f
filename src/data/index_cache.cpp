// Index cache files: validate-then-map for readers, build-sync-rename for the one builder.
// Same parameters give the same bytes, so a reader that maps a mix of files renamed by two
// successive builds of one hash still sees consistent indices.
#include "data/index_cache.h"

#include <cstring>
#include <filesystem>
#include <memory>

#include "core/error.h"
#include "core/log.h"

namespace cs {

namespace {

constexpr char kMagic[8] = {'C', 'S', 'I', 'N', 'D', 'E', 'X', '\0'};
constexpr uint32_t kVersion = 1;

struct Header {
  char magic[8];
  uint32_t version;
  uint32_t elem_bytes;
  uint64_t hash;
  uint64_t count;
};
static_assert(sizeof(Header) == IndexFile::kHeaderBytes);

std::string hex16(uint64_t v) {
  static const char* kDigits = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) s[size_t(i)] = kDigits[v & 15];
  return s;
}

}  // namespace

uint64_t stable_hash(std::string_view text) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a 64 offset basis and prime
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string index_cache_base(const std::string& prefix, const std::string& cache_dir, uint64_t hash) {
  namespace fs = std::filesystem;
  std::string base = prefix;
  if (!cache_dir.empty()) base = (fs::path(cache_dir) / fs::path(prefix).filename()).string();
  return base + "_" + hex16(hash);
}

std::optional<IndexFile> IndexFile::map(const IndexFileSpec& spec, std::string* why) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(spec.path, ec)) {
    *why = "missing";
    return std::nullopt;
  }
  IndexFile f;
  f.file_ = MappedFile::open(spec.path, "gpt_dataset");
  Header h;
  if (f.file_.size() < sizeof(Header)) {
    *why = "truncated: " + std::to_string(f.file_.size()) + " bytes, shorter than the header";
    return std::nullopt;
  }
  std::memcpy(&h, f.file_.data(), sizeof(h));
  if (std::memcmp(h.magic, kMagic, sizeof(kMagic)) != 0) {
    *why = "not a ChuanSpeed index file (bad magic)";
  } else if (h.version != kVersion) {
    *why = "format version " + std::to_string(h.version) + ", expected " + std::to_string(kVersion);
  } else if (h.hash != spec.hash || h.elem_bytes != spec.elem_bytes || h.count != spec.count) {
    *why = "stale: header (hash, element width, count) does not match the parameters";
  } else if (f.file_.size() != sizeof(Header) + spec.count * spec.elem_bytes) {
    *why = "bad size: " + std::to_string(f.file_.size()) + " bytes, expected " +
           std::to_string(sizeof(Header) + spec.count * spec.elem_bytes);
  } else {
    f.count_ = int64_t(spec.count);
    return f;
  }
  return std::nullopt;
}

namespace {

// Writes every file of SPECS from BUILD's arrays, syncs them all, then renames them into place.
void build_files(const std::vector<IndexFileSpec>& specs,
                 const std::function<void(const IndexWriteFn&)>& build) {
  std::vector<std::unique_ptr<AtomicFile>> files;
  std::vector<bool> written(specs.size(), false);
  try {
    for (const IndexFileSpec& s : specs) {
      std::filesystem::path dir = std::filesystem::path(s.path).parent_path();
      std::error_code ec;
      if (!dir.empty()) std::filesystem::create_directories(dir, ec);
      files.push_back(std::make_unique<AtomicFile>(s.path, "gpt_dataset"));
    }
    build([&](size_t i, const void* data) {
      CS_CHECK(i < specs.size() && !written[i]) << "index file " << i << " written twice";
      const IndexFileSpec& s = specs[i];
      Header h;
      std::memcpy(h.magic, kMagic, sizeof(kMagic));
      h.version = kVersion;
      h.elem_bytes = s.elem_bytes;
      h.hash = s.hash;
      h.count = s.count;
      files[i]->write(&h, sizeof(h));
      files[i]->write(data, s.count * s.elem_bytes);
      written[i] = true;
    });
    for (size_t i = 0; i < files.size(); ++i) {
      CS_CHECK(written[i]) << "index file " << specs[i].path << " not written by the builder";
      files[i]->sync();
    }
    for (auto& f : files) f->commit();
  } catch (const Error& e) {
    throw Error(std::string(e.what()) +
                " (while writing the dataset index cache; to keep it elsewhere, pass "
                "--data-cache-path DIR)");
  }
}

}  // namespace

std::vector<IndexFile> index_files_build_or_map(const std::vector<IndexFileSpec>& specs,
                                                bool may_build,
                                                const std::function<void(const IndexWriteFn&)>& build,
                                                bool* built) {
  *built = false;
  std::vector<IndexFile> out;
  std::string why;
  for (const IndexFileSpec& s : specs) {
    std::optional<IndexFile> f = IndexFile::map(s, &why);
    if (!f) {
      if (!may_build)
        throw Error("[gpt_dataset] " + s.path + ": cannot use the index cache: " + why +
                    ". Hint: let the building process (rank 0) create it first, or delete the "
                    "cache files so that they are rebuilt");
      if (why != "missing") log_warn("[gpt_dataset] {}: {}; rebuilding the index cache", s.path, why);
      break;
    }
    out.push_back(std::move(*f));
  }
  if (out.size() == specs.size()) return out;

  build_files(specs, build);
  *built = true;
  out.clear();
  for (const IndexFileSpec& s : specs) {
    std::optional<IndexFile> f = IndexFile::map(s, &why);
    if (!f)
      throw Error("[gpt_dataset] " + s.path + ": the index file just written does not read back: " +
                  why + ". Hint: is another process writing the same cache? Build on one rank only");
    out.push_back(std::move(*f));
  }
  return out;
}

}  // namespace cs
