// fnmatch globs ("resnet*", "fc.*"; '*' crosses dots), as the registry's filters and the loader's skip list take them.
#pragma once

#include <fnmatch.h>

#include <algorithm>
#include <string>
#include <vector>

namespace mz {
inline bool matches_any(const std::string& name, const std::vector<std::string>& globs) {
  return std::any_of(globs.begin(), globs.end(),
                     [&](const std::string& g) { return fnmatch(g.c_str(), name.c_str(), 0) == 0; });
}
}  // namespace mz
