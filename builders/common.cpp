#include "builders/common.h"

namespace mz::detail {

std::int64_t num_classes(const std::optional<std::int64_t>& given, const std::optional<Weights>& w,
                         std::int64_t fallback) {
  if (!w) return given.value_or(fallback);
  return override_param<std::int64_t>(given, static_cast<std::int64_t>(w->meta().categories.size()), "num_classes",
                                      w->name());
}

Step avgpool_step() {
  return {"avgpool", [](torch::Tensor x) { return torch::adaptive_avg_pool2d(x, {1, 1}); }};
}
Step flatten_step() {
  return {"flatten", [](torch::Tensor x) { return x.flatten(1); }};
}

}  // namespace mz::detail
