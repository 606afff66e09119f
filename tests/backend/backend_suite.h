// The op-test fixtures shared by the backend test files: one suite instance per backend this
// build has (test_backends()), optionally crossed with an input scale; the gradient closeness rule.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "backend/host_copy.h"
#include "backend/op_check.h"
#include "backend/test_util.h"
#include "closeness.h"
#include "ref/ops_ref.h"
#include "tolerances.h"

namespace cs::test {


inline ::testing::AssertionResult grad_close(const std::vector<float>& got,
                                      const std::vector<double>& want, const std::string& what) {
  return all_close(got, want, tol::kGradAtolScale * std::max(1.0, test::max_abs(want)),
                   tol::kGradRtol, what);
}

// An op test on one backend (the parameter: its --device name).
class OnBackend : public ::testing::TestWithParam<std::string> {
 protected:
  OnDevice dev{GetParam()};
  CS_SKIP_WITHOUT_DEVICE()
  Ctx& ctx() { return dev.ctx(); }
  const Ops& ops() { return dev.ops(); }
};

// An op test on one backend with inputs at one scale.
class Scaled : public ::testing::TestWithParam<std::tuple<std::string, double>> {
 protected:
  OnDevice dev{std::get<0>(GetParam())};
  CS_SKIP_WITHOUT_DEVICE()
  double scale() const { return std::get<1>(GetParam()); }
  Ctx& ctx() { return dev.ctx(); }
  const Ops& ops() { return dev.ops(); }
};

#define CS_BACKEND_SUITE(Suite)                                          \
  class Suite : public ::cs::test::OnBackend {};                          \
  INSTANTIATE_TEST_SUITE_P(Backends, Suite,                               \
                           ::testing::ValuesIn(::cs::test::test_backends()), \
                           ::cs::test::backend_param_name)


}  // namespace cs::test
