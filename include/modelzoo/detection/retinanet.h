// RetinaNet (torchvision.models.detection.retinanet): its heads, the model over any backbone, and
// retinanet_resnet50_fpn / _v2.
//
//   auto backbone = mz::resnet_fpn_backbone("resnet50", {}, mz::ops::batch_norm2d(), 5, {2, 3, 4},
//                                           mz::LastLevelP6P7(256, 256));
//   mz::RetinaNet model(backbone, /*num_classes=*/91);
//   model->eval();
//   std::vector<mz::Detection> detections = model->forward({torch::rand({3, 300, 400})});
#pragma once

#include <optional>
#include <vector>

#include <torch/nn/modules/container/sequential.h>

#include "modelzoo/checkpoint.h"
#include "modelzoo/detection/anchor_utils.h"
#include "modelzoo/detection/backbone_utils.h"
#include "modelzoo/detection/detection.h"
#include "modelzoo/detection/transform.h"
#include "modelzoo/layers/nn.h"
#include "modelzoo/layers/ops.h"
#include "modelzoo/models/resnet.h"
#include "modelzoo/options.h"
#include "modelzoo/weights_enums/detection.h"

namespace mz {

// torchvision's RetinaNetClassificationHead: conv (4 x Conv2dNormActivation 3x3, norm_layer or none),
// then cls_logits (3x3, num_anchors * num_classes; bias -log((1 - prior) / prior)). Output
// [N, sum(H * W * A), num_classes]. Loads pre-version-2 checkpoints ("conv.2.weight" -> "conv.1.0.weight").
class RetinaNetClassificationHeadImpl : public torch::nn::Module, public CheckpointAdapter {
 public:
  RetinaNetClassificationHeadImpl(std::int64_t in_channels, std::int64_t num_anchors, std::int64_t num_classes,
                                  double prior_probability = 0.01, const ops::NormLayer& norm_layer = nullptr);
  torch::Tensor forward(const std::vector<torch::Tensor>& features);
  void adapt_checkpoint(IncomingState& state, const std::string& prefix) override;
  ops::SequentialBlock conv{nullptr};
  nn::Conv2d cls_logits{nullptr};
  std::int64_t num_classes, num_anchors;
};
TORCH_MODULE(RetinaNetClassificationHead);

// torchvision's RetinaNetRegressionHead: conv as above, then bbox_reg (3x3, num_anchors * 4). Output
// [N, sum(H * W * A), 4].
class RetinaNetRegressionHeadImpl : public torch::nn::Module, public CheckpointAdapter {
 public:
  RetinaNetRegressionHeadImpl(std::int64_t in_channels, std::int64_t num_anchors,
                              const ops::NormLayer& norm_layer = nullptr);
  torch::Tensor forward(const std::vector<torch::Tensor>& features);
  void adapt_checkpoint(IncomingState& state, const std::string& prefix) override;
  ops::SequentialBlock conv{nullptr};
  nn::Conv2d bbox_reg{nullptr};
};
TORCH_MODULE(RetinaNetRegressionHead);

struct RetinaNetHeadOutputs {
  torch::Tensor cls_logits;       // [N, anchors, num_classes]
  torch::Tensor bbox_regression;  // [N, anchors, 4]
};

class RetinaNetHeadImpl : public torch::nn::Module {
 public:
  RetinaNetHeadImpl(std::int64_t in_channels, std::int64_t num_anchors, std::int64_t num_classes,
                    const ops::NormLayer& norm_layer = nullptr);
  RetinaNetHeadOutputs forward(const std::vector<torch::Tensor>& features);
  RetinaNetClassificationHead classification_head{nullptr};
  RetinaNetRegressionHead regression_head{nullptr};
};
TORCH_MODULE(RetinaNetHead);

// Keyword arguments of torchvision's RetinaNet class (transform ones included).
struct RetinaNetOptions {
  SizeList min_size = {800};
  std::int64_t max_size = 1333;
  std::optional<std::vector<double>> image_mean;  // default ImageNet's
  std::optional<std::vector<double>> image_std;
  double score_thresh = 0.05;
  double nms_thresh = 0.5;
  std::int64_t detections_per_img = 300;
  double fg_iou_thresh = 0.5;  // training only
  double bg_iou_thresh = 0.4;  // training only
  std::int64_t topk_candidates = 1000;
};

// torchvision's RetinaNet in eval mode: transform -> backbone -> head + anchors -> per level: sigmoid,
// score_thresh, top-k, decode, clip -> batched NMS -> detections_per_img -> input image pixels.
// The anchor generator defaults to sizes (32, 40, 50) * 2^level and ratios (0.5, 1, 2); the head to
// RetinaNetHead over the backbone's out_channels (probed when the backbone does not state them).
class RetinaNetImpl : public torch::nn::Module {
 public:
  RetinaNetImpl(Backbone backbone, std::int64_t num_classes, RetinaNetOptions options = {},
                AnchorGenerator anchor_generator = nullptr, RetinaNetHead head = nullptr);
  std::vector<Detection> forward(const std::vector<torch::Tensor>& images);
  std::vector<torch::Tensor> features(const torch::Tensor& batched_images);
  // The head outputs and anchors of the whole batch, with the anchor count of each level.
  std::vector<Detection> postprocess_detections(const RetinaNetHeadOutputs& head_outputs,
                                                const std::vector<torch::Tensor>& anchors,
                                                const std::vector<std::int64_t>& num_anchors_per_level,
                                                const std::vector<ImageSize>& image_sizes);
  TensorDict run(const TensorDict& inputs) { return detections_to_dict(forward(images_from_inputs(inputs))); }
  // The head's raw outputs, before any selection (see mz::Model::dense): "cls_logits" and "bbox_regression".
  TensorDict dense(const TensorDict& inputs);

