#include <algorithm>
#include <fnmatch.h>
#include <map>
#include <mutex>

#include "registry/register.h"

namespace mz {
namespace {

std::map<std::string, ModelInfo>& models() {
  static std::map<std::string, ModelInfo> m;
  return m;
}

bool matches_any(const std::string& name, const std::vector<std::string>& globs) {
  return std::any_of(globs.begin(), globs.end(),
                     [&](const std::string& g) { return fnmatch(g.c_str(), name.c_str(), 0) == 0; });
}

// Edit distance, for "did you mean" suggestions.
std::size_t distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

template <class Names>
std::string suggestions(const std::string& name, const Names& names) {
  std::vector<std::pair<std::size_t, std::string>> scored;
  for (const std::string& n : names) scored.emplace_back(distance(name, n), n);
  std::sort(scored.begin(), scored.end());
  std::string out;
  for (std::size_t i = 0; i < scored.size() && i < 3; ++i) out += (i ? ", " : "") + scored[i].second;
  return out.empty() ? "" : " (did you mean: " + out + "?)";
}

}  // namespace

namespace detail {
void register_model(ModelInfo info) {
  const std::string name = info.name;
  if (!models().emplace(name, std::move(info)).second)
    throw std::logic_error("modelzoo: model '" + name + "' is registered twice");
}
}  // namespace detail

std::vector<const ModelInfo*> list_models(const std::vector<std::string>& include,
                                          const std::vector<std::string>& exclude, const std::string& task) {
  std::vector<const ModelInfo*> out;
  for (const auto& [name, info] : models()) {
    if (!include.empty() && !matches_any(name, include)) continue;
    if (matches_any(name, exclude)) continue;
    if (!task.empty() && info.task != task) continue;
    out.push_back(&info);
  }
  return out;
}

const ModelInfo* find_model(const std::string& name) {
  auto it = models().find(name);
  return it == models().end() ? nullptr : &it->second;
}

const ModelInfo& model_info(const std::string& name) {
  if (const ModelInfo* info = find_model(name)) return *info;
  std::vector<std::string> names;
  for (const auto& [n, info] : models()) names.push_back(n);
  throw UsageError(name, "unknown model" + suggestions(name, names));
}

Model get_model(const std::string& name, const std::string& weights, const nlohmann::json& options) {
  return model_info(name).build(weights, options);
}

const WeightsRecord& get_weight(const std::string& full_name) {
  if (const WeightsRecord* r = find_weights(full_name)) return *r;
  const auto dot = full_name.find('.');
  if (dot != std::string::npos && full_name.substr(dot + 1) == "DEFAULT")
    for (const auto& [name, info] : models())
      if (info.weights_enum == full_name.substr(0, dot)) return get_weight(info.default_weights());
  std::vector<std::string> names;
  for (const WeightsRecord* r : all_weights()) names.push_back(r->name());
  throw UsageError(full_name, "unknown weights" + suggestions(full_name, names));
}

std::vector<const WeightsRecord*> get_model_weights(const std::string& model) {
  const ModelInfo& info = model_info(model);
  std::vector<const WeightsRecord*> out;
  for (const WeightsRecord* r : all_weights())
    if (r->enum_name == info.weights_enum) out.push_back(r);
  return out;
}

}  // namespace mz
