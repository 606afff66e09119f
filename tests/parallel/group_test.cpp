// The single-process Group: every collective of the interface on device tensors (a reduction or a
// broadcast leaves data as it is, a gather or scatter copies), send/recv in first-in first-out
// order with a recv that has no send an error instead of a hang, split by colour.
#include <gtest/gtest.h>

#include <vector>

#include "backend/device_buffer.h"
#include "backend/host_copy.h"
#include "device_env.h"
#include "parallel/group.h"

namespace cs {
namespace {

struct Fixture {
  test::DeviceEnv env;
  DeviceBuffer mem{*env.backend, 1024};
  Tensor upload(const std::vector<float>& v, size_t at_bytes) {
    Tensor t = mem.tensor({int64_t(v.size())}, DType::F32, at_bytes);
    env.backend->upload(*env, v.data(), t);
    return t;
  }
};

TEST(SingleGroup, CollectivesOnTensors) {
  Fixture f;
  SingleGroup g("dp");
  EXPECT_EQ(g.size(), 1);
  EXPECT_EQ(g.rank(), 0);
  const std::vector<float> a = {1, -2, 3.5f}, b = {7, 8, 9};
  Tensor x = f.upload(a, 0), y = f.upload(b, 64);
  g.all_reduce_sum(*f.env, x);
  EXPECT_EQ(read_f32(*f.env, x), a);
  g.broadcast(*f.env, x, 0);
  EXPECT_EQ(read_f32(*f.env, x), a);
  g.all_gather(*f.env, x, y);
  EXPECT_EQ(read_f32(*f.env, y), a);
  Tensor z = f.upload(b, 128);
  g.reduce_scatter_sum(*f.env, z, x);
  EXPECT_EQ(read_f32(*f.env, x), b);
  g.barrier(*f.env);
  EXPECT_THROW(g.broadcast(*f.env, x, 1), Error);  // no rank 1 in a group of one
  Tensor ids = f.mem.tensor({2}, DType::I32, 192);
  EXPECT_THROW(g.all_reduce_sum(*f.env, ids), Error);  // sums are of floats
}

TEST(SingleGroup, SendRecvIsFirstInFirstOutAndARecvWithoutASendIsAnError) {
  Fixture f;
  SingleGroup g("pp");
  Tensor a = f.upload({1, 2}, 0), b = f.upload({3, 4}, 64), out = f.upload({0, 0}, 128);
  g.send(*f.env, a, 0);
  g.send(*f.env, b, 0);
  g.recv(*f.env, out, 0);
  EXPECT_EQ(read_f32(*f.env, out), (std::vector<float>{1, 2}));
  g.recv(*f.env, out, 0);
  EXPECT_EQ(read_f32(*f.env, out), (std::vector<float>{3, 4}));
  try {
    g.recv(*f.env, out, 0);
    FAIL() << "a recv without a send returned";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[recv] group pp"), std::string::npos) << e.what();
  }
  g.send(*f.env, a, 0);
  EXPECT_THROW(g.recv(*f.env, f.mem.tensor({3}, DType::F32, 192), 0), Error);  // size mismatch
  EXPECT_THROW(g.send(*f.env, a, 2), Error);
}

TEST(SingleGroup, SplitGivesAGroupOfOneNamedByColour) {
  SingleGroup world("world");
  auto tp = world.split(3, 0);
  EXPECT_EQ(tp->size(), 1);
  EXPECT_EQ(tp->rank(), 0);
  EXPECT_EQ(tp->name(), "world/3");
}

}  // namespace
}  // namespace cs
