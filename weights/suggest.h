// Suggestions for unknown names (models, weights), shared by the registry and the weights table.
#pragma once

#include <string>
#include <vector>

namespace mz {
// " (did you mean: a, b, c?)" with the three names closest to `name` by edit distance; "" if none.
std::string did_you_mean(const std::string& name, const std::vector<std::string>& names);
}  // namespace mz
