// Builder options as JSON, by their Python keyword names. Each options struct declares its fields
// once: MZ_OPTIONS(ResNetOptions, num_classes, zero_init_residual, groups, ...).
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "modelzoo/errors.h"
#include "modelzoo/weights.h"

namespace nlohmann {
template <class T>
struct adl_serializer<std::optional<T>> {
  static void to_json(json& j, const std::optional<T>& v) { j = v ? json(*v) : json(nullptr); }
  static void from_json(const json& j, std::optional<T>& v) {
    if (j.is_null()) v.reset();
    else v = j.get<T>();
  }
};
// A typed weights value as its full name ("ResNet50_Weights.IMAGENET1K_V1"), e.g. weights_backbone.
template <class W>
struct adl_serializer<W, std::enable_if_t<std::is_base_of_v<::mz::Weights, W>>> {
  static void to_json(json& j, const W& w) { j = w.key(); }
  static W from_json(const json& j) { return W::from_name(j.get<std::string>()); }
};
}  // namespace nlohmann

#define MZ_OPTIONS(Type, ...) NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(Type, __VA_ARGS__)

namespace mz {
namespace detail {
// Whether every float in `v` (a number or nested arrays) is within int32's range, so that converting it to any
// integer type an option may hold is defined; true when `v` holds no float.
inline bool floats_within_int32(const nlohmann::json& v) {
  if (v.is_array()) {
    for (const nlohmann::json& x : v)
      if (!floats_within_int32(x)) return false;
    return true;
  }
  return !v.is_number_float() || (v.get<double>() > -2147483649.0 && v.get<double>() < 2147483648.0);
}
// `v` with every float replaced by 0.5: an option that reads it back as anything else holds integers.
inline nlohmann::json floats_to_half(const nlohmann::json& v) {
  if (v.is_number_float()) return 0.5;
  if (!v.is_array()) return v;
  nlohmann::json out = nlohmann::json::array();
  for (const nlohmann::json& x : v) out.push_back(floats_to_half(x));
  return out;
}
}  // namespace detail

// Options from JSON: unknown keys and wrongly typed values are mz::UsageError naming the model,
// the key and the valid keys; missing keys keep their defaults. A number the option cannot hold
// exactly (1000.5 for an integer) is an error, not rounded.
template <class Options>
Options options_from_json(const nlohmann::json& j, const std::string& model) {
  const nlohmann::json defaults = Options{};
  if (!j.is_object()) throw UsageError(model, "options must be a JSON object");
  for (const auto& [key, value] : j.items()) {
    if (defaults.contains(key)) continue;
    std::string valid;
    for (const auto& [k, v] : defaults.items()) valid += (valid.empty() ? "" : ", ") + k;
    throw UsageError(model, "unknown option '" + key + "' (valid: " + valid + ")");
  }
  for (const auto& [key, value] : j.items()) {  // a huge float must not reach a float-to-integer conversion
    if (detail::floats_within_int32(value)) continue;
    nlohmann::json probe = defaults;
    probe[key] = detail::floats_to_half(value);
    bool integers = false;
    try {
      integers = nlohmann::json(probe.get<Options>())[key] != probe[key];
    } catch (const std::exception&) {  // the wrong type altogether: named below
    }
    if (integers) throw UsageError(model, "option '" + key + "' cannot be " + value.dump() + " (out of range)");
  }
  nlohmann::json merged = defaults;
  merged.update(j);
  Options options;
  try {
    options = merged.get<Options>();
  } catch (const nlohmann::json::exception& e) {
    for (const auto& [key, value] : j.items()) {  // name the option that does not parse
      nlohmann::json one = defaults;
      one[key] = value;
      try {
        (void)one.get<Options>();
      } catch (const nlohmann::json::exception& bad) {
        std::string why = bad.what();
        why = why.substr(why.find(']') == std::string::npos ? 0 : why.find(']') + 2);  // "[json.exception...] "
        throw UsageError(model, "option '" + key + "' cannot be " + value.dump() + " (" + why + ")");
      }
    }
    throw UsageError(model, std::string("bad option value: ") + e.what());
  }
  const nlohmann::json parsed = options;
  for (const auto& [key, value] : j.items())
    if (value.is_number() && parsed[key].is_number() && parsed[key] != value)
      throw UsageError(model, "option '" + key + "' cannot be " + value.dump() + " (it holds " + parsed[key].dump() + ")");
  return options;
}

}  // namespace mz
