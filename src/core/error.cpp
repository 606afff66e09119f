#include "core/error.h"

#include <cstdio>
#include <cstdlib>
#include <exception>

namespace cs::detail {

CheckFailure::CheckFailure(const char* file, int line, const char* expr)
    : uncaught_(std::uncaught_exceptions()) {
  os_ << file << ":" << line << ": check failed: " << expr << " ";
}

CheckFailure::~CheckFailure() noexcept(false) {
  std::string msg = os_.str();
  while (!msg.empty() && msg.back() == ' ') msg.pop_back();
  // Throwing while another exception unwinds would call std::terminate without the message.
  if (std::uncaught_exceptions() > uncaught_) {
    std::fprintf(stderr, "%s\n", msg.c_str());
    std::fflush(stderr);
    std::abort();
  }
  throw InternalError(msg);
}

}  // namespace cs::detail
