// Bad .bin checkpoints: each must throw cs::Error naming the file and the opcode, global, entry or
// tensor at fault, never run code and never crash. Real torch.save fixtures (malicious, DEFLATE,
// non-contiguous) plus hand-built archives and pickles (torch_zip_builder.h), truncations at every
// length and single-byte corruptions at every offset of a real checkpoint.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "checkpoint/hf_dir.h"
#include "checkpoint/torch_bin.h"
#include "torch_zip_builder.h"

namespace cs {
namespace {

namespace fs = std::filesystem;
using namespace testzip;
using testing::HasSubstr;
using namespace std::string_literals;

const std::string kFixtures = std::string(CS_SOURCE_DIR) + "/tests/fixtures/torch_bin/";

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

std::string open_error(const std::string& path) {
  return error_of([&] { TorchBinFile f(path); });
}

std::string temp_path(const std::string& name) {
  return (fs::path(testing::TempDir()) / ("cs_torch_bin_err_" + name)).string();
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), long(bytes.size()));
}

// A one-tensor archive "p/..." with PICKLE and a 24-byte storage "0".
std::string archive_with(const std::string& name, const std::string& pickle) {
  std::string path = temp_path(name + ".bin");
  EXPECT_TRUE(write_image(
      path, zip_image(torch_entries("p", pickle, {{"0", std::string(24, '\0')}}), false)));
  return path;
}

TEST(TorchBinErrors, ForeignGlobalIsRefusedBeforeAnythingRuns) {
  std::string path = kFixtures + "malicious.bin";  // GLOBAL os system; REDUCE
  std::string msg = open_error(path);
  EXPECT_THAT(msg, HasSubstr("[torch_pickle] " + path + ": malicious/data.pkl: byte 2: "));
  EXPECT_THAT(msg, HasSubstr("global 'os system' is not allowed"));
  EXPECT_THAT(msg, HasSubstr("Hint:"));

  // The same through STACK_GLOBAL (protocol 4), and other names an attacker might reach for.
  const std::pair<std::string, std::string> globals[] = {{"builtins", "eval"},
                                                         {"torch", "load"},
                                                         {"torch", "ComplexFloatStorage"},
                                                         {"torch._utils", "_rebuild_qtensor"},
                                                         {"collections", "defaultdict"}};
  for (const auto& [module, name] : globals) {
    PickleWriter w;
    w.op(0x80).op(2).global(module, name).op(')').op('R').op('.');
    EXPECT_THAT(open_error(archive_with("global", w.s)),
                HasSubstr("global '" + module + " " + name + "' is not allowed"));
  }
  PickleWriter w;
  w.op(0x80).op(4).op(0x8c).op(2).raw("os").op(0x8c).op(6).raw("system").op(0x93);
  EXPECT_THAT(open_error(archive_with("stack_global", w.s)),
              HasSubstr("global 'os system' is not allowed"));
}

TEST(TorchBinErrors, OpcodesTorchDoesNotEmitAreNamed) {
  const std::pair<std::string, std::string> cases[] = {
      {"i", "opcode INST (0x69)"},        {"o", "opcode OBJ (0x6f)"},
      {"\x81", "opcode NEWOBJ (0x81)"},   {"\x92", "opcode NEWOBJ_EX (0x92)"},
      {"G", "opcode BINFLOAT (0x47)"},    {"\x82", "opcode EXT1 (0x82)"},
      {"\xff", "opcode (unknown) (0xff)"}};
  for (const auto& [op, expect] : cases) {
    std::string msg = open_error(archive_with("opcode", "\x80\x02}" + op + "."));
    EXPECT_THAT(msg, HasSubstr("byte 3: " + expect + " is not one torch.save emits")) << expect;
  }
  // Calling an allowed global that is not a call torch makes.
  PickleWriter w;
  w.op(0x80).op(2).global("torch", "FloatStorage").op(')').op('R').op('.');
  EXPECT_THAT(open_error(archive_with("call_storage", w.s)),
              HasSubstr("call of global 'torch.FloatStorage' is not allowed"));
}

TEST(TorchBinErrors, MalformedPicklesAreCorrupt) {
  TensorSpec t{"w", {2, 3}, {3, 1}, "FloatStorage", "0", 6, 0};
  std::string good = state_dict_pickle({t});
  const std::pair<std::string, std::string> cases[] = {
      {good.substr(0, good.size() - 1), "pickle ends inside an opcode's argument"},
      {good.substr(0, 40), "GLOBAL argument has no terminating newline"},
      {good + "N", "bytes after STOP"},
      {"\x80\x02h\x05.", "memo key 5 was never stored"},
      {"\x80\x02R.", "stack underflow"},
      {"\x80\x09}.", "pickle protocol 9"},
      {"\x80\x02].", "top-level object is a list, expected a dict of tensors"},
      {"\x80\x02}X\x01\x00\x00\x00kK\x01s."s, "entry 'k' is a int, expected a tensor"},
      {"\x80\x02}(K\x01u.", "SETITEMS with an odd number of items"}};
  for (const auto& [pickle, expect] : cases) {
    std::string msg = open_error(archive_with("malformed", pickle));
    EXPECT_THAT(msg, HasSubstr("[torch_pickle] ")) << expect;
    EXPECT_THAT(msg, HasSubstr(expect));
  }
}

