// The main of every MPI test binary (tests/*/mpi_*_test.cpp): started by mpiexec, every rank runs
// every test in the same order; rank 0 prints gtest's report, the other ranks only their failed
// assertions, prefixed with the rank. Not runnable without a launcher. Invariant: the process of
// every rank exits non-zero when any rank failed a test (the ranks agree through the world group).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>

#include "backend/backend.h"
#include "parallel/mpi_group.h"

namespace {

// Prints each failed assertion of this rank as "[rank r] Suite.Test file:line: message".
class RankFailurePrinter : public testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank) : rank_(rank) {}
  // The name is kept here: UnitTest::current_test_info() takes the lock gtest holds while it
  // reports a result, so calling it from OnTestPartResult deadlocks.
  void OnTestStart(const testing::TestInfo& t) override {
    test_ = std::string(t.test_suite_name()) + "." + t.name();
  }
  void OnTestPartResult(const testing::TestPartResult& r) override {
    if (!r.failed()) return;
    std::string message = r.message();
    std::replace(message.begin(), message.end(), '\n', ' ');
    std::fprintf(stderr, "[rank %d] %s %s:%d: %s\n", rank_, test_.c_str(), r.file_name() ? r.file_name() : "?",
                 r.line_number(), message.c_str());
    std::fflush(stderr);
  }

 private:
  int rank_;
  std::string test_;
};

}  // namespace

int main(int argc, char** argv) {
  try {
    if (!cs::mpi_init_if_launched(&argc, &argv)) {
      std::fprintf(stderr, "[mpi test] %s is an MPI test: run it under mpiexec (ctest -L parallel does)\n", argv[0]);
      return 1;
    }
    testing::InitGoogleTest(&argc, argv);
    auto world = cs::MpiGroup::world(60);
    if (world->rank() != 0) {
      testing::TestEventListeners& listeners = testing::UnitTest::GetInstance()->listeners();
      delete listeners.Release(listeners.default_result_printer());
      listeners.Append(new RankFailurePrinter(world->rank()));
    }
    double failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
    auto ctx = cs::cpu_backend().make_context();
    world->all_reduce_sum(*ctx, cs::Tensor(&failed, {1}, cs::DType::F64));
    if (world->rank() == 0 && failed > 0)
      std::fprintf(stderr, "[mpi test] %g of %d ranks failed a test\n", failed, world->size());
    world.reset();
    cs::mpi_finalize();
    return failed > 0 ? 1 : 0;
  } catch (const cs::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    cs::mpi_abort(1);
  }
}
