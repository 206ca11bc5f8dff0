// What the saved-model tests share.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "tests/spec/spec_test.h"  // example_spec, error_of, usage_error

namespace mz::test {

// A fresh directory name in the scratch directory (not created).
inline std::string fresh_dir(const std::string& name) {
  const std::string dir = temp_path(name);
  std::filesystem::remove_all(dir);
  return dir;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}
inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

inline nlohmann::json read_config(const std::string& dir) { return nlohmann::json::parse(read_text(dir + "/config.json")); }
inline void write_config(const std::string& dir, const nlohmann::json& config) {
  write_text(dir + "/config.json", config.dump(1));
}

// "" when both hold the same keys, in the same order, with the same dtypes, shapes and bits; else the first
// difference.
inline std::string bit_difference(const TensorDict& got, const TensorDict& want) {
  if (got.keys() != want.keys()) return "the keys differ";
  for (const auto& item : want) {
    const torch::Tensor& g = got.at(item.key());
    const torch::Tensor& w = item.value();
    if (g.scalar_type() != w.scalar_type() || g.sizes() != w.sizes()) return item.key() + ": dtype or shape";
    // bytes, not values: NaN, -0.0 and every bit count
    const torch::Tensor gb = g.contiguous().reshape({-1}).view(torch::kUInt8);
    const torch::Tensor wb = w.contiguous().reshape({-1}).view(torch::kUInt8);
    if (!torch::equal(gb, wb)) return item.key() + ": values";
  }
  return "";
}

}  // namespace mz::test
