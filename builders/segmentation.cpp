// Segmentation heads and builders, as in torchvision.models.segmentation.
#include "modelzoo/segmentation.h"

#include "builders/common.h"
#include "registry/register.h"

namespace mz {
namespace {

torch::Tensor upsample(const torch::Tensor& x, torch::IntArrayRef size) {
  return torch::upsample_bilinear2d(x, size, /*align_corners=*/false);
}

nn::Conv2d conv(std::int64_t in, std::int64_t out, std::int64_t k, std::int64_t padding = 0,
                std::int64_t dilation = 1, bool bias = false) {
  return nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).padding(padding).dilation(dilation).bias(bias));
}

// Conv, BN, ReLU appended to a Sequential (ASPP branches and heads).
void conv_bn_relu(torch::nn::SequentialImpl& seq, std::int64_t in, std::int64_t out, std::int64_t k,
                  std::int64_t padding = 0, std::int64_t dilation = 1) {
  seq.push_back(conv(in, out, k, padding, dilation));
  seq.push_back(nn::BatchNorm2d(out));
  seq.push_back(torch::nn::ReLU());
}

// ASPPPooling: global average pool, 1x1 conv, BN, ReLU, upsampled back to the input size.
class ASPPPoolingImpl : public ops::SequentialBlockImpl {
 public:
  ASPPPoolingImpl(std::int64_t in, std::int64_t out) {
    push_back(torch::nn::AdaptiveAvgPool2d(1));
    conv_bn_relu(*this, in, out, 1);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return upsample(ops::SequentialBlockImpl::forward(x), {x.size(-2), x.size(-1)});
  }
};
TORCH_MODULE(ASPPPooling);

}  // namespace

FCNHeadImpl::FCNHeadImpl(std::int64_t in_channels, std::int64_t channels) {
  const std::int64_t inter = in_channels / 4;
  conv_bn_relu(*this, in_channels, inter, 3, 1);
  push_back(torch::nn::Dropout(0.1));
  push_back(conv(inter, channels, 1, 0, 1, /*bias=*/true));
}

ASPPImpl::ASPPImpl(std::int64_t in_channels, std::vector<std::int64_t> rates, std::int64_t out_channels) {
  convs = register_module("convs", torch::nn::ModuleList());
  ops::SequentialBlock first;
  conv_bn_relu(*first, in_channels, out_channels, 1);
  convs->push_back(first);
  for (std::int64_t rate : rates) {
    ops::SequentialBlock branch;
    conv_bn_relu(*branch, in_channels, out_channels, 3, rate, rate);
    convs->push_back(branch);
  }
  convs->push_back(ASPPPooling(in_channels, out_channels));
  project = register_module("project", ops::SequentialBlock());
  conv_bn_relu(*project, static_cast<std::int64_t>(convs->size()) * out_channels, out_channels, 1);
  project->push_back(torch::nn::Dropout(0.5));
}

torch::Tensor ASPPImpl::forward(const torch::Tensor& x) {
  std::vector<torch::Tensor> branches;
  for (std::size_t i = 0; i + 1 < convs->size(); ++i) branches.push_back(convs[i]->as<ops::SequentialBlockImpl>()->forward(x));
  branches.push_back(convs[convs->size() - 1]->as<ASPPPoolingImpl>()->forward(x));
  return project->forward(torch::cat(branches, 1));
}

DeepLabHeadImpl::DeepLabHeadImpl(std::int64_t in_channels, std::int64_t num_classes, std::vector<std::int64_t> rates) {
  push_back(ASPP(in_channels, std::move(rates)));
  conv_bn_relu(*this, 256, 256, 3, 1);
  push_back(conv(256, num_classes, 1, 0, 1, /*bias=*/true));
}

void SegmentationModelImpl::init(FeatureExtractor bb, torch::nn::AnyModule cls, torch::nn::AnyModule aux) {
  classifier = std::move(cls);
  aux_classifier = std::move(aux);
  backbone = register_module("backbone", bb);
  register_module("classifier", classifier.ptr());
  if (!aux_classifier.is_empty()) register_module("aux_classifier", aux_classifier.ptr());
}

