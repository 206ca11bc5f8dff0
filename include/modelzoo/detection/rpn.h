// torchvision.models.detection.rpn: the region proposal network of the R-CNN family (inference).
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>

#include "modelzoo/checkpoint.h"
#include "modelzoo/detection/anchor_utils.h"
#include "modelzoo/detection/box_coder.h"
#include "modelzoo/layers/nn.h"
#include "modelzoo/tensor_dict.h"

namespace mz {

// RPNHead: conv (conv_depth x Conv2dNormActivation 3x3 + ReLU, no norm), then cls_logits (1x1, A) and
// bbox_pred (1x1, 4A) on every feature map. Weights N(0, 0.01), biases 0. Loads pre-version-2
// checkpoints ("conv.weight" -> "conv.0.0.weight").
class RPNHeadImpl : public torch::nn::Module, public CheckpointAdapter {
 public:
  RPNHeadImpl(std::int64_t in_channels, std::int64_t num_anchors, std::int64_t conv_depth = 1);
  // (objectness logits [N, A, H, W], box deltas [N, 4A, H, W]) per feature map.
  std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> forward(const std::vector<torch::Tensor>& x);
  void adapt_checkpoint(IncomingState& state, const std::string& prefix) override;
  torch::nn::Sequential conv{nullptr};
  nn::Conv2d cls_logits{nullptr}, bbox_pred{nullptr};
  std::int64_t num_anchors;
};
TORCH_MODULE(RPNHead);

// The RegionProposalNetwork's thresholds, named as torchvision's constructor arguments. The
// fg/bg/batch/positive_fraction arguments only matter in training and are not kept.
struct RPNOptions {
  std::int64_t pre_nms_top_n_train = 2000, pre_nms_top_n_test = 1000;
  std::int64_t post_nms_top_n_train = 2000, post_nms_top_n_test = 1000;
  double nms_thresh = 0.7;
  double score_thresh = 0.0;
};

// (N, A*C, H, W) maps per level -> [N * sum(HWA), C] class logits and [N * sum(HWA), 4] deltas,
// location-major as the anchors (torchvision's concat_box_prediction_layers).
std::pair<torch::Tensor, torch::Tensor> concat_box_prediction_layers(const std::vector<torch::Tensor>& box_cls,
                                                                     const std::vector<torch::Tensor>& box_regression);

// Inference: head -> anchors -> decode -> per-level top-k on the logits -> sigmoid -> clip -> drop
// small boxes (1e-3) -> score_thresh -> nms per level -> the first post_nms_top_n. Training (losses)
// is not implemented: forward throws in training mode.
class RegionProposalNetworkImpl : public torch::nn::Module {
 public:
  RegionProposalNetworkImpl(AnchorGenerator anchor_generator, RPNHead head, RPNOptions options = {});
  // Proposals [K_i, 4] and their objectness probabilities [K_i], per image.
  std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> forward(const ImageList& images,
                                                                            const TensorDict& features);
  // The steps after the head, for parity tests on injected inputs: proposals [N, K, 4], objectness [N, K].
  std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> filter_proposals(
      const torch::Tensor& proposals, const torch::Tensor& objectness, const std::vector<ImageSize>& image_shapes,
      const std::vector<std::int64_t>& num_anchors_per_level) const;
  std::int64_t pre_nms_top_n() const;
  std::int64_t post_nms_top_n() const;

  AnchorGenerator anchor_generator{nullptr};
  RPNHead head{nullptr};
  BoxCoder box_coder{{1.0, 1.0, 1.0, 1.0}};
  RPNOptions options;
  double min_size = 1e-3;
};
TORCH_MODULE(RegionProposalNetwork);

}  // namespace mz
