#include "weights/records.h"

#include <regex>
#include <sstream>

namespace mz::data {

Transforms image_classification(std::int64_t crop_size, std::int64_t resize_size, const char* interpolation) {
  return {"ImageClassification", crop_size, resize_size, kImageNetMean, kImageNetStd, interpolation};
}

Transforms semantic_segmentation(std::int64_t resize_size) {
  return {"SemanticSegmentation", std::nullopt, resize_size, kImageNetMean, kImageNetStd, "bilinear"};
}

std::string normalize_space(const std::string& text) {
  std::istringstream in(text);
  std::string word, out;
  while (in >> word) out += (out.empty() ? "" : " ") + word;
  return out;
}

WeightsRecord imagenet(const char* full_name, const char* url, Transforms transforms, std::int64_t num_params,
                       double acc1, double acc5, const char* recipe, const char* docs) {
  const std::string name = full_name;
  WeightsRecord r;
  r.enum_name = name.substr(0, name.find('.'));
  r.value_name = name.substr(name.find('.') + 1);
  r.url = url;
  r.transforms = std::move(transforms);
  r.meta.num_params = num_params;
  r.meta.min_size = std::make_pair(1, 1);
  r.meta.categories = imagenet_categories();
  r.meta.metrics["ImageNet-1K"] = {{"acc@1", acc1}, {"acc@5", acc5}};
  r.meta.recipe = recipe;
  r.meta.docs = normalize_space(docs);
  return r;
}

std::string hash_prefix_of(const std::string& url) {
  static const std::regex hash_regex("-([a-f0-9]*)\\.");  // torch.hub's HASH_REGEX
  const std::string file = url.substr(url.find_last_of('/') + 1);
  std::smatch m;
  return std::regex_search(file, m, hash_regex) ? m.str(1) : std::string();
}

bool add(const char* task, const char* model, const char* default_value, std::vector<WeightsRecord> records) {
  for (WeightsRecord& r : records) {
    r.model = model;
    r.task = task;
    r.is_default = r.value_name == default_value;
    if (r.hash_prefix.empty()) r.hash_prefix = hash_prefix_of(r.url);
    register_weights(std::move(r));
  }
  return true;
}

}  // namespace mz::data
