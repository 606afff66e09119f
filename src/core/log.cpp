#include "core/log.h"

#include <cstdlib>
#include <cstring>

namespace cs {

bool log_quiet() {
  static const bool quiet = [] {
    const char* v = std::getenv("CS_LOG_QUIET");
    return v && std::strcmp(v, "0") != 0;
  }();
  return quiet;
}

}  // namespace cs
