// Runs the chuanspeed binary as a user would and captures its exit status and stderr.
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <string>

namespace cs::test {

struct RunResult {
  int status;          // exit status (-1 when killed by a signal)
  std::string err;     // stderr
  std::string out;     // stdout
};

// TIMEOUT_S > 0 runs it under coreutils' timeout, with SIGKILL (a command may catch SIGTERM):
// a command that hangs ends with status 137.
inline RunResult run_binary(const std::string& args, int timeout_s = 0) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info ? info->name() : "none";
  for (char& ch : name)
    if (ch == '/') ch = '_';  // a parameterised test's name holds its instance: ".../rope"
  const std::string errf = ::testing::TempDir() + "/cs_stderr_" + std::to_string(getpid()) + "_" + name + ".txt";
  const std::string limit = timeout_s > 0 ? "timeout -s KILL " + std::to_string(timeout_s) + " " : "";
  const std::string cmd = limit + std::string(CS_BINARY) + " " + args + " 2>" + errf;
  RunResult r{-1, "", ""};
  FILE* p = popen(cmd.c_str(), "r");
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  if (FILE* f = std::fopen(errf.c_str(), "r")) {
    while ((n = fread(buf.data(), 1, buf.size(), f)) > 0) r.err.append(buf.data(), n);
    std::fclose(f);
  }
  return r;
}

// Lines of s that contain needle.
inline int count_matching_lines(const std::string& s, const std::string& needle) {
  int n = 0;
  size_t start = 0;
  while (start < s.size()) {
    size_t end = s.find('\n', start);
    if (end == std::string::npos) end = s.size();
    n += s.substr(start, end - start).find(needle) != std::string::npos;
    start = end + 1;
  }
  return n;
}

}  // namespace cs::test
