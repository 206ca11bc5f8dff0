// The oracle cases of make_cases.py, shared by the detection_ops tests.
#pragma once

#include <cstdlib>
#include <string>

#include <doctest/doctest.h>

#include "tests/support/support.h"

namespace dops {

inline mz::TensorDict& cases() {
  static mz::TensorDict c = [] {
    const char* path = std::getenv("MZ_DETECTION_OPS_CASES");
    REQUIRE_MESSAGE(path != nullptr, "MZ_DETECTION_OPS_CASES (make_cases.py's output) is not set");
    return mz::read_checkpoint(path);
  }();
  return c;
}
// The tensors of one case: case_of("coder", 1)("codes").
inline auto case_of(const std::string& op, int i) {
  return [prefix = op + "." + std::to_string(i) + "."](const std::string& name) -> torch::Tensor {
    return cases().at(prefix + name);
  };
}
// How many cases of `op` the file holds (each has a tensor named `key`).
inline int count_cases(const std::string& op, const std::string& key) {
  int n = 0;
  while (cases().contains(op + "." + std::to_string(n) + "." + key)) ++n;
  return n;
}

inline bool same(const torch::Tensor& a, const torch::Tensor& b) {
  return a.scalar_type() == b.scalar_type() && a.sizes() == b.sizes() && torch::equal(a, b);
}
#define CHECK_SAME(a, b) CHECK_MESSAGE(same(a, b), #a " != " #b)

}  // namespace dops

using namespace dops;  // NOLINT: the tests name the helpers directly
