// RetinaNet, as in torchvision.models.detection.retinanet.
#include "modelzoo/detection/retinanet.h"

#include <cmath>

#include "builders/detection/single_stage.h"
#include "modelzoo/detection/box_coder.h"
#include "registry/register.h"

namespace mz {
namespace {

// 4 x Conv2dNormActivation(in, in, 3x3, norm_layer), the trunk of both RetinaNet heads.
ops::SequentialBlock head_trunk(std::int64_t channels, const ops::NormLayer& norm) {
  ops::SequentialBlock conv;
  for (int i = 0; i < 4; ++i)
    conv->push_back(ops::Conv2dNormActivation(ops::Conv2dNormActivationOptions(channels, channels).norm_layer(norm)));
  return conv;
}

// torchvision's _v1_to_v2_weights: conv.{2i}.{weight,bias} -> conv.{i}.0.{weight,bias}.
void v1_to_v2_weights(IncomingState& state, const std::string& prefix) {
  for (int i = 0; i < 4; ++i)
    for (const char* type : {"weight", "bias"})
      state.rename(prefix + "conv." + std::to_string(2 * i) + "." + type,
                   prefix + "conv." + std::to_string(i) + ".0." + type);
}

}  // namespace

RetinaNetClassificationHeadImpl::RetinaNetClassificationHeadImpl(std::int64_t in_channels, std::int64_t num_anchors_,
                                                                 std::int64_t num_classes_, double prior_probability,
                                                                 const ops::NormLayer& norm_layer)
    : num_classes(num_classes_), num_anchors(num_anchors_) {
  conv = register_module("conv", head_trunk(in_channels, norm_layer));
  cls_logits = register_module("cls_logits", detail::head_conv3x3(in_channels, num_anchors * num_classes));
  detail::normal_init(*conv, 0.01);
  detail::normal_init(*cls_logits, 0.01, -std::log((1 - prior_probability) / prior_probability));
}

torch::Tensor RetinaNetClassificationHeadImpl::forward(const std::vector<torch::Tensor>& features) {
  std::vector<torch::Tensor> out;
  for (const auto& f : features) out.push_back(cls_logits(conv(f)));
  return detail::flatten_levels(out, num_classes);
}

void RetinaNetClassificationHeadImpl::adapt_checkpoint(IncomingState& state, const std::string& prefix) {
  v1_to_v2_weights(state, prefix);
}

RetinaNetRegressionHeadImpl::RetinaNetRegressionHeadImpl(std::int64_t in_channels, std::int64_t num_anchors,
                                                         const ops::NormLayer& norm_layer) {
  conv = register_module("conv", head_trunk(in_channels, norm_layer));
  bbox_reg = register_module("bbox_reg", detail::head_conv3x3(in_channels, num_anchors * 4));
  detail::normal_init(*this, 0.01);
}

torch::Tensor RetinaNetRegressionHeadImpl::forward(const std::vector<torch::Tensor>& features) {
  std::vector<torch::Tensor> out;
  for (const auto& f : features) out.push_back(bbox_reg(conv(f)));
  return detail::flatten_levels(out, 4);
}

void RetinaNetRegressionHeadImpl::adapt_checkpoint(IncomingState& state, const std::string& prefix) {
  v1_to_v2_weights(state, prefix);
}

RetinaNetHeadImpl::RetinaNetHeadImpl(std::int64_t in_channels, std::int64_t num_anchors, std::int64_t num_classes,
                                     const ops::NormLayer& norm_layer) {
  classification_head = register_module(
      "classification_head", RetinaNetClassificationHead(in_channels, num_anchors, num_classes, 0.01, norm_layer));
  regression_head = register_module("regression_head", RetinaNetRegressionHead(in_channels, num_anchors, norm_layer));
}

RetinaNetHeadOutputs RetinaNetHeadImpl::forward(const std::vector<torch::Tensor>& features) {
  return {classification_head->forward(features), regression_head->forward(features)};
}

namespace {

// torchvision's _default_anchorgen: sizes x, int(x * 2^(1/3)), int(x * 2^(2/3)) for x = 32 ... 512.
AnchorGenerator retinanet_anchorgen() {
  std::vector<std::vector<double>> sizes;
  for (std::int64_t x : {32, 64, 128, 256, 512})
    sizes.push_back({static_cast<double>(x), std::floor(x * std::pow(2.0, 1.0 / 3)), std::floor(x * std::pow(2.0, 2.0 / 3))});
  return AnchorGenerator(sizes, std::vector<std::vector<double>>(sizes.size(), {0.5, 1.0, 2.0}));
}

}  // namespace

RetinaNetImpl::RetinaNetImpl(Backbone backbone_, std::int64_t num_classes, RetinaNetOptions options_,
                             AnchorGenerator anchor_generator_, RetinaNetHead head_)
    : backbone(std::move(backbone_)), options(std::move(options_)) {
  register_module("backbone", backbone.module);
  if (!anchor_generator_) anchor_generator_ = retinanet_anchorgen();
  anchor_generator = register_module("anchor_generator", std::move(anchor_generator_));
  if (!head_)
    head_ = RetinaNetHead(backbone.channels("RetinaNet"),
                          anchor_generator->num_anchors_per_location().at(0), num_classes);
  head = register_module("head", std::move(head_));
  transform = register_module("transform", detail::detector_transform(options));
}

std::vector<torch::Tensor> RetinaNetImpl::features(const torch::Tensor& batched_images) {
  return backbone.forward(batched_images).values();
}

std::vector<Detection> RetinaNetImpl::forward(const std::vector<torch::Tensor>& images) {
  return detail::dense_forward(*this, images);
}

TensorDict RetinaNetImpl::dense(const TensorDict& inputs) {
  const auto h = detail::head_outputs(*this, inputs);
  return {{"cls_logits", h.cls_logits}, {"bbox_regression", h.bbox_regression}};
}

std::vector<Detection> RetinaNetImpl::postprocess_detections(const RetinaNetHeadOutputs& head_outputs,
                                                             const std::vector<torch::Tensor>& anchors,
                                                             const std::vector<std::int64_t>& num_anchors_per_level,
                                                             const std::vector<ImageSize>& image_sizes) {
  static const BoxCoder box_coder({1.0, 1.0, 1.0, 1.0});
  auto decode = [](const torch::Tensor& codes, const torch::Tensor& boxes) {
    return box_coder.decode_single(codes, boxes);
  };
  std::vector<Detection> detections;
  for (std::size_t i = 0; i < image_sizes.size(); ++i) {
    auto logits = head_outputs.cls_logits[i].split(num_anchors_per_level);
    std::vector<torch::Tensor> scores;
    for (const auto& l : logits) scores.push_back(torch::sigmoid(l));
    detections.push_back(detail::dense_detections(
        scores, head_outputs.bbox_regression[i].split(num_anchors_per_level), anchors[i].split(num_anchors_per_level),
        decode, image_sizes[i], options.score_thresh, options.topk_candidates, options.nms_thresh,
        options.detections_per_img));
  }
  return detections;
}

RetinaNet retinanet_resnet50_fpn(std::optional<RetinaNet_ResNet50_FPN_Weights> weights,
                                 RetinaNetResNet50FPNOptions o) {
  const std::int64_t num_classes = detail::detection_num_classes(weights, o);
  const bool is_trained = weights.has_value() || o.weights_backbone.has_value();
  const std::int64_t trainable = validate_trainable_layers(is_trained, o.trainable_backbone_layers, 5, 3);
  return detail::build_detector(
      weights,
      [&] {
        auto body = detail::resnet50_with_norm(o.weights_backbone, is_trained);
        auto backbone = resnet_fpn_extractor(body.ptr(), trainable, {2, 3, 4}, LastLevelP6P7(256, 256));
        return RetinaNet(backbone, num_classes, o);
      },
      [&](RetinaNet& model) {
        if (weights == RetinaNet_ResNet50_FPN_Weights::COCO_V1) overwrite_eps(*model, 0.0);
      });
}

RetinaNet retinanet_resnet50_fpn_v2(std::optional<RetinaNet_ResNet50_FPN_V2_Weights> weights,
                                    RetinaNetResNet50FPNV2Options o) {
  const std::int64_t num_classes = detail::detection_num_classes(weights, o);
  const bool is_trained = weights.has_value() || o.weights_backbone.has_value();
  const std::int64_t trainable = validate_trainable_layers(is_trained, o.trainable_backbone_layers, 5, 3);
  return detail::build_detector(weights, [&] {
    auto body = resnet50(o.weights_backbone);
    auto backbone = resnet_fpn_extractor(body.ptr(), trainable, {2, 3, 4}, LastLevelP6P7(2048, 256));
    AnchorGenerator anchors = retinanet_anchorgen();
    RetinaNetHead head(256, anchors->num_anchors_per_location().at(0), num_classes, detail::group_norm32());
    return RetinaNet(backbone, num_classes, o, anchors, head);
  });
}

MZ_REGISTER_MODEL(retinanet_resnet50_fpn);
MZ_REGISTER_MODEL(retinanet_resnet50_fpn_v2);

}  // namespace mz
