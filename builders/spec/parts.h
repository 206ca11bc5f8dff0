// What the built-in components' registrations share (builders/spec/parts_*.cpp).
#pragma once

#include <array>
#include <optional>
#include <string>

#include "modelzoo/checkpoint.h"
#include "modelzoo/layers/nn.h"
#include "modelzoo/layers/ops.h"
#include "modelzoo/spec.h"

namespace mz::spec {

// PyTorch's default init, for the parts whose constructors leave their layers uninitialised (mz::nn).
template <class Holder>
Holder initialised(Holder module) {
  if (!architecture_only()) nn::reset_parameters(*module);
  return module;
}

// A kwarg that is one int or a pair (kernel_size, output_size, ...).
inline std::array<std::int64_t, 2> pair_arg(Args& a, const std::string& key, std::int64_t fallback) {
  const nlohmann::json v = a.get<nlohmann::json>(key, nlohmann::json(fallback));
  try {
    if (v.is_number_integer()) return {v.get<std::int64_t>(), v.get<std::int64_t>()};
    if (v.is_array() && v.size() == 2) return v.get<std::array<std::int64_t, 2>>();
  } catch (const nlohmann::json::exception&) {
  }
  throw UsageError(a.path(key), "an int or a pair of ints, got " + v.dump());
}

// norm_layer by its torchvision name: "BatchNorm2d", "FrozenBatchNorm2d", or null (none / the default).
inline ops::NormLayer norm_layer_arg(Args& a, const std::string& key, ops::NormLayer fallback) {
  if (!a.has(key)) return fallback;
  const std::string name = a.get<std::string>(key);
  if (name == "BatchNorm2d") return ops::batch_norm2d();
  if (name == "FrozenBatchNorm2d") return ops::frozen_batch_norm2d();
  throw UsageError(a.path(key), "unknown norm layer '" + name + "' (valid: BatchNorm2d, FrozenBatchNorm2d)");
}

// A weights kwarg ("ResNet50_Weights.IMAGENET1K_V1", or null), recorded as the node's provenance.
inline std::optional<Weights> weights_arg(Args& a, const std::string& key) {
  if (!a.has(key)) return std::nullopt;
  const WeightsRecord* found = nullptr;
  try {
    found = &get_weight(a.get<std::string>(key));
  } catch (const UsageError& e) {
    throw UsageError(a.path(key), e.what());
  }
  const WeightsRecord& record = *found;
  a.uses_weights(record.name());
  return Weights(record.enum_name.c_str(), record.value_name.c_str());  // the record never moves
}

}  // namespace mz::spec