TEST(TorchBinErrors, TensorLayoutAgainstStorage) {
  auto check = [](const std::vector<TensorSpec>& ts, const std::string& expect) {
    std::string msg = open_error(archive_with("layout", state_dict_pickle(ts)));
    EXPECT_THAT(msg, HasSubstr("[torch_bin] " + temp_path("layout.bin") + ": ")) << expect;
    EXPECT_THAT(msg, HasSubstr(expect));
  };
  // The storage entry holds 24 bytes: 6 F32.
  check({{"w", {2, 4}, {4, 1}, "FloatStorage", "0", 6, 0}},
        "needs elements [0, 8) of storage p/data/0, which has 6");
  check({{"w", {2, 3}, {3, 1}, "FloatStorage", "0", 6, 1}}, "needs elements [1, 7)");
  check({{"w", {2}, {1}, "FloatStorage", "0", 6, 7}}, "needs elements [7, 9)");
  check({{"w", {2}, {1}, "FloatStorage", "0", 5, 0}},
        "has 24 bytes, expected 5 elements x 4 bytes");
  check({{"w", {2}, {1}, "HalfStorage", "0", 6, 0}}, "has 24 bytes, expected 6 elements x 2 bytes");
  check({{"w", {2}, {1}, "FloatStorage", "9", 6, 0}}, "storage entry p/data/9 is missing");
  check({{"w", {1, 1, 1, 2, 3}, {6, 6, 6, 3, 1}, "FloatStorage", "0", 6, 0}},
        "has 5 dims, expected at most 4");
  check({{"w", {2, 3}, {1, 2}, "FloatStorage", "0", 6, 0}},
        "'w' has stride (1, 2) for size (2, 3)");
  check({{"w", {2}, {1}, "FloatStorage", "0", 6, 0}, {"w", {2}, {1}, "FloatStorage", "0", 6, 0}},
        "'w' appears twice");
  // Size-1 dimensions may carry any stride, as in torch's is_contiguous.
  std::string ok = open_error(archive_with(
      "layout_ok", state_dict_pickle({{"w", {1, 6}, {99, 1}, "FloatStorage", "0", 6, 0}})));
  EXPECT_EQ(ok, "(no error)");
}

TEST(TorchBinErrors, NonContiguousTensorFromTorch) {
  std::string msg = open_error(kFixtures + "noncontig.bin");  // arange(6).reshape(2, 3).t()
  EXPECT_THAT(msg, HasSubstr("[torch_bin] " + kFixtures + "noncontig.bin"));
  EXPECT_THAT(msg, HasSubstr("tensor 't' has stride (1, 3) for size (3, 2)"));
  EXPECT_THAT(msg, HasSubstr("contiguous()"));
}

TEST(TorchBinErrors, DeflateEntryIsNamed) {
  std::string msg = open_error(kFixtures + "deflate.bin");
  EXPECT_THAT(msg, HasSubstr("[zip] " + kFixtures + "deflate.bin"));
  EXPECT_THAT(msg, HasSubstr("entry 'deflate/data.pkl' is compressed with DEFLATE (method 8)"));
  // An encrypted entry and an exotic method, hand-built.
  std::vector<ZipEntrySpec> e = {{"p/data.pkl", "x", 0, 12}};
  write_image(temp_path("bzip2.bin"), zip_image(e, false));
  EXPECT_THAT(open_error(temp_path("bzip2.bin")),
              HasSubstr("'p/data.pkl' is compressed with method 12"));
}

TEST(TorchBinErrors, NotATorchArchive) {
  write_image(temp_path("nopkl.bin"), zip_image({{"a/b.txt", "hello"}}, false));
  EXPECT_THAT(open_error(temp_path("nopkl.bin")), HasSubstr("no <folder>/data.pkl entry"));
  write_bytes(temp_path("legacy.bin"), "\x80\x02\x8a\x0a");
  EXPECT_THAT(open_error(temp_path("legacy.bin")),
              HasSubstr("legacy (PyTorch < 1.6) torch.save format"));
  write_bytes(temp_path("empty.bin"), "");
  EXPECT_THAT(open_error(temp_path("empty.bin")), HasSubstr("file too short: got 0 bytes"));
  EXPECT_THAT(open_error(temp_path("absent.bin")), HasSubstr("cannot open"));
}

