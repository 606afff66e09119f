// Megatron-core's --data-args-path and --per-split-data-args-path: the data flags' values read from
// a file, for blends of more prefixes than a command line holds. --data-args-path FILE holds what
// --data-path takes (PREFIX, or W1 PREFIX1 W2 PREFIX2 ..., split at whitespace);
// --per-split-data-args-path FILE is a JSON object with the keys "train", "valid" and "test", each
// what --train-data-path / --valid-data-path / --test-data-path take, as one string or a list of
// strings and numbers (null: no such split). Errors name the file and the key (cs::Error).
#pragma once
#include <array>
#include <string>
#include <vector>

namespace cs::cli {

std::vector<std::string> read_data_args(const std::string& path);
std::array<std::vector<std::string>, 3> read_per_split_data_args(const std::string& path);

}  // namespace cs::cli
