// What the single-stage detector builders (RetinaNet, FCOS, SSD, SSDLite) share: torchvision's
// builder prologue (weights force num_classes and drop the backbone weights), freezing the first layers of a backbone, and building without random
// init when a checkpoint overwrites everything.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <torch/nn/modules/container/sequential.h>

#include "builders/common.h"
#include "modelzoo/detection/backbone_utils.h"
#include "modelzoo/detection/detection.h"
#include "modelzoo/detection/ssd.h"
#include "modelzoo/detection/transform.h"
#include "modelzoo/models/resnet.h"

namespace mz::detail {

// num_classes: len(categories) with weights (a different value given is an error), else the given
// value or 91. With weights, the backbone weights are dropped (`weights_backbone.reset()`).
template <class W, class Options>
std::int64_t detection_num_classes(const std::optional<W>& weights, Options& o) {
  if (!weights) return o.num_classes.value_or(91);
  o.weights_backbone.reset();
  return override_param(o.num_classes, static_cast<std::int64_t>(weights->meta().categories.value().size()),
                        "num_classes", weights->name());
}

// The 3x3 convolution with bias and padding 1 of the single-stage heads' outputs and trunks.
inline nn::Conv2d head_conv3x3(std::int64_t in, std::int64_t out) {
  return nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).padding(1));
}

// requires_grad = false for every parameter of layers[0, freeze_before).
void freeze_before(const torch::nn::Sequential& layers, std::size_t freeze_before);

// make() builds the model. With weights, it builds the architecture only (no random init, no
// backbone download), applies configure(model) (the weights' own configuration, e.g. eps 0), then
// loads them, unless the caller is itself inside an ArchitectureOnly scope.
template <class W, class Make, class Configure>
auto build_detector(const std::optional<W>& weights, Make make, Configure configure) {
  if (!weights) return make();
  std::optional<decltype(make())> model;
  {
    ArchitectureOnly uninitialised;
    model = make();
  }
  configure(*model);
  if (!architecture_only()) load_weights(**model, *weights);
  return *model;
}
template <class W, class Make>
auto build_detector(const std::optional<W>& weights, Make make) {
  return build_detector(weights, make, [](auto&) {});
}

}  // namespace mz::detail

namespace mz::detail {

// The anchors of each level: H * W * A for every map, A being the total over sum(H * W) (RetinaNet,
// FCOS).
std::vector<std::int64_t> anchors_per_level(const std::vector<torch::Tensor>& features, std::int64_t total);

// One image's detections from dense per-level predictions, as RetinaNet and FCOS postprocess them:
// per level, the flattened scores [anchors * classes] above score_thresh, their top `topk`, anchor
// index = i / classes and label = i % classes, decode(regression[anchor], anchors[anchor]), clipped
// to image_size; then batched NMS over all levels and the best detections_per_img.
Detection dense_detections(const std::vector<torch::Tensor>& scores, const std::vector<torch::Tensor>& regression,
                           const std::vector<torch::Tensor>& anchors,
                           const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>& decode,
                           const ImageSize& image_size, double score_thresh, std::int64_t topk, double nms_thresh,
                           std::int64_t detections_per_img);

// torchvision's GeneralizedRCNNTransform as RetinaNet and FCOS configure it.
template <class O>
GeneralizedRCNNTransform detector_transform(const O& o) {
  return GeneralizedRCNNTransform(o.min_size, o.max_size,
                                  o.image_mean.value_or(std::vector<double>{0.485, 0.456, 0.406}),
                                  o.image_std.value_or(std::vector<double>{0.229, 0.224, 0.225}));
}

// resnet50 with torchvision's detection norm: FrozenBatchNorm2d when anything is pretrained, else
// BatchNorm2d.
ResNet resnet50_with_norm(const std::optional<ResNet50_Weights>& weights, bool is_trained);

// Original sizes (height, width) of a list of images.
std::vector<ImageSize> image_sizes(const std::vector<torch::Tensor>& images);

// RetinaNet's and FCOS's eval forward: transform -> backbone -> head and anchors -> postprocess per level
// -> input image pixels.
template <class Impl>
std::vector<Detection> dense_forward(Impl& model, const std::vector<torch::Tensor>& images) {
  const auto original_sizes = image_sizes(images);
  ImageList list = model.transform->forward(images);
  auto maps = model.features(list.tensors);
  auto head_outputs = model.head->forward(maps);
  auto anchors = model.anchor_generator->forward(list, maps);
  auto per_level = anchors_per_level(maps, head_outputs.cls_logits.size(1));
  auto detections = model.postprocess_detections(head_outputs, anchors, per_level, list.image_sizes);
  return model.transform->postprocess(detections, list.image_sizes, original_sizes);
}

// A single-stage detector's head outputs for named inputs (transform -> backbone -> head), what its dense()
// returns.
template <class Impl>
auto head_outputs(Impl& model, const TensorDict& inputs) {
  const ImageList list = model.transform->forward(images_from_inputs(inputs));
  return model.head->forward(model.features(list.tensors));
}

}  // namespace mz::detail

namespace mz::detail {

// Head outputs [N, A * K, H, W] per level -> [N, sum(H * W * A), K] (SSD, RetinaNet, FCOS).
torch::Tensor flatten_levels(const std::vector<torch::Tensor>& outputs, std::int64_t k);

// PyTorch's default init for `module`, then N(0, std) weights and `bias` for each of its convolutions
// (RetinaNet and FCOS heads: 0.01; SSDLite: 0.03). Nothing inside an ArchitectureOnly scope.
void normal_init(torch::nn::Module& module, double std, double bias = 0.0);

// partial(nn.GroupNorm, 32).
ops::NormLayer group_norm32();

}  // namespace mz::detail
