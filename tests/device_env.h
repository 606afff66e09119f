// A backend and an execution context for tests that run the model or the trainer: the CPU
// backend unless CS_TEST_DEVICE names another (cuda), so the same tests run on a GPU machine.
#pragma once
#include <cstdlib>
#include <memory>
#include <string>

#include "backend/backend.h"

namespace cs::test {

struct DeviceEnv {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<Ctx> ctx;
  DeviceEnv() {
    const char* d = std::getenv("CS_TEST_DEVICE");
    backend = make_backend(d && *d ? d : "cpu");
    ctx = backend->make_context();
  }
  Ctx& operator*() { return *ctx; }
};

}  // namespace cs::test

namespace cs::test {

// The CPU backend's shared context, for tests that read tensors on the host directly (CPU memory
// is host memory).
inline Ctx& cpu_ctx() {
  static std::unique_ptr<Ctx> c = cpu_backend().make_context();
  return *c;
}

}  // namespace cs::test
