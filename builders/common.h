// What every builder does with its weights, written once.
#pragma once

#include <optional>
#include <string>
#include <vector>

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

// nn::reset_parameters on every child of `module` not named in `keep` (on `module` itself when `keep` is empty).
void reset_parameters_except(torch::nn::Module& module, const std::vector<std::string>& keep);

// torchvision's MobileNetV2/V3 init beyond PyTorch's defaults: kaiming_normal_(fan_out) for convs with
// zero bias, linears N(0, 0.01) with zero bias.
void init_mobilenet(torch::nn::Module& model);

// The `transform_input` step of GoogLeNet and Inception v3: ImageNet-normalised input -> the
// (x - 0.5) / 0.5 normalisation the ported weights were trained with.
torch::Tensor inception_transform_input(const torch::Tensor& x);

// num_classes for a classification builder: len(categories) with weights that have categories, else
// the option or 1000 (VGG16's IMAGENET1K_FEATURES has none: num_classes stays the caller's).
std::int64_t num_classes(const std::optional<std::int64_t>& given, const std::optional<Weights>& w,
                         std::int64_t fallback = 1000);

// The one init path of every builder. With weights: loads them (strict). Without: PyTorch's default
// init for every layer (children named in `keep` excepted: a backbone its own builder initialised or
// loaded), then `init`, the family's init beyond PyTorch's defaults. Inside an ArchitectureOnly scope
// it does neither: the caller fills every tensor itself.
template <class Init>
void load_or_init(torch::nn::Module& module, const std::optional<Weights>& weights, Init init,
                  const std::vector<std::string>& keep = {}) {
  if (architecture_only()) return;
  if (weights) {
    load_weights(module, *weights);
    return;
  }
  reset_parameters_except(module, keep);
  init();
}
inline void load_or_init(torch::nn::Module& module, const std::optional<Weights>& weights) {
  load_or_init(module, weights, [] {});
}

// The functional steps that end most classifiers' features: global average pooling to 1x1, and
// flattening [N, C, 1, 1] to [N, C].
Step avgpool_step();
Step flatten_step();
// A functional "relu" step where torchvision's is ReLU(inplace=True): in place when nothing else holds its input
// (ops::unshared), so a feature extractor that also returns the previous layer keeps that output intact.
Step relu_step();

}  // namespace mz::detail
