// Writes <modelzoo/weights_enums.h>, the typed weights enums, from the builtin weights records
// (weights/records/*.cpp). Run by the build (CMakeLists.txt), so each enum's values, its DEFAULT, its
// model and its task are stated once, in the records, and the declarations cannot drift from them.
//   mz_gen_weights_enums OUT.h     (writes OUT.h only when its content changes)
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "modelzoo/weights.h"

namespace {

struct Enum {
  std::string model, task, default_value;
  std::vector<std::string> values;
};

std::string header() {
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
  std::ostringstream s;
  s << "// The typed weights enums, generated at build time from the weights records (weights/records/*.cpp)\n"
       "// by weights/codegen/weights_enums.cpp. Do not edit: change the records.\n"
       "#pragma once\n\n#include \"modelzoo/weights.h\"\n\nnamespace mz {\n";
  for (const auto& [name, e] : enums) {
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

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: mz_gen_weights_enums OUT.h\n";
    return 2;
  }
  try {
    const std::string text = header();
    std::ifstream old(argv[1], std::ios::binary);
    std::ostringstream current;
    current << old.rdbuf();
    if (old && current.str() == text) return 0;
    std::ofstream out(argv[1], std::ios::binary | std::ios::trunc);
    out << text;
    return out ? 0 : 1;
  } catch (const std::exception& e) {
    std::cerr << "mz_gen_weights_enums: " << e.what() << "\n";
    return 1;
  }
}
