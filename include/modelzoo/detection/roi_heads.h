// torchvision.models.detection.roi_heads and the heads of faster_rcnn / mask_rcnn / keypoint_rcnn:
// per-proposal box classification and regression, then masks and keypoints (inference).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <tuple>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/conv.h>

#include "modelzoo/checkpoint.h"
#include "modelzoo/detection/box_coder.h"
#include "modelzoo/detection/detection.h"
#include "modelzoo/detection/poolers.h"
#include "modelzoo/layers/nn.h"
#include "modelzoo/layers/ops.h"

namespace mz {

// TwoMLPHead: flatten -> fc6 -> ReLU -> fc7 -> ReLU.
class TwoMLPHeadImpl : public torch::nn::Module {
 public:
  TwoMLPHeadImpl(std::int64_t in_channels, std::int64_t representation_size);
  torch::Tensor forward(const torch::Tensor& x);
  nn::Linear fc6{nullptr}, fc7{nullptr};
};
TORCH_MODULE(TwoMLPHead);

// FastRCNNConvFCHead (v2): Conv2dNormActivation per conv_layers entry, Flatten, Linear + ReLU per
// fc_layers entry; children "0", "1", ... as in torchvision. input_size = (C, H, W).
class FastRCNNConvFCHeadImpl : public ops::SequentialBlockImpl {
 public:
  FastRCNNConvFCHeadImpl(std::array<std::int64_t, 3> input_size, const std::vector<std::int64_t>& conv_layers,
                         const std::vector<std::int64_t>& fc_layers, ops::NormLayer norm_layer = nullptr);
};
TORCH_MODULE(FastRCNNConvFCHead);

// FastRCNNPredictor: cls_score (num_classes) and bbox_pred (4 * num_classes) linear layers.
class FastRCNNPredictorImpl : public torch::nn::Module {
 public:
  FastRCNNPredictorImpl(std::int64_t in_channels, std::int64_t num_classes);
  std::tuple<torch::Tensor, torch::Tensor> forward(const torch::Tensor& x);
  nn::Linear cls_score{nullptr}, bbox_pred{nullptr};
};
TORCH_MODULE(FastRCNNPredictor);

// MaskRCNNHeads: one Conv2dNormActivation (3x3, padding = dilation) per layers entry ("0", "1", ...).
// Loads the old names "mask_fcn<i+1>.weight".
class MaskRCNNHeadsImpl : public ops::SequentialBlockImpl, public CheckpointAdapter {
 public:
  MaskRCNNHeadsImpl(std::int64_t in_channels, const std::vector<std::int64_t>& layers, std::int64_t dilation,
                    ops::NormLayer norm_layer = nullptr);
  void adapt_checkpoint(IncomingState& state, const std::string& prefix) override;
};
TORCH_MODULE(MaskRCNNHeads);

// MaskRCNNPredictor: conv5_mask (ConvTranspose 2x2, stride 2) -> ReLU -> mask_fcn_logits (1x1).
class MaskRCNNPredictorImpl : public torch::nn::Module {
 public:
  MaskRCNNPredictorImpl(std::int64_t in_channels, std::int64_t dim_reduced, std::int64_t num_classes);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::ConvTranspose2d conv5_mask{nullptr};
  nn::Conv2d mask_fcn_logits{nullptr};
};
TORCH_MODULE(MaskRCNNPredictor);

// KeypointRCNNHeads: (Conv 3x3 + ReLU) per layers entry; convolutions at "0", "2", "4", ...
class KeypointRCNNHeadsImpl : public ops::SequentialBlockImpl {
 public:
  KeypointRCNNHeadsImpl(std::int64_t in_channels, const std::vector<std::int64_t>& layers);
};
TORCH_MODULE(KeypointRCNNHeads);

// KeypointRCNNPredictor: kps_score_lowres (ConvTranspose 4x4, stride 2, padding 1), then bilinear x2.
class KeypointRCNNPredictorImpl : public torch::nn::Module {
 public:
  KeypointRCNNPredictorImpl(std::int64_t in_channels, std::int64_t num_keypoints);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::ConvTranspose2d kps_score_lowres{nullptr};
  std::int64_t up_scale = 2;
};
TORCH_MODULE(KeypointRCNNPredictor);

// RoIHeads' thresholds, named as torchvision's (the training-only ones are not kept).
struct RoIHeadsOptions {
  double score_thresh = 0.05;
  double nms_thresh = 0.5;
  std::int64_t detections_per_img = 100;
  std::array<double, 4> bbox_reg_weights = {10.0, 10.0, 5.0, 5.0};
};

// An optional mask or keypoint branch: a pooler, a head and a predictor (all or none).
struct RoIBranch {
  MultiScaleRoIAlign roi_pool{nullptr};
  torch::nn::AnyModule head, predictor;  // Tensor -> Tensor
};
using MaskBranch = RoIBranch;
using KeypointBranch = RoIBranch;

// Inference of RoIHeads: box_roi_pool -> box_head -> box_predictor -> postprocess_detections, then
// masks (maskrcnn_inference) and keypoints (keypointrcnn_inference) for the kept boxes. Detections'
// boxes are in the batch's pixels (the transform maps them back). Training is not implemented.
class RoIHeadsImpl : public torch::nn::Module {
 public:
  // box_head: any module Tensor -> Tensor; box_predictor: Tensor -> (class logits, box deltas).
  RoIHeadsImpl(MultiScaleRoIAlign box_roi_pool, torch::nn::AnyModule box_head, FastRCNNPredictor box_predictor,
               RoIHeadsOptions options = {}, std::optional<MaskBranch> mask = {},
               std::optional<KeypointBranch> keypoint = {});
  std::vector<Detection> forward(const TensorDict& features, const std::vector<torch::Tensor>& proposals,
                                 const std::vector<ImageSize>& image_shapes);
  // The steps of forward, for stage-wise tests.
  std::tuple<torch::Tensor, torch::Tensor> box_logits(const TensorDict& features,
                                                      const std::vector<torch::Tensor>& proposals,
                                                      const std::vector<ImageSize>& image_shapes);
  // The mask and keypoint branches' logits for the boxes of each image (those branches must exist).
  torch::Tensor mask_logits(const TensorDict& features, const std::vector<torch::Tensor>& boxes,
                            const std::vector<ImageSize>& image_shapes);
  torch::Tensor keypoint_logits(const TensorDict& features, const std::vector<torch::Tensor>& boxes,
                                const std::vector<ImageSize>& image_shapes);
  // Every branch's raw outputs for the given boxes: "class_logits", "box_regression", and "mask_logits",
  // "keypoint_logits" (on each image's first `few` boxes) where those branches exist (GeneralizedRCNN::dense).
  TensorDict dense(const TensorDict& features, const std::vector<torch::Tensor>& boxes,
                   const std::vector<ImageSize>& image_shapes, std::int64_t few);
  std::vector<Detection> postprocess_detections(const torch::Tensor& class_logits, const torch::Tensor& box_regression,
                                                const std::vector<torch::Tensor>& proposals,
                                                const std::vector<ImageSize>& image_shapes) const;
  bool has_mask() const { return !mask_roi_pool.is_empty(); }
  bool has_keypoint() const { return !keypoint_roi_pool.is_empty(); }

  MultiScaleRoIAlign box_roi_pool{nullptr};
  torch::nn::AnyModule box_head;
  FastRCNNPredictor box_predictor{nullptr};
  MultiScaleRoIAlign mask_roi_pool{nullptr}, keypoint_roi_pool{nullptr};
  torch::nn::AnyModule mask_head, mask_predictor, keypoint_head, keypoint_predictor;
  BoxCoder box_coder;
  RoIHeadsOptions options;
};
TORCH_MODULE(RoIHeads);

// Mask probabilities of each box's predicted label: [K_i, 1, M, M] per image.
std::vector<torch::Tensor> maskrcnn_inference(const torch::Tensor& mask_logits, const std::vector<torch::Tensor>& labels);
// Keypoints [K, num_keypoints, 3] (x, y, 1) and their scores [K, num_keypoints] from heatmaps of `rois`.
std::pair<torch::Tensor, torch::Tensor> heatmaps_to_keypoints(const torch::Tensor& maps, const torch::Tensor& rois);

}  // namespace mz