TEST(TorchBinErrors, TruncatedAtEveryLength) {
  const std::string bytes = read_bytes(kFixtures + "tiny.bin");
  const std::string path = temp_path("truncated.bin");
  write_bytes(path, bytes);
  for (size_t n = bytes.size(); n-- > 0;) {  // shrink one file in place: fast on any filesystem
    ASSERT_EQ(::truncate(path.c_str(), off_t(n)), 0);
    std::string msg = open_error(path);
    ASSERT_THAT(msg, HasSubstr("[zip] " + path)) << "truncated to " << n << " bytes";
  }
  write_bytes(path, bytes.substr(0, bytes.size() / 2));
  EXPECT_THAT(open_error(path), HasSubstr("no zip end-of-central-directory record"));
}

// The central directory of tiny.bin: its offset is in the end record (a small archive).
uint64_t cd_offset_of(const std::string& b) {
  const uint8_t* e = reinterpret_cast<const uint8_t*>(b.data()) + b.size() - 22;
  return uint64_t(e[16]) | uint64_t(e[17]) << 8 | uint64_t(e[18]) << 16 | uint64_t(e[19]) << 24;
}

TEST(TorchBinErrors, BadCentralDirectory) {
  const std::string good = read_bytes(kFixtures + "tiny.bin");
  const uint64_t cd = cd_offset_of(good);
  const std::string path = temp_path("bad_cd.bin");
  auto with = [&](uint64_t at, const std::string& patch) {
    std::string b = good;
    b.replace(at, patch.size(), patch);
    write_bytes(path, b);
    return open_error(path);
  };
  EXPECT_THAT(with(cd, "XX"), HasSubstr("central directory record 0 at offset " +
                                        std::to_string(cd) + " is missing or has a bad signature"));
  EXPECT_THAT(with(cd + 42, std::string("\xff\xff\x00\x00", 4)),
              HasSubstr("no local header at offset 65535"));
  EXPECT_THAT(with(cd + 20, std::string("\x01\x00\x00\x00", 4)),
              HasSubstr("its stored size 1 differs"));
  EXPECT_THAT(with(cd + 8, std::string("\x01\x00", 2)), HasSubstr("'tiny/data.pkl' is encrypted"));
  EXPECT_THAT(with(cd + 46, "X"), HasSubstr("local header names another entry"));
  // ZIP64 end record: entry count larger than the directory can hold.
  const uint64_t end64 = good.size() - 22 - 20 - 56;
  EXPECT_THAT(with(end64 + 32, std::string("\x09\x00", 2)), HasSubstr("disagree"));
  EXPECT_THAT(with(end64, "XXXX"), HasSubstr("no ZIP64 end record at offset"));
}

// Every single-byte corruption of a real checkpoint opens or throws cs::Error; none crashes or
// reads out of bounds (run under -fsanitize=address,undefined to see the second).
TEST(TorchBinErrors, EveryByteFlippedOpensOrThrows) {
  const std::string good = read_bytes(kFixtures + "tiny.bin");
  const std::string path = temp_path("flip.bin");
  write_bytes(path, good);
  int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  int refused = 0;
  for (size_t i = 0; i < good.size(); ++i) {  // flip byte i in place, open, restore it
    const char bad = char(~uint8_t(good[i]));
    ASSERT_EQ(::pwrite(fd, &bad, 1, off_t(i)), 1);
    refused += open_error(path) != "(no error)";
    ASSERT_EQ(::pwrite(fd, &good[i], 1, off_t(i)), 1);
  }
  ::close(fd);
  EXPECT_GT(refused, 0);
}

TEST(TorchBinErrors, HfDirectoryOfBinShards) {
  const std::string dir = temp_path("hf_dir");
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(kFixtures + "sharded")) fs::copy(e.path(), dir);
  EXPECT_EQ(error_of([&] { HfWeights w(dir); }), "(no error)");
  fs::remove(dir + "/pytorch_model-00002-of-00002.bin");
  std::string msg = error_of([&] { HfWeights w(dir); });
  EXPECT_THAT(msg,
              HasSubstr("shard pytorch_model-00002-of-00002.bin (holding tensor 'c') not found"));
  fs::remove(dir + "/pytorch_model.bin.index.json");
  msg = error_of([&] { HfWeights w(dir); });
  EXPECT_THAT(msg, HasSubstr("found pytorch_model-00001-of-00002.bin"));
  EXPECT_THAT(msg,
              HasSubstr("needs its model.safetensors.index.json or pytorch_model.bin.index.json"));
  fs::copy(kFixtures + "malicious.bin", dir + "/pytorch_model.bin");
  msg = error_of([&] { HfWeights w(dir); });
  EXPECT_THAT(msg, HasSubstr("global 'os system' is not allowed"));
}

}  // namespace
}  // namespace cs
