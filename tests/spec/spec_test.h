// What the spec tests share.
#pragma once

#include <cstdlib>
#include <string>

#include "tests/support/support.h"

namespace mz::test {

// The message of the error of type E that fn throws ("" if it throws none of that type).
template <class E, class Fn>
std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  }
  return "";
}
// The message of the mz::UsageError that fn throws ("" if it throws none).
template <class Fn>
std::string usage_error(Fn fn) {
  return error_of<UsageError>(fn);
}

// A spec of examples/specs/.
inline std::string example_spec(const std::string& name) { return std::string(std::getenv("MZ_SPECS")) + "/" + name; }

}  // namespace mz::test
