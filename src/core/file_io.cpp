// MappedFile and AtomicFile: mmap for readers, write-beside-then-rename for writers.
// Every failure becomes a one-line cs::Error naming the file and the OS reason.
#include "core/file_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace cs {

namespace {
constexpr size_t kBufferBytes = size_t(1) << 20;

std::string os_reason() { return std::strerror(errno); }

// What a file that is not a regular one is, for the message.
const char* file_kind(mode_t m) {
  return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO (named pipe)" : S_ISSOCK(m) ? "a socket"
         : S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device" : "not a file";
}

// WHAT: "cannot open: " when an open was tried, else "".
[[noreturn]] void not_regular(const std::string& path, const char* component, const char* what, mode_t mode,
                              const char* hint) {
  throw Error("[" + std::string(component) + "] " + path + ": " + what + "not a regular file (" + file_kind(mode) +
              "). Hint: " + (hint ? hint : "pass the path of a file"));
}
}  // namespace

void require_regular_file(const std::string& path, const char* component, const char* hint) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) not_regular(path, component, "", st.st_mode, hint);
}

MappedFile MappedFile::open(const std::string& path, const char* component, const char* hint) {
  MappedFile m;
  m.path_ = path;
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer, forever; it changes nothing for
  // the regular files this maps.
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    throw Error("[" + std::string(component) + "] " + path + ": cannot open: " + os_reason() +
                ". Hint: " + (hint ? hint : "check the path and its permissions"));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const std::string why = os_reason();
    ::close(fd);
    throw Error("[" + std::string(component) + "] " + path + ": cannot open: " + why +
                ". Hint: " + (hint ? hint : "check the path and its permissions"));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    not_regular(path, component, "cannot open: ", st.st_mode, hint);
  }
  m.size_ = size_t(st.st_size);
  if (m.size_ > 0) {
    void* p = ::mmap(nullptr, m.size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      std::string why = os_reason();
      ::close(fd);
      throw Error("[" + std::string(component) + "] " + path + ": cannot mmap " +
                  std::to_string(m.size_) + " bytes: " + why);
    }
    m.data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file alive
  return m;
}

void MappedFile::reset() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

MappedFile::~MappedFile() { reset(); }

MappedFile::MappedFile(MappedFile&& o) noexcept
    : path_(std::move(o.path_)), data_(o.data_), size_(o.size_) {
  o.data_ = nullptr;
  o.size_ = 0;
}

MappedFile& MappedFile::operator=(MappedFile&& o) noexcept {
  if (this != &o) {
    reset();
    path_ = std::move(o.path_);
    data_ = o.data_;
    size_ = o.size_;
    o.data_ = nullptr;
    o.size_ = 0;
  }
  return *this;
}

AtomicFile::AtomicFile(std::string path, const char* component)
    : path_(std::move(path)), tmp_(path_ + ".tmp"), component_(component) {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot create " + tmp_ + ": " + os_reason());
  buf_.reserve(kBufferBytes);
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void AtomicFile::fail(const std::string& what) const {
  throw Error("[" + std::string(component_) + "] " + path_ + ": " + what +
              ". Hint: check free disk space and write permission on the directory");
}

void AtomicFile::flush() {
  const uint8_t* p = buf_.data();
  size_t left = buf_.size();
  while (left > 0) {
    ssize_t w = ::write(fd_, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail("write failed after " + std::to_string(offset_) + " bytes: " + os_reason());
    p += w;
    left -= size_t(w);
  }
  buf_.clear();
}

void AtomicFile::write(const void* p, size_t n) {
  CS_CHECK(fd_ >= 0) << "write after sync or commit to " << path_;
  const uint8_t* src = static_cast<const uint8_t*>(p);
  offset_ += n;
  if (buf_.size() + n <= kBufferBytes) {
    buf_.insert(buf_.end(), src, src + n);
    return;
  }
  flush();
  if (n < kBufferBytes) {
    buf_.insert(buf_.end(), src, src + n);
    return;
  }
  while (n > 0) {  // large payloads go straight to the file
    ssize_t w = ::write(fd_, src, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) fail("write failed: " + os_reason());
    src += w;
    n -= size_t(w);
  }
}

void AtomicFile::sync() {
  CS_CHECK(fd_ >= 0) << "sync after sync or commit on " << path_;
  flush();
  if (::fsync(fd_) != 0) fail("fsync of " + tmp_ + " failed: " + os_reason());
  int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) fail("close of " + tmp_ + " failed: " + os_reason());
}

// On any failure PATH.tmp stays until the destructor removes it.
void AtomicFile::commit() {
  CS_CHECK(!committed_) << "commit twice on " << path_;
  if (fd_ >= 0) sync();
  if (::rename(tmp_.c_str(), path_.c_str()) != 0)
    fail("rename from " + tmp_ + " failed: " + os_reason());
  committed_ = true;
  // Make the rename itself durable.
  std::string dir = std::filesystem::path(path_).parent_path().string();
  int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void write_file_atomic(const std::string& path, const std::string& text, const char* component) {
  AtomicFile f(path, component);
  f.write(text.data(), text.size());
  f.commit();
}

}  // namespace cs
