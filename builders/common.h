// What every builder does with its weights, written once.
#pragma once

#include <optional>
#include <string>

#include <torch/nn/module.h>

#include "modelzoo/layers/chain.h"
#include "modelzoo/checkpoint.h"
#include "modelzoo/weights.h"

namespace mz::detail {

// torchvision's _ovewrite_named_param: `param` takes `value` (set by the weights or by the builder);
// a different value set by the caller is an error naming `subject` (the weights or the builder).
template <class T>
T override_param(const std::optional<T>& given, const T& value, const char* param, const std::string& subject) {
  if (given && !(*given == value))
    throw UsageError(subject, std::string("option '") + param + "' must be " + nlohmann::json(value).dump() +
                                  ", got " + nlohmann::json(*given).dump());
  return value;
}

// num_classes for a classification builder: len(categories) with weights, else the option or 1000.
std::int64_t num_classes(const std::optional<std::int64_t>& given, const std::optional<Weights>& w,
                         std::int64_t fallback = 1000);

// Loads weights into a freshly built module (strict), or, without weights, runs `init`.
// Inside an ArchitectureOnly scope it does neither: the caller fills every tensor itself.
template <class Init>
void load_or_init(torch::nn::Module& module, const std::optional<Weights>& weights, Init init,
                  const LoadOptions& options = {}) {
  if (architecture_only()) return;
  if (!weights) return init();
  load_weights(module, *weights, options);
}

// The functional steps that end most classifiers' features: global average pooling to 1x1, and
// flattening [N, C, 1, 1] to [N, C].
Step avgpool_step();
Step flatten_step();

}  // namespace mz::detail
