// SSDLite, as in torchvision.models.detection.ssdlite.
#include "modelzoo/detection/ssdlite.h"

#include "builders/detection/single_stage.h"
#include "registry/register.h"

namespace mz {
namespace {

using ops::Act;
using ops::Conv2dNormActivation;
using ops::Conv2dNormActivationOptions;

// PyTorch's defaults, then torchvision's _normal_init (N(0, 0.03) convolutions, zero biases).
template <class M>
M initialised(M module) {
  detail::normal_init(*module, 0.03);
  return module;
}

ops::SequentialBlock prediction_block(std::int64_t in, std::int64_t out, const ops::NormLayer& norm) {
  return ops::SequentialBlock(
      Conv2dNormActivation(Conv2dNormActivationOptions(in, in, 3).groups(in).norm_layer(norm).activation_layer(
          Act::ReLU6)),
      nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1)));
}

ops::SequentialBlock extra_block(std::int64_t in, std::int64_t out, const ops::NormLayer& norm) {
  const std::int64_t mid = out / 2;
  auto cna = [&](std::int64_t i, std::int64_t o, std::int64_t k, std::int64_t stride, std::int64_t groups) {
    return Conv2dNormActivation(
        Conv2dNormActivationOptions(i, o, k).stride(stride).groups(groups).norm_layer(norm).activation_layer(Act::ReLU6));
  };
  return ops::SequentialBlock(cna(in, mid, 1, 1, 1), cna(mid, mid, 3, 2, mid), cna(mid, out, 1, 1, 1));
}

SSDScoringHead prediction_head(const std::vector<std::int64_t>& in_channels, const std::vector<std::int64_t>& anchors,
                               std::int64_t columns, const ops::NormLayer& norm) {
  if (in_channels.size() != anchors.size())
    throw UsageError("SSDLite head", "in_channels and num_anchors should have the same length");
  std::vector<torch::nn::AnyModule> blocks;
  for (std::size_t i = 0; i < in_channels.size(); ++i)
    blocks.emplace_back(prediction_block(in_channels[i], columns * anchors[i], norm));
  return initialised(SSDScoringHead(std::move(blocks), columns));
}

}  // namespace

SSDHead ssdlite_head(const std::vector<std::int64_t>& in_channels, const std::vector<std::int64_t>& num_anchors,
                     std::int64_t num_classes, const ops::NormLayer& norm_layer) {
  return SSDHead(prediction_head(in_channels, num_anchors, num_classes, norm_layer),
                 prediction_head(in_channels, num_anchors, 4, norm_layer));
}

SSDLiteFeatureExtractorMobileNetImpl::SSDLiteFeatureExtractorMobileNetImpl(const torch::nn::Sequential& backbone,
                                                                           std::size_t c4_pos,
                                                                           const ops::NormLayer& norm_layer,
                                                                           double width_mult, std::int64_t min_depth) {
  auto* c4 = c4_pos < backbone->size() ? backbone->ptr(c4_pos)->as<mobilenetv3::InvertedResidual>() : nullptr;
  if (c4 == nullptr) throw UsageError("SSDLiteFeatureExtractorMobileNet", "backbone[c4_pos] must be an inverted residual");
  if (c4->use_res_connect)
    throw UsageError("SSDLiteFeatureExtractorMobileNet", "backbone[c4_pos].use_res_connect should be false");
  auto any = [&](std::size_t i) { return backbone->begin()[i]; };
  ops::SequentialBlock until_c4, rest, c4_tail;
  for (std::size_t i = 0; i < c4_pos; ++i) until_c4->push_back(any(i));
  until_c4->push_back(c4->block->begin()[0]);
  for (std::size_t j = 1; j < c4->block->size(); ++j) c4_tail->push_back(std::to_string(j), c4->block->begin()[j]);
  rest->push_back(c4_tail);
  for (std::size_t i = c4_pos + 1; i < backbone->size(); ++i) rest->push_back(any(i));
  features = torch::nn::Sequential(until_c4, rest);
  register_module("features", features);

  std::int64_t last = 0;
  for (const auto& p : backbone->ptr(backbone->size() - 1)->parameters()) {
    last = p.size(0);  // the last Conv2dNormActivation's conv weight comes first
    break;
  }
  auto depth = [&](std::int64_t d) { return std::max(min_depth, static_cast<std::int64_t>(d * width_mult)); };
  blocks_ = {until_c4, rest};
  const std::vector<std::pair<std::int64_t, std::int64_t>> sizes = {
      {last, depth(512)}, {depth(512), depth(256)}, {depth(256), depth(256)}, {depth(256), depth(128)}};
  for (const auto& [in, out] : sizes) {
    auto block = initialised(extra_block(in, out, norm_layer));
    extra->push_back(block);
    blocks_.push_back(block);
  }
  register_module("extra", extra);
}

TensorDict SSDLiteFeatureExtractorMobileNetImpl::forward(const torch::Tensor& input) {
  TensorDict out;
  torch::Tensor x = input;
  for (auto& block : blocks_) {
    x = block->forward(x);
    out.insert(std::to_string(out.size()), x);
  }
  return out;
}

SSD ssdlite320_mobilenet_v3_large(std::optional<SSDLite320_MobileNet_V3_Large_Weights> weights,
                                  SSDLite320MobileNetV3LargeOptions o) {
  const std::int64_t num_classes = detail::detection_num_classes(weights, o);
  const std::int64_t trainable = validate_trainable_layers(weights.has_value() || o.weights_backbone.has_value(),
                                                          o.trainable_backbone_layers, 6, 6);
  return detail::build_detector(weights, [&] {
    const ops::NormLayer norm = ops::batch_norm2d(0.001, 0.03);
    MobileNetV3Options mo;
    mo.reduced_tail = !o.weights_backbone.has_value();  // Table 6 of the MobileNetV3 paper
    mo.norm_layer = norm;
    MobileNetV3 mobilenet = mobilenet_v3_large(o.weights_backbone, mo);
    if (!o.weights_backbone) detail::normal_init(*mobilenet, 0.03);
    // torchvision's _mobilenet_extractor: stages start at 0, at each block with _is_cn and at the last layer.
    const auto& features = mobilenet->features;
    std::vector<std::size_t> stage_indices = {0};
    for (std::size_t i = 0; i < features->size(); ++i)
      if (auto* block = features->ptr(i)->as<mobilenetv3::InvertedResidual>(); block && block->is_cn) stage_indices.push_back(i);
    stage_indices.push_back(features->size() - 1);
    const std::size_t num_stages = stage_indices.size();
    detail::freeze_before(features, trainable == 0 ? features->size() : stage_indices[num_stages - trainable]);
    SSDLiteFeatureExtractorMobileNet extractor(features, stage_indices[num_stages - 2], norm);
    Backbone backbone(extractor);
    DefaultBoxGenerator anchors(std::vector<std::vector<std::int64_t>>(6, {2, 3}), 0.2, 0.95);
    const ImageSize size = {320, 320};
    const auto channels = retrieve_out_channels(backbone, size);
    if (channels.size() != anchors->aspect_ratios.size())
      throw UsageError("ssdlite320_mobilenet_v3_large", "backbone levels and anchor levels differ");
    SSDHead head = ssdlite_head(channels, anchors->num_anchors_per_location(), num_classes, norm);
    return SSD(backbone, anchors, size, num_classes, o, head);
  });
}

MZ_REGISTER_MODEL(ssdlite320_mobilenet_v3_large);

}  // namespace mz
