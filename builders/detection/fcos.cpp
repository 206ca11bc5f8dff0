// FCOS, as in torchvision.models.detection.fcos.
#include "modelzoo/detection/fcos.h"

#include <cmath>

#include "builders/detection/single_stage.h"
#include "modelzoo/detection/box_coder.h"
#include "registry/register.h"

namespace mz {
namespace {

// num_convs x (Conv2d 3x3 with bias, norm, ReLU): keys conv.0, conv.1, conv.3, conv.4, ...
ops::SequentialBlock fcos_trunk(std::int64_t channels, std::int64_t num_convs, const ops::NormLayer& norm) {
  ops::SequentialBlock conv;
  for (std::int64_t i = 0; i < num_convs; ++i) {
    conv->push_back(detail::head_conv3x3(channels, channels));
    conv->push_back(norm(channels));
    conv->push_back(ops::Activation(ops::Act::ReLU));
  }
  return conv;
}

}  // namespace

FCOSClassificationHeadImpl::FCOSClassificationHeadImpl(std::int64_t in_channels, std::int64_t num_anchors_,
                                                       std::int64_t num_classes_, std::int64_t num_convs,
                                                       double prior_probability, ops::NormLayer norm_layer)
    : num_classes(num_classes_), num_anchors(num_anchors_) {
  if (!norm_layer) norm_layer = detail::group_norm32();
  conv = register_module("conv", fcos_trunk(in_channels, num_convs, norm_layer));
  cls_logits = register_module("cls_logits", detail::head_conv3x3(in_channels, num_anchors * num_classes));
  detail::normal_init(*conv, 0.01);
  detail::normal_init(*cls_logits, 0.01, -std::log((1 - prior_probability) / prior_probability));
}

torch::Tensor FCOSClassificationHeadImpl::forward(const std::vector<torch::Tensor>& features) {
  std::vector<torch::Tensor> out;
  for (const auto& f : features) out.push_back(cls_logits(conv(f)));
  return detail::flatten_levels(out, num_classes);
}

FCOSRegressionHeadImpl::FCOSRegressionHeadImpl(std::int64_t in_channels, std::int64_t num_anchors,
                                               std::int64_t num_convs, ops::NormLayer norm_layer) {
  if (!norm_layer) norm_layer = detail::group_norm32();
  conv = register_module("conv", fcos_trunk(in_channels, num_convs, norm_layer));
  bbox_reg = register_module("bbox_reg", detail::head_conv3x3(in_channels, num_anchors * 4));
  bbox_ctrness = register_module("bbox_ctrness", detail::head_conv3x3(in_channels, num_anchors));
  detail::normal_init(*this, 0.01);
}

std::pair<torch::Tensor, torch::Tensor> FCOSRegressionHeadImpl::forward(const std::vector<torch::Tensor>& features) {
  std::vector<torch::Tensor> regression, ctrness;
  for (const auto& f : features) {
    auto x = conv(f);
    regression.push_back(torch::relu(bbox_reg(x)));
    ctrness.push_back(bbox_ctrness(x));
  }
  return {detail::flatten_levels(regression, 4), detail::flatten_levels(ctrness, 1)};
}

FCOSHeadImpl::FCOSHeadImpl(std::int64_t in_channels, std::int64_t num_anchors, std::int64_t num_classes,
                           std::int64_t num_convs) {
  classification_head = register_module(
      "classification_head", FCOSClassificationHead(in_channels, num_anchors, num_classes, num_convs));
  regression_head = register_module("regression_head", FCOSRegressionHead(in_channels, num_anchors, num_convs));
}

FCOSHeadOutputs FCOSHeadImpl::forward(const std::vector<torch::Tensor>& features) {
  auto [regression, ctrness] = regression_head->forward(features);
  return {classification_head->forward(features), regression, ctrness};
}

FCOSImpl::FCOSImpl(Backbone backbone_, std::int64_t num_classes, FCOSOptions options_,
                   AnchorGenerator anchor_generator_, FCOSHead head_)
    : backbone(std::move(backbone_)), options(std::move(options_)) {
  register_module("backbone", backbone.module);
  if (!anchor_generator_) {
    std::vector<std::vector<double>> sizes = {{8}, {16}, {32}, {64}, {128}};  // the levels' strides
    anchor_generator_ = AnchorGenerator(sizes, std::vector<std::vector<double>>(sizes.size(), {1.0}));
  }
  const std::int64_t anchors = anchor_generator_->num_anchors_per_location().at(0);
  if (anchors != 1)
    throw UsageError("FCOS", "the anchor generator must give one anchor per location, got " + std::to_string(anchors));
  anchor_generator = register_module("anchor_generator", std::move(anchor_generator_));
  if (!head_) head_ = FCOSHead(backbone.channels("FCOS"), 1, num_classes);
  head = register_module("head", std::move(head_));
  transform = register_module("transform", detail::detector_transform(options));
}

std::vector<torch::Tensor> FCOSImpl::features(const torch::Tensor& batched_images) {
  return backbone.forward(batched_images).values();
}

std::vector<Detection> FCOSImpl::forward(const std::vector<torch::Tensor>& images) {
  return detail::dense_forward(*this, images);
}

TensorDict FCOSImpl::dense(const TensorDict& inputs) {
  const auto h = detail::head_outputs(*this, inputs);
  return {{"cls_logits", h.cls_logits}, {"bbox_regression", h.bbox_regression}, {"bbox_ctrness", h.bbox_ctrness}};
}

std::vector<Detection> FCOSImpl::postprocess_detections(const FCOSHeadOutputs& head_outputs,
                                                        const std::vector<torch::Tensor>& anchors,
                                                        const std::vector<std::int64_t>& num_anchors_per_level,
                                                        const std::vector<ImageSize>& image_sizes) {
  static const BoxLinearCoder box_coder(/*normalize_by_size=*/true);
  auto decode = [](const torch::Tensor& codes, const torch::Tensor& boxes) { return box_coder.decode(codes, boxes); };
  std::vector<Detection> detections;
  for (std::size_t i = 0; i < image_sizes.size(); ++i) {
    auto logits = head_outputs.cls_logits[i].split(num_anchors_per_level);
    auto ctrness = head_outputs.bbox_ctrness[i].split(num_anchors_per_level);
    std::vector<torch::Tensor> scores;
    for (std::size_t l = 0; l < logits.size(); ++l)
      scores.push_back(torch::sqrt(torch::sigmoid(logits[l]) * torch::sigmoid(ctrness[l])));
    detections.push_back(detail::dense_detections(
        scores, head_outputs.bbox_regression[i].split(num_anchors_per_level), anchors[i].split(num_anchors_per_level),
        decode, image_sizes[i], options.score_thresh, options.topk_candidates, options.nms_thresh,
        options.detections_per_img));
  }
  return detections;
}

FCOS fcos_resnet50_fpn(std::optional<FCOS_ResNet50_FPN_Weights> weights, FCOSResNet50FPNOptions o) {
  const std::int64_t num_classes = detail::detection_num_classes(weights, o);
  const bool is_trained = weights.has_value() || o.weights_backbone.has_value();
  const std::int64_t trainable = validate_trainable_layers(is_trained, o.trainable_backbone_layers, 5, 3);
  return detail::build_detector(weights, [&] {
    auto body = detail::resnet50_with_norm(o.weights_backbone, is_trained);
    auto backbone = resnet_fpn_extractor(body.ptr(), trainable, {2, 3, 4}, LastLevelP6P7(256, 256));
    return FCOS(backbone, num_classes, o);
  });
}

MZ_REGISTER_MODEL(fcos_resnet50_fpn);

}  // namespace mz
