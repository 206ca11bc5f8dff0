#include <algorithm>
#include <map>
#include <mutex>

#include "registry/register.h"
#include "weights/glob.h"
#include "weights/suggest.h"

namespace mz {
namespace {

std::map<std::string, ModelInfo>& models() {
  static std::map<std::string, ModelInfo> m;
  return m;
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
  throw UsageError(name, "unknown model" + did_you_mean(name, names));
}

Model get_model(const std::string& name, const std::string& weights, const nlohmann::json& options) {
  return model_info(name).build(weights, options);
}

std::vector<const WeightsRecord*> get_model_weights(const std::string& model) {
  const ModelInfo& info = model_info(model);
  std::vector<const WeightsRecord*> out;
  for (const WeightsRecord* r : all_weights())
    if (r->enum_name == info.weights_enum) out.push_back(r);
  return out;
}

}  // namespace mz
