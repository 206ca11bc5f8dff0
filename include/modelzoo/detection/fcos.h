// FCOS (torchvision.models.detection.fcos): its heads, the model over any backbone, and
// fcos_resnet50_fpn.
#pragma once

#include <optional>
#include <vector>

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

// torchvision's FCOSClassificationHead: conv = num_convs x (Conv2d 3x3 with bias, norm_layer
// (default GroupNorm(32)), ReLU), then cls_logits. Output [N, sum(H * W * A), num_classes].
class FCOSClassificationHeadImpl : public torch::nn::Module {
 public:
  FCOSClassificationHeadImpl(std::int64_t in_channels, std::int64_t num_anchors, std::int64_t num_classes,
                             std::int64_t num_convs = 4, double prior_probability = 0.01,
                             ops::NormLayer norm_layer = nullptr);
  torch::Tensor forward(const std::vector<torch::Tensor>& features);
  ops::SequentialBlock conv{nullptr};
  nn::Conv2d cls_logits{nullptr};
  std::int64_t num_classes, num_anchors;
};
TORCH_MODULE(FCOSClassificationHead);

struct FCOSHeadOutputs {
  torch::Tensor cls_logits;       // [N, anchors, num_classes]
  torch::Tensor bbox_regression;  // [N, anchors, 4], relu'd distances
  torch::Tensor bbox_ctrness;     // [N, anchors, 1]
};

// torchvision's FCOSRegressionHead: the same trunk, then bbox_reg (relu) and bbox_ctrness.
class FCOSRegressionHeadImpl : public torch::nn::Module {
 public:
  FCOSRegressionHeadImpl(std::int64_t in_channels, std::int64_t num_anchors, std::int64_t num_convs = 4,
                         ops::NormLayer norm_layer = nullptr);
  // (bbox_regression, bbox_ctrness)
  std::pair<torch::Tensor, torch::Tensor> forward(const std::vector<torch::Tensor>& features);
  ops::SequentialBlock conv{nullptr};
  nn::Conv2d bbox_reg{nullptr}, bbox_ctrness{nullptr};
};
TORCH_MODULE(FCOSRegressionHead);

class FCOSHeadImpl : public torch::nn::Module {
 public:
  FCOSHeadImpl(std::int64_t in_channels, std::int64_t num_anchors, std::int64_t num_classes, std::int64_t num_convs = 4);
  FCOSHeadOutputs forward(const std::vector<torch::Tensor>& features);
  FCOSClassificationHead classification_head{nullptr};
  FCOSRegressionHead regression_head{nullptr};
};
TORCH_MODULE(FCOSHead);

// Keyword arguments of torchvision's FCOS class (transform ones included).
struct FCOSOptions {
  SizeList min_size = {800};
  std::int64_t max_size = 1333;
  std::optional<std::vector<double>> image_mean;  // default ImageNet's
  std::optional<std::vector<double>> image_std;
  double center_sampling_radius = 1.5;  // training only
  double score_thresh = 0.2;
  double nms_thresh = 0.6;
  std::int64_t detections_per_img = 100;
  std::int64_t topk_candidates = 1000;
};

// torchvision's FCOS in eval mode: transform -> backbone -> head + anchors (one per location) ->
// per level: sqrt(sigmoid(cls) * sigmoid(ctrness)), score_thresh, top-k, BoxLinearCoder decode, clip
// -> batched NMS -> detections_per_img -> input image pixels. The anchor generator defaults to sizes
// 8, 16, 32, 64, 128 with ratio 1; it must give one anchor per location.
class FCOSImpl : public torch::nn::Module {
 public:
  FCOSImpl(Backbone backbone, std::int64_t num_classes, FCOSOptions options = {},
           AnchorGenerator anchor_generator = nullptr, FCOSHead head = nullptr);
  std::vector<Detection> forward(const std::vector<torch::Tensor>& images);
  std::vector<torch::Tensor> features(const torch::Tensor& batched_images);
  std::vector<Detection> postprocess_detections(const FCOSHeadOutputs& head_outputs,
                                                const std::vector<torch::Tensor>& anchors,
                                                const std::vector<std::int64_t>& num_anchors_per_level,
                                                const std::vector<ImageSize>& image_sizes);
  TensorDict run(const TensorDict& inputs) { return detections_to_dict(forward(images_from_inputs(inputs))); }
  // The head's raw outputs, before any selection (see mz::Model::dense): "cls_logits", "bbox_regression" and
  // "bbox_ctrness".
  TensorDict dense(const TensorDict& inputs);

  Backbone backbone;
  AnchorGenerator anchor_generator{nullptr};
  FCOSHead head{nullptr};
  GeneralizedRCNNTransform transform{nullptr};
  FCOSOptions options;
};
class FCOS : public torch::nn::ModuleHolder<FCOSImpl> {
 public:
  using torch::nn::ModuleHolder<FCOSImpl>::ModuleHolder;
  FCOS(Backbone backbone, std::int64_t num_classes, FCOSOptions options = {},
       AnchorGenerator anchor_generator = nullptr, FCOSHead head = nullptr)
      : ModuleHolder(std::make_shared<FCOSImpl>(std::move(backbone), num_classes, std::move(options),
                                                   std::move(anchor_generator), std::move(head))) {}
};

// Python keyword arguments of fcos_resnet50_fpn: the builder's, then FCOS's (the base).
struct FCOSResNet50FPNOptions : FCOSOptions {
  std::optional<std::int64_t> num_classes;  // default 91, or len(categories) with weights
  std::optional<ResNet50_Weights> weights_backbone = ResNet50_Weights::IMAGENET1K_V1;
  std::optional<std::int64_t> trainable_backbone_layers;  // 0..5, default 3 (5 without any weights)
};
MZ_OPTIONS(FCOSResNet50FPNOptions, num_classes, weights_backbone, trainable_backbone_layers, min_size, max_size,
           image_mean, image_std, center_sampling_radius, score_thresh, nms_thresh, detections_per_img,
           topk_candidates)

// The weights enum FCOS_ResNet50_FPN_Weights is generated into <modelzoo/weights_enums/detection.h> from
// weights/records/fcos.cpp. FrozenBatchNorm2d in the backbone when anything is pretrained (eps kept).
FCOS fcos_resnet50_fpn(std::optional<FCOS_ResNet50_FPN_Weights> weights = {}, FCOSResNet50FPNOptions options = {});

}  // namespace mz
