// Errors: cs::Error for user/config/IO failures (one line, caught in main, exit 1 or 2), and
// CS_CHECK for bugs (abort with file:line, the expression and context). Never used for control flow.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace cs {

// A user-facing failure: "[component] what failed: got X, expected Y. Hint: Z".
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg, int exit_code = 1)
      : std::runtime_error(msg), exit_code_(exit_code) {}
  int exit_code() const { return exit_code_; }

 private:
  int exit_code_;
};

// A usage error (bad flag or value): exit status 2.
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& msg) : Error(msg, 2) {}
};

namespace detail {
// Collects the streamed context of a failed CS_CHECK, then aborts in its destructor.
class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* expr);
  [[noreturn]] ~CheckFailure();
  std::ostream& stream() { return os_; }

 private:
  std::ostringstream os_;
};
}  // namespace detail

}  // namespace cs

#define CS_CHECK(cond) \
  if (cond) {          \
  } else               \
    ::cs::detail::CheckFailure(__FILE__, __LINE__, #cond).stream()

#ifdef NDEBUG
#define CS_DCHECK(cond) \
  if (true) {           \
  } else                \
    ::cs::detail::CheckFailure(__FILE__, __LINE__, #cond).stream()
#else
#define CS_DCHECK(cond) CS_CHECK(cond)
#endif
