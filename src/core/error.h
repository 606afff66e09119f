// Errors: cs::Error for user/config/IO failures (one line, caught in main, exit 1 or 2), and
// CS_CHECK for bugs: it throws cs::InternalError with file:line, the expression and context, which
// main reports as an internal error (exit 70) and a test reports as that one test's failure (an
// abort would end the whole test binary). Never used for control flow.
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

// Mixed into an error that says a --split range holds no sample: the trainer leaves such a test
// split out silently (Megatron builds no dataset for an empty range); other errors it reports.
struct EmptySplit {};
template <class Base>
class EmptySplitError : public Base, public EmptySplit {
 public:
  using Base::Base;
};

// A failed CS_CHECK: a bug in ChuanSpeed, not bad input. Deliberately not a cs::Error, so that
// code which turns a cs::Error into a message about a file or flag never mistakes a bug for one.
class InternalError : public std::logic_error {
 public:
  explicit InternalError(const std::string& msg) : std::logic_error(msg) {}
};

namespace detail {
// Collects the streamed context of a failed CS_CHECK, then throws InternalError from its
// destructor (aborts instead when another exception is already unwinding the stack).
class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* expr);
  [[noreturn]] ~CheckFailure() noexcept(false);
  std::ostream& stream() { return os_; }

 private:
  std::ostringstream os_;
  int uncaught_;
};
}  // namespace detail

}  // namespace cs

#define CS_CHECK(cond) \
  if (cond) {          \
  } else               \
    ::cs::detail::CheckFailure(__FILE__, __LINE__, #cond).stream()

// On in debug builds and in the sanitizer build (CS_DCHECKS), whatever its optimisation level.
#if defined(NDEBUG) && !defined(CS_DCHECKS)
#define CS_DCHECK(cond) \
  if (true) {           \
  } else                \
    ::cs::detail::CheckFailure(__FILE__, __LINE__, #cond).stream()
#else
#define CS_DCHECK(cond) CS_CHECK(cond)
#endif
