// Checked size arithmetic: int64 sums and products of sizes that come from files and flags
// (config.json, meta.json, --seq-length, dataset headers). Signed overflow is undefined
// behaviour, and a wrapped size is worse than none (one config made the parameter buffer 64
// bytes for 4.6e18 parameters), so every such size is computed here and an overflow is a
// cs::Error naming the quantity. Not for hot loops: sizes, once, before anything is allocated.
#pragma once
#include <cstdint>
#include <string>

#include "core/error.h"

namespace cs {

// Thrown when a size does not fit int64: "WHAT: A x B overflows ...". The exit status follows the
// caller (2, a UsageError, when WHAT comes from flags; 1 from a file).
[[noreturn]] inline void throw_size_overflow(const char* what, int64_t a, int64_t b, char op, int exit_code) {
  const std::string msg = std::string(what) + ": " + std::to_string(a) + " " + op + " " + std::to_string(b) +
                          " overflows a 64-bit count; expected sizes that a machine can hold";
  if (exit_code == 2) throw UsageError(msg);
  throw Error(msg, exit_code);
}

// a * b, or a cs::Error (exit status EXIT_CODE) naming WHAT when it does not fit int64.
inline int64_t checked_mul(int64_t a, int64_t b, const char* what, int exit_code = 1) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw_size_overflow(what, a, b, 'x', exit_code);
  return r;
}

// a + b, or a cs::Error (exit status EXIT_CODE) naming WHAT when it does not fit int64.
inline int64_t checked_add(int64_t a, int64_t b, const char* what, int exit_code = 1) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) throw_size_overflow(what, a, b, '+', exit_code);
  return r;
}

}  // namespace cs
