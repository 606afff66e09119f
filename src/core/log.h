// Logging to stderr with a component tag; info lines can be silenced with CS_LOG_QUIET=1.
#pragma once
#include <fmt/core.h>

#include <cstdio>

namespace cs {

bool log_quiet();

template <typename... Args>
void log_info(fmt::format_string<Args...> f, Args&&... args) {
  if (log_quiet()) return;
  std::fputs((fmt::format(f, std::forward<Args>(args)...) + "\n").c_str(), stderr);
}

template <typename... Args>
void log_warn(fmt::format_string<Args...> f, Args&&... args) {
  std::fputs(("warning: " + fmt::format(f, std::forward<Args>(args)...) + "\n").c_str(), stderr);
}

}  // namespace cs
