#include "core/timer.h"

#include <sys/resource.h>

namespace cs {

long peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss * 1024L;  // Linux reports kilobytes
}

}  // namespace cs
