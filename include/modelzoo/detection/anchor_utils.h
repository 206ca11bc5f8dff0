// torchvision.models.detection.anchor_utils.AnchorGenerator: anchors for each feature map of a
// batch, as the R-CNN family, RetinaNet and FCOS use them.
//
//   auto anchors = mz::AnchorGenerator({{32}, {64}, {128}, {256}, {512}}, {{0.5, 1.0, 2.0}});
#pragma once

#include <cstdint>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "modelzoo/detection/transform.h"

namespace mz {

// sizes[i] and aspect_ratios[i] are the anchors of feature map i (one aspect_ratios entry serves every
// feature map, as torchvision's flat tuple does). Anchors are ordered location-major (row, column),
// then size within aspect ratio, as torchvision orders them.
class AnchorGeneratorImpl : public torch::nn::Module {
 public:
  explicit AnchorGeneratorImpl(std::vector<std::vector<double>> sizes = {{128, 256, 512}},
                               std::vector<std::vector<double>> aspect_ratios = {{0.5, 1.0, 2.0}});
  // One [sum_i H_i * W_i * A_i, 4] tensor per image (every image gets the same anchors).
  std::vector<torch::Tensor> forward(const ImageList& images, const std::vector<torch::Tensor>& feature_maps);
  std::vector<std::int64_t> num_anchors_per_location() const;
  // generate_anchors: [len(ratios) * len(scales), 4] zero-centred anchors, rounded.
  static torch::Tensor generate_anchors(const std::vector<double>& scales, const std::vector<double>& aspect_ratios);
  void pretty_print(std::ostream& stream) const override;

  std::vector<std::vector<double>> sizes, aspect_ratios;
  std::vector<torch::Tensor> cell_anchors;
};
// The holder takes braced lists: AnchorGenerator({{32, 64, 128}}, {{0.5, 1.0, 2.0}}).
class AnchorGenerator : public torch::nn::ModuleHolder<AnchorGeneratorImpl> {
 public:
  using torch::nn::ModuleHolder<AnchorGeneratorImpl>::ModuleHolder;
  AnchorGenerator(std::vector<std::vector<double>> sizes, std::vector<std::vector<double>> aspect_ratios)
      : ModuleHolder(std::make_shared<AnchorGeneratorImpl>(std::move(sizes), std::move(aspect_ratios))) {}
};

}  // namespace mz