  Backbone backbone;
  AnchorGenerator anchor_generator{nullptr};
  RetinaNetHead head{nullptr};
  GeneralizedRCNNTransform transform{nullptr};
  RetinaNetOptions options;
};
class RetinaNet : public torch::nn::ModuleHolder<RetinaNetImpl> {
 public:
  using torch::nn::ModuleHolder<RetinaNetImpl>::ModuleHolder;
  RetinaNet(Backbone backbone, std::int64_t num_classes, RetinaNetOptions options = {},
            AnchorGenerator anchor_generator = nullptr, RetinaNetHead head = nullptr)
      : ModuleHolder(std::make_shared<RetinaNetImpl>(std::move(backbone), num_classes, std::move(options),
                                                        std::move(anchor_generator), std::move(head))) {}
};

// Python keyword arguments of retinanet_resnet50_fpn(_v2): the builder's, then RetinaNet's (the base).
struct RetinaNetResNet50FPNOptions : RetinaNetOptions {
  std::optional<std::int64_t> num_classes;  // default 91, or len(categories) with weights
  std::optional<ResNet50_Weights> weights_backbone = ResNet50_Weights::IMAGENET1K_V1;
  std::optional<std::int64_t> trainable_backbone_layers;  // 0..5, default 3 (5 without any weights)
};
#define MZ_RETINANET_BUILDER_FIELDS                                                                                \
  num_classes, weights_backbone, trainable_backbone_layers, min_size, max_size, image_mean, image_std, score_thresh, \
      nms_thresh, detections_per_img, fg_iou_thresh, bg_iou_thresh, topk_candidates
MZ_OPTIONS(RetinaNetResNet50FPNOptions, MZ_RETINANET_BUILDER_FIELDS)

// retinanet_resnet50_fpn_v2's: the same, but weights_backbone defaults to none.
struct RetinaNetResNet50FPNV2Options : RetinaNetResNet50FPNOptions {
  RetinaNetResNet50FPNV2Options() { weights_backbone.reset(); }
};
MZ_OPTIONS(RetinaNetResNet50FPNV2Options, MZ_RETINANET_BUILDER_FIELDS)

// The weights enums are generated into <modelzoo/weights_enums/detection.h> from weights/records/retinanet.cpp.
// v1: FrozenBatchNorm2d in the backbone when anything is pretrained, P6 from P5, no norm in the head;
// COCO_V1 sets eps 0 in the frozen norms. v2: BatchNorm2d, P6 from C5, GroupNorm(32) in the head.
RetinaNet retinanet_resnet50_fpn(std::optional<RetinaNet_ResNet50_FPN_Weights> weights = {},
                                 RetinaNetResNet50FPNOptions options = {});
RetinaNet retinanet_resnet50_fpn_v2(std::optional<RetinaNet_ResNet50_FPN_V2_Weights> weights = {},
                                    RetinaNetResNet50FPNV2Options options = {});

}  // namespace mz
