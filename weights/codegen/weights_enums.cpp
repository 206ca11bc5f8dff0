// Writes the typed weights enums from the builtin weights records (weights/records/*.cpp): one header
// per task, <modelzoo/weights_enums/<task>.h>, and <modelzoo/weights_enums.h>, which includes them all.
// Run by the build (CMakeLists.txt), so each enum's values, its DEFAULT, its model and its task are
// stated once, in the records, and the declarations cannot drift from them. A model header includes
// only its task's header, so records of another task never rebuild it.
//   mz_gen_weights_enums OUT_DIR     (writes each file only when its content changes)
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "modelzoo/weights.h"

namespace {

struct Enum {
  std::string model, task, default_value;
  std::vector<std::string> values;
};

std::map<std::string, Enum> collect() {
  std::map<std::string, Enum> enums;  // sorted by name: the output does not depend on link order
  for (const mz::WeightsRecord* r : mz::all_weights()) {
    if (r->source != "builtin") continue;
    Enum& e = enums[r->enum_name];
    if (e.values.empty()) e.model = r->model, e.task = r->task;
    if (e.model != r->model || e.task != r->task)
      throw std::logic_error(r->name() + ": model or task differs from the enum's other records");
    e.values.push_back(r->value_name);
    if (r->is_default) e.default_value = r->value_name;
  }
  return enums;
}

const char* const kBanner =
    "// Generated at build time from the weights records (weights/records/*.cpp) by\n"
    "// weights/codegen/weights_enums.cpp. Do not edit: change the records.\n#pragma once\n\n";

// The header of one task's enums.
std::string task_header(const std::map<std::string, Enum>& enums, const std::string& task) {
  std::ostringstream s;
  s << kBanner << "#include \"modelzoo/weights.h\"\n\nnamespace mz {\n";
  for (const auto& [name, e] : enums) {
    if (e.task != task) continue;
    if (e.default_value.empty()) throw std::logic_error(name + ": no DEFAULT among its records");
    s << "\nstruct " << name << " : WeightsEnum<" << name << "> {\n"
      << "  static constexpr const char* enum_name = \"" << name << "\";\n"
      << "  static constexpr const char* model = \"" << e.model << "\";\n"
      << "  static constexpr const char* task = \"" << e.task << "\";\n"
      << "  explicit constexpr " << name << "(const char* value) : WeightsEnum(value) {}\n";
    for (const auto& v : e.values) s << "  static const " << name << " " << v << ";\n";
    s << "  static const " << name << " DEFAULT;  // " << e.default_value << "\n};\n";
    for (const auto& v : e.values)
      s << "inline constexpr " << name << " " << name << "::" << v << "{\"" << v << "\"};\n";
    s << "inline constexpr " << name << " " << name << "::DEFAULT{\"" << e.default_value << "\"};\n";
  }
  s << "\n}  // namespace mz\n";
  return s.str();
}

// Writes `text` to `path` unless the file holds it already (its users are not rebuilt then).
bool write_if_changed(const std::string& path, const std::string& text) {
  std::ifstream old(path, std::ios::binary);
  std::ostringstream current;
  current << old.rdbuf();
  if (old && current.str() == text) return true;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  return static_cast<bool>(out);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: mz_gen_weights_enums OUT_DIR\n";
    return 2;
  }
  try {
    const std::string dir = argv[1];
    const std::map<std::string, Enum> enums = collect();
    std::set<std::string> tasks;
    for (const auto& [name, e] : enums) tasks.insert(e.task);
    std::ostringstream all;
    all << kBanner << "// Every task's weights enums.\n";
    for (const std::string& task : tasks) {
      if (!write_if_changed(dir + "/weights_enums/" + task + ".h", task_header(enums, task))) return 1;
      all << "#include \"modelzoo/weights_enums/" << task << ".h\"\n";
    }
    return write_if_changed(dir + "/weights_enums.h", all.str()) ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "mz_gen_weights_enums: " << e.what() << "\n";
    return 1;
  }
}
