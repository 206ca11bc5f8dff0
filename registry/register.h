// MZ_REGISTER_MODEL(builder, task): the one registration line per builder. The weights enum and
// the options struct are deduced from the builder's signature
//   Holder builder(std::optional<Weights>, Options)
// so a builder cannot be registered with another model's weights type.
#pragma once

#include <map>
#include <type_traits>

#include <torch/ordered_dict.h>

#include "modelzoo/heads/compose.h"
#include "modelzoo/options.h"
#include "modelzoo/registry.h"

namespace mz::detail {

inline TensorDict to_dict(torch::Tensor t) { return {{"output", std::move(t)}}; }
template <class Map>
TensorDict to_dict(const Map& map) {
  TensorDict out;
  for (const auto& item : map) out.emplace_back(item.first, item.second);
  return out;
}
inline TensorDict to_dict(const TensorMap& map) {
  TensorDict out;
  for (const auto& item : map) out.emplace_back(item.key(), item.value());
  return out;
}
template <class V>
TensorDict to_dict(const torch::OrderedDict<std::string, V>& map) {
  TensorDict out;
  for (const auto& item : map) out.emplace_back(item.key(), item.value());
  return out;
}

template <class Holder, class W, class O>
bool register_builder(const char* name, const char* task, Holder (*builder)(std::optional<W>, O)) {
  ModelInfo info;
  info.name = name;
  info.task = task;
  info.weights_enum = W::enum_name;
  info.default_options = O{};
  info.default_weights = [] { return W::DEFAULT.name(); };
  info.build = [builder, model = std::string(name)](const std::string& weights, const nlohmann::json& options) {
    std::optional<W> w;
    if (!weights.empty()) w = W::from_name(weights);
    Holder holder = builder(w, options_from_json<O>(options, model));
    return Model{model, holder.ptr(), [holder](const torch::Tensor& x) mutable { return to_dict(holder->forward(x)); }};
  };
  register_model(std::move(info));
  return true;
}

}  // namespace mz::detail

#define MZ_REGISTER_MODEL(builder, task) \
  static const bool mz_registered_##builder = ::mz::detail::register_builder(#builder, task, &::mz::builder)
