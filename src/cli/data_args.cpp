#include "cli/data_args.h"

#include <fmt/core.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/file_io.h"

namespace cs::cli {

namespace {
std::string read_text(const std::string& path, const char* flag, const char* what) {
  require_regular_file(path, "train", what);
  std::ifstream f(path);
  if (!f) throw Error(fmt::format("[train] {} {}: cannot open it", flag, path));
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}
}  // namespace

std::vector<std::string> read_data_args(const std::string& path) {
  std::vector<std::string> out = words(read_text(path, "--data-args-path", "--data-args-path takes a text file"));
  if (out.empty())
    throw Error(fmt::format("[train] --data-args-path {}: empty; expected what --data-path takes (PREFIX, or "
                            "W1 PREFIX1 W2 PREFIX2 ...)", path));
  return out;
}

std::array<std::vector<std::string>, 3> read_per_split_data_args(const std::string& path) {
  const nlohmann::json j = nlohmann::json::parse(
      read_text(path, "--per-split-data-args-path", "--per-split-data-args-path takes a JSON file"), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw Error(fmt::format("[train] --per-split-data-args-path {}: not a JSON object; expected "
                            "{{\"train\": ..., \"valid\": ..., \"test\": ...}}", path));
  std::array<std::vector<std::string>, 3> out;
  static const char* kKeys[] = {"train", "valid", "test"};
  for (size_t i = 0; i < 3; ++i) {
    if (!j.contains(kKeys[i]))  // Megatron reads all three keys
      throw Error(fmt::format("[train] --per-split-data-args-path {}: no \"{}\" key; expected the keys train, valid "
                              "and test (null for a split without data)", path, kKeys[i]));
    const nlohmann::json& v = j.at(kKeys[i]);
    if (v.is_string()) {
      out[i] = words(v.get<std::string>());
    } else if (v.is_array()) {
      for (const nlohmann::json& e : v) {
        if (!e.is_string() && !e.is_number())
          throw Error(fmt::format("[train] --per-split-data-args-path {}: \"{}\" holds {}; expected prefixes "
                                  "(strings) and weights (numbers or strings)", path, kKeys[i], e.dump()));
        out[i].push_back(e.is_string() ? e.get<std::string>() : e.dump());
      }
    } else if (!v.is_null()) {
      throw Error(fmt::format("[train] --per-split-data-args-path {}: \"{}\" is {}; expected a string, a list or "
                              "null", path, kKeys[i], v.type_name()));
    }
  }
  return out;
}

}  // namespace cs::cli
