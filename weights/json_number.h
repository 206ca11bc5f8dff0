// JSON integers read strictly, for every JSON that comes from users (manifests, specs, options, saved models).
// nlohmann's get<>() turns any number into any arithmetic type: 2.5 into 2, and a float beyond the type's range
// is undefined behaviour. Here an integer is a JSON integer that fits the type, or an error naming it.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/errors.h"

namespace mz::detail {

template <class T>
struct is_vector : std::false_type {};
template <class E>
struct is_vector<std::vector<E>> : std::true_type {};

// Whether every integer that get<T>() would take from `v` is a JSON integer within T's range (true for types
// without integers: strings, floats).
template <class T>
bool integers_fit(const nlohmann::json& v) {
  if constexpr (is_vector<T>::value) {
    if (v.is_array())
      for (const nlohmann::json& x : v)
        if (!integers_fit<typename T::value_type>(x)) return false;
    return true;
  } else if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    if (v.is_number_unsigned()) return v.get<std::uint64_t>() <= static_cast<std::uint64_t>(std::numeric_limits<T>::max());
    return v.is_number_integer() && (std::is_signed_v<T> || v.get<std::int64_t>() >= 0) &&
           v.get<std::int64_t>() >= static_cast<std::int64_t>(std::numeric_limits<T>::min());
  } else {
    return true;
  }
}

// `v` as the integer type T; UsageError(subject, "<what> must be an integer within range, got <v>") otherwise.
template <class T>
T integer(const nlohmann::json& v, const std::string& subject, const std::string& what) {
  static_assert(std::is_integral_v<T>);
  if (!integers_fit<T>(v)) throw UsageError(subject, what + " must be an integer within range, got " + v.dump());
  return v.get<T>();
}

}  // namespace mz::detail
