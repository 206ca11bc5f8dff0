// torchvision.ops.MultiScaleRoIAlign: RoIAlign over the feature map each box's size selects (FPN's
// level mapping), with no parameters.
//
//   auto pooler = mz::MultiScaleRoIAlign({"0", "1", "2", "3"}, 7, 2);
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "modelzoo/detection/transform.h"
#include "modelzoo/tensor_dict.h"

namespace mz {

class MultiScaleRoIAlignImpl : public torch::nn::Module {
 public:
  MultiScaleRoIAlignImpl(std::vector<std::string> featmap_names, std::int64_t output_size, std::int64_t sampling_ratio,
                         std::int64_t canonical_scale = 224, std::int64_t canonical_level = 4)
      : MultiScaleRoIAlignImpl(std::move(featmap_names), std::array<std::int64_t, 2>{output_size, output_size},
                               sampling_ratio, canonical_scale, canonical_level) {}
  MultiScaleRoIAlignImpl(std::vector<std::string> featmap_names, std::array<std::int64_t, 2> output_size,
                         std::int64_t sampling_ratio, std::int64_t canonical_scale = 224,
                         std::int64_t canonical_level = 4);
  // x: the backbone's maps (those named in featmap_names are used, in x's order); boxes: [K_i, 4] per
  // image, in the batch's pixels. Returns [sum K_i, C, output_size]. Throws mz::UsageError when x lacks
  // one of featmap_names (unless strict is false) or has none of them. As torchvision, the scales are inferred on the first call and kept.
  torch::Tensor forward(const TensorDict& x, const std::vector<torch::Tensor>& boxes,
                        const std::vector<ImageSize>& image_shapes);
  void pretty_print(std::ostream& stream) const override;

  std::vector<std::string> featmap_names;
  std::array<std::int64_t, 2> output_size;
  std::int64_t sampling_ratio, canonical_scale, canonical_level;
  // false: names x lacks are skipped, as torchvision's _filter_input does (the detectors' default poolers,
  // whose "0".."3" a two-level backbone does not all return); true: they are an error.
  bool strict = true;
  std::vector<double> scales;  // empty until the first forward
  std::int64_t k_min = 0, k_max = 0;
};
// The holder takes a braced name list: MultiScaleRoIAlign({"0", "1"}, 7, 2).
class MultiScaleRoIAlign : public torch::nn::ModuleHolder<MultiScaleRoIAlignImpl> {
 public:
  using torch::nn::ModuleHolder<MultiScaleRoIAlignImpl>::ModuleHolder;
  MultiScaleRoIAlign(std::vector<std::string> featmap_names, std::int64_t output_size, std::int64_t sampling_ratio)
      : ModuleHolder(std::make_shared<MultiScaleRoIAlignImpl>(std::move(featmap_names), output_size, sampling_ratio)) {}
};

}  // namespace mz
