// The emulation's launcher itself (launch.h): every thread of every block runs, with its own
// thread-local indices; a barrier holds every thread until all arrive; a barrier some threads never
// reach is reported as a deadlock; and a thread that overflows its fiber's stack faults on the
// guard page below it instead of writing over the next fiber's frames.
#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "cuda_emu/launch.h"

namespace {

TEST(LaunchEmulated, EveryThreadOfEveryBlockRunsWithItsIndices) {
  std::vector<int> seen(3 * 2 * 64, 0);
  emu::launch(3, 2, 64, 0, [&] {
    const unsigned b = blockIdx.y * gridDim.x + blockIdx.x;
    ++seen[b * blockDim.x + threadIdx.x];
  });
  for (size_t i = 0; i < seen.size(); ++i) EXPECT_EQ(seen[i], 1) << "thread " << i;
}

TEST(LaunchEmulated, ABarrierHoldsEveryThreadUntilAllArrive) {
  // Each thread writes its slot, waits, then reads its neighbour's: without the barrier's hold a
  // thread run first would read a slot not yet written.
  std::vector<int> slot(128, -1), read(128, -2);
  emu::launch(1, 1, 128, 0, [&] {
    const int t = int(threadIdx.x);
    slot[size_t(t)] = t;
    __syncthreads();
    read[size_t(t)] = slot[size_t((t + 1) % 128)];
  });
  for (int t = 0; t < 128; ++t) EXPECT_EQ(read[size_t(t)], (t + 1) % 128);
}

TEST(LaunchEmulatedDeathTest, ABarrierSomeThreadsNeverReachIsADeadlock) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(emu::launch(1, 1, 64, 0, [] {
                 if (threadIdx.x != 5) __syncthreads();
               }),
               "deadlock: block \\(0, 0\\) has threads waiting at a barrier");
}

// Each frame touches its own bytes, so an overflow walks down page by page as a deep recursion
// in a kernel would.
__attribute__((noinline)) int deep(int n) {
  volatile char frame[1024];
  frame[0] = char(n);
  frame[1023] = char(n);
  return n == 0 ? frame[0] : deep(n - 1) + frame[1023];
}

TEST(LaunchEmulatedDeathTest, AStackOverflowFaultsOnTheGuardPage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::atomic<int> sink{0};
  // 64 KiB deep fits the fiber's 252 KiB; 300 KiB runs off its bottom, into the stack below it
  // (thread 2's): only the guard page between them faults.
  emu::launch(1, 1, 4, 0, [&] { sink += deep(64); });
  EXPECT_DEATH(emu::launch(1, 1, 4, 0, [&] { sink += threadIdx.x == 3 ? deep(300) : 0; }), "");
}

}  // namespace
