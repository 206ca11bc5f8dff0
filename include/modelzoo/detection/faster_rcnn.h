// The two-stage detectors (torchvision.models.detection.generalized_rcnn / faster_rcnn): transform ->
// backbone -> rpn -> roi_heads -> transform.postprocess, each a sub-module callable on its own, over
// any backbone.
//
//   auto backbone = mz::mobilenet_v2()->features;
//   auto model = mz::FasterRCNN(backbone, {.num_classes = 2, .out_channels = 1280,
//                                          .rpn_anchor_generator = mz::AnchorGenerator({{32, 64, 128}}, {{0.5, 1.0, 2.0}}),
//                                          .box_roi_pool = mz::MultiScaleRoIAlign({"0"}, 7, 2)});
//   model->eval();
//   std::vector<mz::Detection> out = model->forward({torch::rand({3, 300, 400}), torch::rand({3, 500, 400})});
#pragma once

#include <array>
#include <optional>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>

#include "modelzoo/detection/anchor_utils.h"
#include "modelzoo/detection/backbone_utils.h"
#include "modelzoo/detection/detection.h"
#include "modelzoo/detection/poolers.h"
#include "modelzoo/detection/roi_heads.h"
#include "modelzoo/detection/rpn.h"
#include "modelzoo/detection/transform.h"
#include "modelzoo/options.h"
#include "modelzoo/weights_enums/classification.h"
#include "modelzoo/weights_enums/detection.h"

namespace mz {

// The constructor arguments of FasterRCNN, MaskRCNN and KeypointRCNN, named as torchvision's kwargs
// (in their order; the mask_* and keypoint_* ones belong to MaskRCNN and KeypointRCNN only).
// Empty / null members take torchvision's defaults. out_channels is C++'s: the backbone's channels
// when the backbone does not state them (torchvision reads backbone.out_channels); without it they are
// found by running the backbone once on a zero image. The training-only arguments (fg/bg IoU
// thresholds, sampler sizes) are absent: training is not implemented.
struct RCNNOptions {
  std::optional<std::int64_t> num_classes;
  std::optional<std::int64_t> out_channels;
  std::vector<std::int64_t> min_size;  // default (800,), KeypointRCNN (640, 672, ..., 800); eval uses the last
  std::int64_t max_size = 1333;
  std::vector<double> image_mean = {0.485, 0.456, 0.406};
  std::vector<double> image_std = {0.229, 0.224, 0.225};
  AnchorGenerator rpn_anchor_generator{nullptr};  // default sizes (32,) ... (512,), ratios (0.5, 1, 2)
  RPNHead rpn_head{nullptr};                      // default RPNHead(out_channels, anchors per location)
  std::int64_t rpn_pre_nms_top_n_train = 2000, rpn_pre_nms_top_n_test = 1000;
  std::int64_t rpn_post_nms_top_n_train = 2000, rpn_post_nms_top_n_test = 1000;
  double rpn_nms_thresh = 0.7;
  double rpn_score_thresh = 0.0;
  MultiScaleRoIAlign box_roi_pool{nullptr};  // default featmap_names "0".."3" (those present), 7x7, ratio 2
  torch::nn::AnyModule box_head;             // default TwoMLPHead(out_channels * 7 * 7, 1024)
  FastRCNNPredictor box_predictor{nullptr};  // default FastRCNNPredictor(1024, num_classes)
  double box_score_thresh = 0.05, box_nms_thresh = 0.5;
  std::int64_t box_detections_per_img = 100;
  std::optional<std::array<double, 4>> bbox_reg_weights;  // default (10, 10, 5, 5)
  MultiScaleRoIAlign mask_roi_pool{nullptr};  // MaskRCNN: default 14x14
  torch::nn::AnyModule mask_head, mask_predictor;
  MultiScaleRoIAlign keypoint_roi_pool{nullptr};  // KeypointRCNN: default 14x14
  torch::nn::AnyModule keypoint_head, keypoint_predictor;
  std::optional<std::int64_t> num_keypoints;  // KeypointRCNN: default 17
};
using FasterRCNNOptions = RCNNOptions;
using MaskRCNNOptions = RCNNOptions;
using KeypointRCNNOptions = RCNNOptions;

// torchvision's GeneralizedRCNN (inference). State-dict names: backbone.*, rpn.*, roi_heads.*.
class GeneralizedRCNNImpl : public torch::nn::Module {
 public:
  // One detection per image, boxes in the image's own pixels. Throws mz::UsageError for an empty list
  // or an image that is not 3 x H x W float; training is not implemented (call eval()).
  std::vector<Detection> forward(const std::vector<torch::Tensor>& images);
  // Named inputs ("input" or "input.0", ...) -> named detections (mz forward, mz::Model::run).
  TensorDict run(const TensorDict& inputs) { return detections_to_dict(forward(images_from_inputs(inputs))); }
  // The raw outputs before any selection (see mz::Model::dense): the RPN head's "rpn.objectness.<l>" and
  // "rpn.pred_bbox_deltas.<l>" per level, and the RoI heads' on fixed boxes (at 1, 1/2, ..., 1/16 of each image,
  // as many as the RPN passes on): "roi_heads.class_logits", "roi_heads.box_regression", and
  // "roi_heads.mask_logits" or "roi_heads.keypoint_logits" (on the first five).
  TensorDict dense(const TensorDict& inputs);
  static TensorDict example_inputs(std::int64_t batch, std::int64_t size);
  // The backbone's maps ({"0": map} for a backbone that gives one tensor).
  TensorDict features(const torch::Tensor& batch) { return backbone.forward(batch); }

