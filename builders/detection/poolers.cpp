// MultiScaleRoIAlign, as in torchvision.ops.poolers.
#include "modelzoo/detection/poolers.h"

#include <algorithm>
#include <cmath>
#include <ostream>

#include "modelzoo/detection/ops.h"
#include "modelzoo/errors.h"

namespace mz {

MultiScaleRoIAlignImpl::MultiScaleRoIAlignImpl(std::vector<std::string> names, std::array<std::int64_t, 2> size,
                                               std::int64_t ratio, std::int64_t scale, std::int64_t level)
    : featmap_names(std::move(names)),
      output_size(size),
      sampling_ratio(ratio),
      canonical_scale(scale),
      canonical_level(level) {
  if (featmap_names.empty()) throw UsageError("MultiScaleRoIAlign", "featmap_names must not be empty");
}

namespace {

// _infer_scale: 2 ** round(log2(feature / image)) on the height, the log2 in float32.
double infer_scale(const torch::Tensor& feature, std::int64_t image_h) {
  const double approx = static_cast<double>(feature.size(-2)) / static_cast<double>(image_h);
  const double exponent = torch::tensor(static_cast<float>(approx)).log2().round().item<double>();
  return std::pow(2.0, exponent);
}

}  // namespace

torch::Tensor MultiScaleRoIAlignImpl::forward(const TensorDict& x, const std::vector<torch::Tensor>& boxes,
                                              const std::vector<ImageSize>& image_shapes) {
  auto returned = [&] {
    std::string have;
    for (const auto& k : x.keys()) have += (have.empty() ? "" : ", ") + k;
    return " (the backbone returns " + have + ")";
  };
  if (strict)
    for (const auto& name : featmap_names)
      if (!x.contains(name))
        throw UsageError("MultiScaleRoIAlign", "featmap_names has '" + name + "', which the backbone does not return" +
                                                   returned());
  std::vector<torch::Tensor> maps;
  for (const auto& item : x)
    if (std::find(featmap_names.begin(), featmap_names.end(), item.key()) != featmap_names.end())
      maps.push_back(item.value());
  if (maps.empty()) throw UsageError("MultiScaleRoIAlign", "none of featmap_names is a feature map" + returned());
  if (scales.empty()) {
    if (image_shapes.empty()) throw UsageError("MultiScaleRoIAlign", "images list should not be empty");
    std::int64_t max_h = 0;
    for (const auto& s : image_shapes) max_h = std::max(max_h, s[0]);
    for (const auto& m : maps) scales.push_back(infer_scale(m, max_h));
    k_min = static_cast<std::int64_t>(-torch::log2(torch::tensor(static_cast<float>(scales.front()))).item<double>());
    k_max = static_cast<std::int64_t>(-torch::log2(torch::tensor(static_cast<float>(scales.back()))).item<double>());
  }
  const auto rois = ops::convert_boxes_to_roi_format(boxes);
  if (maps.size() == 1)
    return ops::roi_align(maps[0], rois, output_size, scales[0], sampling_ratio, /*aligned=*/false);
  // LevelMapper: floor(canonical_level + log2(sqrt(area) / canonical_scale) + 1e-6), clamped.
  std::vector<torch::Tensor> areas;
  for (const auto& b : boxes) areas.push_back(ops::box_area(b));
  const auto s = torch::sqrt(torch::cat(areas));
  auto target = torch::floor(canonical_level + torch::log2(s / canonical_scale) + torch::tensor(1e-6, torch::TensorOptions().dtype(s.dtype())));
  target = torch::clamp(target, static_cast<double>(k_min), static_cast<double>(k_max));
  const auto levels = target.to(torch::kInt64) - k_min;
  auto result = torch::zeros({rois.size(0), maps[0].size(1), output_size[0], output_size[1]}, maps[0].options());
  for (std::size_t level = 0; level < maps.size(); ++level) {
    const auto idx = torch::where(levels == static_cast<std::int64_t>(level))[0];
    const auto pooled = ops::roi_align(maps[level], rois.index({idx}), output_size, scales[level], sampling_ratio, false);
    result.index_put_({idx}, pooled.to(result.scalar_type()));
  }
  return result;
}

void MultiScaleRoIAlignImpl::pretty_print(std::ostream& s) const {
  s << "MultiScaleRoIAlign(featmap_names=" << featmap_names << ", output_size=" << output_size[0] << "x"
    << output_size[1] << ", sampling_ratio=" << sampling_ratio << ")";
}

}  // namespace mz