TensorMap SegmentationModelImpl::forward(const torch::Tensor& x) {
  const std::vector<std::int64_t> size = {x.size(-2), x.size(-1)};
  auto features = backbone->forward(x);
  TensorMap result;
  result.insert("out", upsample(classifier.forward(features["out"]), size));
  if (!aux_classifier.is_empty()) result.insert("aux", upsample(aux_classifier.forward(features["aux"]), size));
  return result;
}

LRASPPHeadImpl::LRASPPHeadImpl(std::int64_t low_channels, std::int64_t high_channels, std::int64_t num_classes,
                               std::int64_t inter_channels) {
  cbr = register_module("cbr", ops::SequentialBlock());
  conv_bn_relu(*cbr, high_channels, inter_channels, 1);
  scale = register_module("scale", ops::SequentialBlock());
  scale->push_back(torch::nn::AdaptiveAvgPool2d(1));
  scale->push_back(conv(high_channels, inter_channels, 1));
  scale->push_back(torch::nn::Sigmoid());
  low_classifier = register_module("low_classifier", conv(low_channels, num_classes, 1, 0, 1, true));
  high_classifier = register_module("high_classifier", conv(inter_channels, num_classes, 1, 0, 1, true));
}

torch::Tensor LRASPPHeadImpl::forward(const torch::Tensor& low, const torch::Tensor& high) {
  auto x = cbr->forward(high) * scale->forward(high);
  x = upsample(x, {low.size(-2), low.size(-1)});
  return low_classifier(low) + high_classifier(x);
}

LRASPPImpl::LRASPPImpl(FeatureExtractor bb, std::int64_t low_channels, std::int64_t high_channels,
                       std::int64_t num_classes, std::int64_t inter_channels) {
  backbone = register_module("backbone", bb);
  classifier = register_module("classifier", LRASPPHead(low_channels, high_channels, num_classes, inter_channels));
}

TensorMap LRASPPImpl::forward(const torch::Tensor& x) {
  auto features = backbone->forward(x);
  TensorMap result;
  result.insert("out", upsample(classifier->forward(features["low"], features["high"]), {x.size(-2), x.size(-1)}));
  return result;
}

namespace {

// torchvision's builder prologue: with weights, num_classes and aux_loss come from them and the
// backbone weights are dropped; without, num_classes defaults to 21.
template <class W, class BW>
std::pair<std::int64_t, bool> configure(const std::optional<W>& weights, SegmentationOptions<BW>& o) {
  if (!weights) return {o.num_classes.value_or(21), o.aux_loss.value_or(false)};
  o.weights_backbone.reset();
  const std::string name = weights->name();
  return {detail::override_param(o.num_classes, static_cast<std::int64_t>(weights->meta().categories.size()),
                                 "num_classes", name),
          detail::override_param(o.aux_loss, true, "aux_loss", name)};
}

// Heads are initialised (PyTorch defaults) unless the model's weights overwrite them; the backbone
// keeps what its own builder gave it (ImageNet weights or its family's init).
template <class Model, class W>
Model finish(Model model, const std::optional<W>& weights) {
  detail::load_or_init(*model, weights, [&] {
    for (const auto& child : model->named_children())
      if (child.key() != "backbone") nn::reset_parameters(*child.value());
  });
  return model;
}

FeatureExtractor resnet_backbone(ResNet backbone, bool aux) {
  std::vector<std::pair<std::string, std::string>> nodes;
  if (aux) nodes.emplace_back("layer3", "aux");
  nodes.emplace_back("layer4", "out");
  return feature_extractor(backbone, nodes);
}

ResNetOptions dilated_resnet() { return {.replace_stride_with_dilation = {false, true, true}}; }

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
  return mobilenet_v3_large(w, {.dilated = true})->features;
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

MZ_REGISTER_MODEL(fcn_resnet50, "segmentation");
MZ_REGISTER_MODEL(fcn_resnet101, "segmentation");
MZ_REGISTER_MODEL(deeplabv3_resnet50, "segmentation");
MZ_REGISTER_MODEL(deeplabv3_resnet101, "segmentation");
MZ_REGISTER_MODEL(deeplabv3_mobilenet_v3_large, "segmentation");
MZ_REGISTER_MODEL(lraspp_mobilenet_v3_large, "segmentation");

}  // namespace mz