  GeneralizedRCNNTransform transform{nullptr};
  Backbone backbone;
  RegionProposalNetwork rpn{nullptr};
  RoIHeads roi_heads{nullptr};

 protected:
  enum class Kind { Faster, Mask, Keypoint };
  GeneralizedRCNNImpl(Backbone backbone, RCNNOptions options, Kind kind);
};

class FasterRCNNImpl : public GeneralizedRCNNImpl {
 public:
  FasterRCNNImpl(Backbone backbone, FasterRCNNOptions options) : GeneralizedRCNNImpl(std::move(backbone), std::move(options), Kind::Faster) {}
};
// The holder takes braced options: FasterRCNN(backbone, {.num_classes = 2}).
class FasterRCNN : public torch::nn::ModuleHolder<FasterRCNNImpl> {
 public:
  using torch::nn::ModuleHolder<FasterRCNNImpl>::ModuleHolder;
  FasterRCNN(Backbone backbone, FasterRCNNOptions options)
      : ModuleHolder(std::make_shared<FasterRCNNImpl>(std::move(backbone), std::move(options))) {}
};

class MaskRCNNImpl : public GeneralizedRCNNImpl {
 public:
  MaskRCNNImpl(Backbone backbone, MaskRCNNOptions options) : GeneralizedRCNNImpl(std::move(backbone), std::move(options), Kind::Mask) {}
};
// The holder takes braced options: MaskRCNN(backbone, {.num_classes = 2}).
class MaskRCNN : public torch::nn::ModuleHolder<MaskRCNNImpl> {
 public:
  using torch::nn::ModuleHolder<MaskRCNNImpl>::ModuleHolder;
  MaskRCNN(Backbone backbone, MaskRCNNOptions options)
      : ModuleHolder(std::make_shared<MaskRCNNImpl>(std::move(backbone), std::move(options))) {}
};

class KeypointRCNNImpl : public GeneralizedRCNNImpl {
 public:
  KeypointRCNNImpl(Backbone backbone, KeypointRCNNOptions options)
      : GeneralizedRCNNImpl(std::move(backbone), std::move(options), Kind::Keypoint) {}
};
// The holder takes braced options: KeypointRCNN(backbone, {.num_classes = 2}).
class KeypointRCNN : public torch::nn::ModuleHolder<KeypointRCNNImpl> {
 public:
  using torch::nn::ModuleHolder<KeypointRCNNImpl>::ModuleHolder;
  KeypointRCNN(Backbone backbone, KeypointRCNNOptions options)
      : ModuleHolder(std::make_shared<KeypointRCNNImpl>(std::move(backbone), std::move(options))) {}
};

// The keyword arguments of the R-CNN builders: the builder's own (num_classes, weights_backbone,
// trainable_backbone_layers, and num_keypoints for keypointrcnn) and the model's that JSON can carry.
// Unset model kwargs take the builder's defaults (torchvision's {**defaults, **kwargs}), then the model's.
// weights_backbone defaults to the backbone's ImageNet weights (none for the v2 builders).
template <class BackboneWeights, bool Keypoints = false, bool PretrainedBackbone = true>
struct RCNNBuilderOptions {
  std::optional<std::int64_t> num_classes;
  std::optional<BackboneWeights> weights_backbone =
      PretrainedBackbone ? std::optional<BackboneWeights>(BackboneWeights::IMAGENET1K_V1) : std::nullopt;
  std::optional<std::int64_t> trainable_backbone_layers;
  std::optional<std::int64_t> num_keypoints;  // keypointrcnn_resnet50_fpn only
  std::optional<SizeList> min_size;
  std::optional<std::int64_t> max_size;
  std::optional<std::vector<double>> image_mean, image_std;
  std::optional<std::int64_t> rpn_pre_nms_top_n_test, rpn_post_nms_top_n_test;
  std::optional<std::int64_t> rpn_pre_nms_top_n_train, rpn_post_nms_top_n_train;
  std::optional<double> rpn_nms_thresh, rpn_score_thresh;
  std::optional<double> box_score_thresh, box_nms_thresh;
  std::optional<std::int64_t> box_detections_per_img;
};

#define MZ_RCNN_BUILDER_FIELDS(X)                                                                               \
  X(num_classes) X(weights_backbone) X(trainable_backbone_layers) X(min_size) X(max_size) X(image_mean)        \
  X(image_std) X(rpn_pre_nms_top_n_test) X(rpn_post_nms_top_n_test) X(rpn_pre_nms_top_n_train)                  \
  X(rpn_post_nms_top_n_train) X(rpn_nms_thresh) X(rpn_score_thresh) X(box_score_thresh) X(box_nms_thresh)        \
  X(box_detections_per_img)
template <class W, bool K, bool P>
void to_json(nlohmann::json& j, const RCNNBuilderOptions<W, K, P>& o) {
  j = nlohmann::json::object();
#define MZ_TO(f) j[#f] = o.f;
  MZ_RCNN_BUILDER_FIELDS(MZ_TO)
#undef MZ_TO
  if constexpr (K) j["num_keypoints"] = o.num_keypoints;
}
template <class W, bool K, bool P>
void from_json(const nlohmann::json& j, RCNNBuilderOptions<W, K, P>& o) {
#define MZ_FROM(f) \
  if (j.contains(#f)) j.at(#f).get_to(o.f);
  MZ_RCNN_BUILDER_FIELDS(MZ_FROM)
#undef MZ_FROM
  if constexpr (K)
    if (j.contains("num_keypoints")) j.at("num_keypoints").get_to(o.num_keypoints);
}
#undef MZ_RCNN_BUILDER_FIELDS

using FasterRCNNResNet50Options = RCNNBuilderOptions<ResNet50_Weights>;
using FasterRCNNResNet50V2Options = RCNNBuilderOptions<ResNet50_Weights, false, false>;
using FasterRCNNMobileNetV3Options = RCNNBuilderOptions<MobileNet_V3_Large_Weights>;

// The weights enums (FasterRCNN_ResNet50_FPN_Weights, ...) are generated into
// <modelzoo/weights_enums/detection.h> from weights/records/faster_rcnn.cpp. With weights, the backbone
// uses FrozenBatchNorm2d (eps 0 for COCO_V1 of the v1 model), as with weights_backbone; without either,
// BatchNorm2d and every layer trains.
FasterRCNN fasterrcnn_resnet50_fpn(std::optional<FasterRCNN_ResNet50_FPN_Weights> weights = {},
                                   FasterRCNNResNet50Options options = {});
FasterRCNN fasterrcnn_resnet50_fpn_v2(std::optional<FasterRCNN_ResNet50_FPN_V2_Weights> weights = {},
                                      FasterRCNNResNet50V2Options options = {});
FasterRCNN fasterrcnn_mobilenet_v3_large_fpn(std::optional<FasterRCNN_MobileNet_V3_Large_FPN_Weights> weights = {},
                                             FasterRCNNMobileNetV3Options options = {});
FasterRCNN fasterrcnn_mobilenet_v3_large_320_fpn(
    std::optional<FasterRCNN_MobileNet_V3_Large_320_FPN_Weights> weights = {},
    FasterRCNNMobileNetV3Options options = {});

}  // namespace mz
