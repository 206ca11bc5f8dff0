// JSON paths in a spec, as errors name them: "model.backbone.num_classes" ("model" is the root).
#pragma once

#include <string>
#include <vector>

#include "modelzoo/errors.h"

namespace mz::spec {

constexpr int kMaxDepth = 64;  // nesting of a spec, and of nodes while building

struct Path {
  std::vector<std::string> segments;
  Path operator/(const std::string& segment) const {
    Path p = *this;
    p.segments.push_back(segment);
    return p;
  }
  // Without its last n segments.
  Path parent(std::size_t n) const {
    Path p = *this;
    p.segments.resize(segments.size() - n);
    return p;
  }
  std::size_t size() const { return segments.size(); }
  std::string str() const {
    std::string s = "model";
    for (const auto& seg : segments) s += "." + seg;
    return s;
  }
};

inline void check_depth(const Path& at, int depth) {
  if (depth > kMaxDepth) throw UsageError(at.str(), "nested deeper than 64 levels");
}

inline bool is_index(const std::string& s) {
  return !s.empty() && s.size() < 10 && s.find_first_not_of("0123456789") == std::string::npos;
}

// "a.b.0" -> {"a", "b", "0"}; an empty segment is an error naming `what`.
inline std::vector<std::string> split_path(const std::string& dotted, const std::string& what) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const auto dot = dotted.find('.', start);
    out.push_back(dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (out.back().empty()) throw UsageError(what, "empty name in the dotted path '" + dotted + "'");
    if (out.size() > kMaxDepth) throw UsageError(what, "a dotted path of more than 64 names");
    if (dot == std::string::npos) return out;
    start = dot + 1;
  }
}

}  // namespace mz::spec
