// The pickle reader's Checkpoint mode (parse_torch_checkpoint): a training checkpoint's dict read
// as data, flattened to dotted paths. Objects of any class (argparse.Namespace, numpy arrays,
// enums) become their BUILD attributes or a name, never a call; the data-only opcodes such files
// hold are read exactly; and a hostile pickle (nesting, self-reference) ends in one error or a
// bounded walk. Real Megatron files: tests/train/megatron_checkpoint_test.cpp.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "checkpoint/torch_pickle.h"
#include "core/error.h"
#include "torch_zip_builder.h"

namespace cs {
namespace {
using ::testing::HasSubstr;
using testzip::PickleWriter;
using testzip::TensorSpec;
using K = TorchScalar::Kind;

TorchObject parse(const std::string& p, const TorchObjectLimits& limits = {}) {
  return parse_torch_checkpoint(reinterpret_cast<const uint8_t*>(p.data()), p.size(), "test.pkl", limits);
}

std::string error_of(const std::string& p, const TorchObjectLimits& limits = {}) {
  try {
    parse(p, limits);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// BINFLOAT's big-endian double.
PickleWriter& binfloat(PickleWriter& w, double x) {
  uint64_t b;
  std::memcpy(&b, &x, 8);
  w.op('G');
  for (int k = 7; k >= 0; --k) w.op(uint8_t(b >> (8 * k)));
  return w;
}

TEST(TorchCheckpointPickle, MegatronsDictIsReadAsData) {
  PickleWriter w;
  w.op(0x80).op(2).op('}').op('(');
  // 'args': argparse.Namespace() (NEWOBJ) with its attributes (BUILD), a dtype global among them.
  w.str("args").global("argparse", "Namespace").op(')').op(0x81).op('}').op('(');
  w.str("num_layers").integer(32).str("lr");
  binfloat(w, 1.5e-4).str("params_dtype").global("torch", "bfloat16");
  w.str("swiglu").op(0x88).str("data_path").op(']').op('(').str("a").str("b").op('e');
  w.str("load").op('N').op('u').op('b');
  w.str("checkpoint_version");
  binfloat(w, 3.0);
  // 'model': an OrderedDict of a tensor, under a nested dict as the legacy models save it.
  w.str("model").op('}').str("language_model").global("collections", "OrderedDict").op(')').op('R');
  w.str("w").tensor(TensorSpec{"", {2, 3}, {3, 1}, "BFloat16Storage", "0", 6, 0}).op('s').op('s');
  // 'rng_state': [ {numpy state: ('MT19937', ndarray, 624), random: (3, (words...), None)} ].
  w.str("rng_state").op(']').op('}').str("np").str("MT19937");
  w.global("numpy.core.multiarray", "_reconstruct").global("numpy", "ndarray").integer(0).op(0x85);
  w.op('C').op(1).raw("b").op(0x87).op('R');  // _reconstruct(ndarray, (0,), b'b')
  w.op('(').integer(1).op('(').integer(624).op('t').op('N').op(0x89).op('C').op(3).raw("xyz").op('t').op('b');
  w.integer(624).op(0x87).op('s');
  w.str("random").integer(3).op('(').op(0x8a).op(5).raw(std::string("\x01\x00\x00\x80\x00", 5)).op('t').op('N');
  w.op(0x87).op('s').op('a');
  // An enum (REDUCE of its class), a big int, a set, DUP/POP.
  w.str("mask").global("megatron.core.transformer.enums", "AttnMaskType").op('(').integer(1).op('t').op('R');
  w.str("big").op(0x8b);
  testzip::put(w.s, 9, 4);
  w.raw(std::string(9, '\x7f'));
  w.str("set").op(0x8f).op('(').integer(7).op(0x90);
  w.str("dup").integer(5).op('2').op('0');
  w.op('u').op('.');
  const TorchObject o = parse(w.s);
  ASSERT_EQ(o.tensors.size(), 1u);
  EXPECT_EQ(o.tensors[0].name, "model.language_model.w");
  EXPECT_EQ(o.tensors[0].dtype, DType::BF16);
  const auto at = [&](const std::string& k) -> const TorchScalar& {
    auto it = o.scalars.find(k);
    EXPECT_NE(it, o.scalars.end()) << k;
    static const TorchScalar none;
    return it == o.scalars.end() ? none : it->second;
  };
  EXPECT_EQ(at("args").s, "argparse.Namespace");  // the object itself: what made it
  EXPECT_EQ(at("args.num_layers").kind, K::Int);
  EXPECT_EQ(at("args.num_layers").i, 32);
  EXPECT_EQ(at("args.lr").kind, K::Float);
  EXPECT_EQ(at("args.lr").f, 1.5e-4);
  EXPECT_EQ(at("args.params_dtype").kind, K::Other);
  EXPECT_EQ(at("args.params_dtype").s, "torch.bfloat16");
  EXPECT_EQ(at("args.swiglu").kind, K::Bool);
  EXPECT_EQ(at("args.data_path.1").s, "b");
  EXPECT_EQ(at("args.load").kind, K::None);
  EXPECT_EQ(at("checkpoint_version").f, 3.0);
  EXPECT_EQ(at("rng_state.0.np.0").s, "MT19937");
  EXPECT_EQ(at("rng_state.0.np.1").s, "numpy.core.multiarray._reconstruct");  // what made it
  EXPECT_EQ(at("rng_state.0.np.2").i, 624);
  EXPECT_EQ(at("rng_state.0.random.0").i, 3);
  EXPECT_EQ(at("rng_state.0.random.1.0").i, 0x80000001);  // LONG1 of 5 bytes
  EXPECT_EQ(at("mask").s, "megatron.core.transformer.enums.AttnMaskType");
  EXPECT_EQ(at("mask.__args__.0").i, 1);  // the enum member's value
  EXPECT_EQ(at("big").s, "big int");
  EXPECT_EQ(at("set.0").i, 7);
  EXPECT_EQ(at("dup").i, 5);
}

TEST(TorchCheckpointPickle, TheStateDictModeStillRefusesWhatItRefused) {
  // The same Namespace as a state dict: refused by its global, as before.
  PickleWriter w;
  w.op(0x80).op(2).global("argparse", "Namespace").op(')').op(0x81).op('.');
  const std::string p = w.s;
  try {
    parse_torch_pickle(reinterpret_cast<const uint8_t*>(p.data()), p.size(), "sd.pkl");
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("global 'argparse Namespace' is not allowed"));
  }
}

TEST(TorchCheckpointPickle, HostilePicklesEndInOneError) {
  // Nesting beyond any checkpoint's: [[[[...]]]] 100 deep.
  PickleWriter deep;
  deep.op(0x80).op(2).op('}').str("x");
  for (int k = 0; k < 100; ++k) deep.op(']');
  for (int k = 0; k < 99; ++k) deep.op('a');
  deep.op('s').op('.');
  // APPEND pops the inner list into the outer one: the chain is 100 levels deep.
  EXPECT_THAT(error_of(deep.s), HasSubstr("nests more than 64 levels deep"));
  // A list that contains itself (DUP, APPEND): walked once.
  PickleWriter self;
  self.op(0x80).op(2).op('}').str("x").op(']').op('2').op('a').op('s').op('.');
  EXPECT_EQ(error_of(self.s), "");
  // A call of something that is not a global; a NEWOBJ whose arguments are not a tuple.
  EXPECT_THAT(error_of("\x80\x02}K\x01)R."), HasSubstr("REDUCE of a int, expected a global"));
  PickleWriter bad;
  bad.op(0x80).op(2).global("argparse", "Namespace").integer(1).op(0x81).op('.');
  EXPECT_THAT(error_of(bad.s), HasSubstr("NEWOBJ arguments are not a tuple"));
  // The root must be a dict; a DICT of an odd count; bytes longer than the pickle.
  EXPECT_THAT(error_of("\x80\x02]."), HasSubstr("top-level object is a list, expected a dict"));
  EXPECT_THAT(error_of("\x80\x02(K\x01\x64."), HasSubstr("DICT with an odd number of items"));
  EXPECT_THAT(error_of(std::string("\x80\x02}B\xff\xff\xff\x00.", 9)), HasSubstr("pickle ends inside an opcode's argument"));
  // More leaves, or more bytes of their names, than the limits: a long key over many entries
  // would otherwise ask for its length times their count.
  PickleWriter wide;
  wide.op(0x80).op(2).op('}').str(std::string(1000, 'k')).op('}').op('(');
  for (int k = 0; k < 100; ++k) wide.integer(k).op('N');
  wide.op('u').op('s').op('.');
  EXPECT_EQ(parse(wide.s).scalars.size(), 100u);
  EXPECT_THAT(error_of(wide.s, {1000, 50'000}), HasSubstr("more than 1000 values or 50000 bytes of their names"));
  EXPECT_THAT(error_of(wide.s, {50, 1 << 20}), HasSubstr("more than 50 values"));
}

}  // namespace
}  // namespace cs
