#include "core/error.h"

#include <cstdio>
#include <cstdlib>

namespace cs::detail {

CheckFailure::CheckFailure(const char* file, int line, const char* expr) {
  os_ << file << ":" << line << ": check failed: " << expr << " ";
}

CheckFailure::~CheckFailure() {
  std::fprintf(stderr, "%s\n", os_.str().c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace cs::detail
