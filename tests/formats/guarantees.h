// An independent re-check of the formats.h guarantees, shared by the tests and the fuzz target.
// Returns an empty string when the description is sound, else what is wrong.
#pragma once

#include <set>
#include <string>

#include "weights/checkpoint/formats/formats.h"

namespace mz::formats::test {

inline std::string guarantee_violation(const Description& d, std::size_t file_size) {
  std::set<std::string> names;
  for (const TensorDesc& t : d.tensors) {
    const std::string who = "'" + t.name + "': ";
    if (!names.insert(t.name).second) return who + "duplicate name";
    if (t.shape.size() != t.strides.size()) return who + "shape and strides differ in length";
    const std::uint64_t elsize = dtype_size(t.dtype);
    std::uint64_t end = 0;
    if (__builtin_add_overflow(t.data_offset, t.data_size, &end) || end > file_size) return who + "storage outside file";
    if (t.data_size % elsize) return who + "storage size not a multiple of the element size";
    if (t.storage_offset < 0) return who + "negative storage offset";
    std::int64_t numel = 1, last = t.storage_offset, step = 0;
    for (std::size_t i = 0; i < t.shape.size(); ++i) {
      if (t.shape[i] < 0 || t.strides[i] < 0) return who + "negative size or stride";
      if (__builtin_mul_overflow(numel, t.shape[i], &numel)) return who + "numel overflows";
      if (t.shape[i] > 0 && (__builtin_mul_overflow(t.shape[i] - 1, t.strides[i], &step) ||
                             __builtin_add_overflow(last, step, &last)))
        return who + "extent overflows";
    }
    std::uint64_t needed = 0;
    if (numel > 0 && (__builtin_mul_overflow(static_cast<std::uint64_t>(last) + 1, elsize, &needed) ||
                      needed > t.data_size))
      return who + "view outside storage";
  }
  return "";
}

}  // namespace mz::formats::test
