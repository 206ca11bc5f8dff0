// What the spec tests share.
#pragma once

#include <cstdlib>
#include <string>

#include "tests/support/support.h"

namespace mz::test {

// The message of the mz::UsageError that fn throws ("" if it throws none).
template <class Fn>
std::string usage_error(Fn fn) {
  try {
    fn();
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

// A spec of examples/specs/.
inline std::string example_spec(const std::string& name) { return std::string(std::getenv("MZ_SPECS")) + "/" + name; }

}  // namespace mz::test
