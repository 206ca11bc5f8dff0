// libFuzzer target: spec resolution (mz::spec::resolve: _base_ files and registered specs, overrides, ${}
// references) on arbitrary JSON. The input is the spec, optionally followed by a line "%%" and one override
// per line. Resolution either throws mz::UsageError or gives an object that resolves to itself again.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "harness.h"
#include "modelzoo/spec.h"

namespace {
// A folder with two spec files for "_base_" to find, and one registered spec.
const std::string& spec_dir() {
  static const std::string dir = [] {
    const std::filesystem::path d = mz_fuzz::temp_path("spec");
    std::filesystem::create_directories(d / "nested");
    std::ofstream(d / "base.json") << R"({"_target_": "resnet18", "num_classes": 10, "head": {"dim": "${num_classes}"}})";
    std::ofstream(d / "nested" / "child.json") << R"({"_base_": "../base.json", "num_classes": 3})";
    mz::spec::register_spec("registered", nlohmann::json::parse(R"({"_base_": "base.json", "x": [1, "${num_classes}"]})"));
    return d.string();
  }();
  return dir;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  const std::size_t split = input.find("\n%%\n");
  const nlohmann::json spec = nlohmann::json::parse(input.substr(0, split), nullptr, false);
  if (spec.is_discarded()) return 0;
  std::vector<std::string> overrides;
  if (split != std::string::npos) {
    std::istringstream lines(input.substr(split + 4));
    for (std::string line; std::getline(lines, line);) overrides.push_back(line);
  }
  try {
    const nlohmann::json resolved = mz::spec::resolve(spec, overrides, spec_dir());
    if (!resolved.is_object()) mz_fuzz::fail("resolved spec is not an object: " + resolved.dump());
  } catch (const mz::UsageError&) {
  }
  return 0;
}
