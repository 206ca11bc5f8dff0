// The segmentation builders, as in torchvision.models.segmentation.
#include "modelzoo/models/segmentation.h"

#include "builders/common.h"
#include "registry/register.h"

namespace mz {
namespace {

// torchvision's builder prologue: with weights, num_classes and aux_loss come from them and the
// backbone weights are dropped; without, num_classes defaults to 21.
template <class W, class BW>
std::pair<std::int64_t, bool> configure(const std::optional<W>& weights, SegmentationOptions<BW>& o) {
  if (!weights) return {o.num_classes.value_or(21), o.aux_loss.value_or(false)};
  o.weights_backbone.reset();
  const std::string name = weights->name();
  return {detail::override_param(o.num_classes, static_cast<std::int64_t>(weights->meta().categories.value().size()),
                                 "num_classes", name),
          detail::override_param(o.aux_loss, true, "aux_loss", name)};
}

// Heads are initialised (PyTorch defaults) unless the model's weights overwrite them; the backbone
// keeps what its own builder gave it (ImageNet weights or its family's init).
template <class Model, class W>
Model finish(Model model, const std::optional<W>& weights) {
  detail::load_or_init(*model, weights, [] {}, /*keep=*/{"backbone"});
  return model;
}

FeatureExtractor resnet_backbone(ResNet backbone, bool aux) {
  std::vector<std::pair<std::string, std::string>> nodes;
  if (aux) nodes.emplace_back("layer3", "aux");
  nodes.emplace_back("layer4", "out");
  return feature_extractor(backbone, nodes);
}

ResNetOptions dilated_resnet() {
  ResNetOptions o;
  o.replace_stride_with_dilation = {false, true, true};
  return o;
}

template <class Model, class Head, class W, class BW, class Backbone>
Model make_resnet_segmentation(const std::optional<W>& weights, SegmentationOptions<BW> o, Backbone backbone_builder) {
  const auto [num_classes, aux] = configure(weights, o);
  auto backbone = resnet_backbone(backbone_builder(o.weights_backbone, dilated_resnet()), aux);
  return finish(Model(backbone, Head(2048, num_classes), aux ? torch::nn::AnyModule(FCNHead(1024, num_classes))
                                                              : torch::nn::AnyModule()),
                weights);
}

// mobilenet_v3_large(dilated=True).features, cut at its C2 (features.4) and C5 (features.16) stages.
constexpr std::int64_t kMobileNetC2 = 4, kMobileNetC5 = 16;

torch::nn::Sequential mobilenet_features(const std::optional<MobileNet_V3_Large_Weights>& w) {
  MobileNetV3Options o;
  o.dilated = true;
  return mobilenet_v3_large(w, o)->features;
}

std::int64_t out_channels_of(const torch::nn::Sequential& features, std::int64_t index) {
  auto m = features->ptr(index);
  if (auto* block = dynamic_cast<mobilenetv3::InvertedResidualImpl*>(m.get())) return block->out_channels;
  if (auto* cna = dynamic_cast<ops::Conv2dNormActivationImpl*>(m.get())) return cna->options.out_channels();
  throw std::logic_error("unexpected mobilenet_v3 feature block");
}

}  // namespace

FCN fcn_resnet50(std::optional<FCN_ResNet50_Weights> w, ResNet50SegmentationOptions o) {
  return make_resnet_segmentation<FCN, FCNHead>(w, o, resnet50);
}
FCN fcn_resnet101(std::optional<FCN_ResNet101_Weights> w, ResNet101SegmentationOptions o) {
  return make_resnet_segmentation<FCN, FCNHead>(w, o, resnet101);
}
DeepLabV3 deeplabv3_resnet50(std::optional<DeepLabV3_ResNet50_Weights> w, ResNet50SegmentationOptions o) {
  return make_resnet_segmentation<DeepLabV3, DeepLabHead>(w, o, resnet50);
}
DeepLabV3 deeplabv3_resnet101(std::optional<DeepLabV3_ResNet101_Weights> w, ResNet101SegmentationOptions o) {
  return make_resnet_segmentation<DeepLabV3, DeepLabHead>(w, o, resnet101);
}

DeepLabV3 deeplabv3_mobilenet_v3_large(std::optional<DeepLabV3_MobileNet_V3_Large_Weights> w,
                                       MobileNetV3SegmentationOptions o) {
  const auto [num_classes, aux] = configure(w, o);
  auto features = mobilenet_features(o.weights_backbone);
  std::vector<std::pair<std::string, std::string>> nodes;
  if (aux) nodes.emplace_back(std::to_string(kMobileNetC2), "aux");
  nodes.emplace_back(std::to_string(kMobileNetC5), "out");
  auto head = DeepLabHead(out_channels_of(features, kMobileNetC5), num_classes);
  auto aux_head = aux ? torch::nn::AnyModule(FCNHead(out_channels_of(features, kMobileNetC2), num_classes))
                      : torch::nn::AnyModule();
  return finish(DeepLabV3(feature_extractor(features, nodes), head, aux_head), w);
}

LRASPP lraspp_mobilenet_v3_large(std::optional<LRASPP_MobileNet_V3_Large_Weights> w,
                                 MobileNetV3SegmentationOptions o) {
  if (o.aux_loss.value_or(false))
    throw UsageError("lraspp_mobilenet_v3_large", "this model does not use auxiliary loss (aux_loss must be false)");
  o.aux_loss.reset();
  std::int64_t num_classes = o.num_classes.value_or(21);
  if (w) {
    num_classes = detail::num_classes(o.num_classes, std::optional<Weights>(*w));
    o.weights_backbone.reset();
  }
  auto features = mobilenet_features(o.weights_backbone);
  auto backbone = feature_extractor(features, {{std::to_string(kMobileNetC2), "low"}, {std::to_string(kMobileNetC5), "high"}});
  return finish(LRASPP(backbone, out_channels_of(features, kMobileNetC2), out_channels_of(features, kMobileNetC5),
                       num_classes),
                w);
}

MZ_REGISTER_MODEL(fcn_resnet50);
MZ_REGISTER_MODEL(fcn_resnet101);
MZ_REGISTER_MODEL(deeplabv3_resnet50);
MZ_REGISTER_MODEL(deeplabv3_resnet101);
MZ_REGISTER_MODEL(deeplabv3_mobilenet_v3_large);
MZ_REGISTER_MODEL(lraspp_mobilenet_v3_large);

}  // namespace mz
