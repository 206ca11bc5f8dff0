// Feature pyramid, backbones with FPN, and the ResNet / MobileNet extractors of torchvision's detection.
#include "modelzoo/detection/backbone_utils.h"

#include <functional>
#include <map>

#include <torch/nn/init.h>

#include "modelzoo/errors.h"
#include "modelzoo/models/mobilenetv3.h"
#include "modelzoo/models/resnet.h"

namespace mz {
namespace {

// kaiming_uniform_(a=1) and zero bias: torchvision's init of the FPN and P6/P7 convolutions.
void init_fpn_conv(nn::Conv2dImpl& conv) {
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(conv.weight, 1);
  if (conv.bias.defined()) conv.bias.zero_();
}

}  // namespace

void LastLevelMaxPoolImpl::forward(std::vector<torch::Tensor>& results, const std::vector<torch::Tensor>&,
                                   std::vector<std::string>& names) {
  names.emplace_back("pool");
  results.push_back(torch::max_pool2d(results.back(), 1, 2, 0));
}

LastLevelP6P7Impl::LastLevelP6P7Impl(std::int64_t in, std::int64_t out) : use_P5(in == out) {
  p6 = register_module("p6", nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(2).padding(1)));
  p7 = register_module("p7", nn::Conv2d(torch::nn::Conv2dOptions(out, out, 3).stride(2).padding(1)));
  if (!architecture_only()) {
    init_fpn_conv(*p6);
    init_fpn_conv(*p7);
  }
}

void LastLevelP6P7Impl::forward(std::vector<torch::Tensor>& results, const std::vector<torch::Tensor>& x,
                                std::vector<std::string>& names) {
  auto p6_out = p6->forward(use_P5 ? results.back() : x.back());
  auto p7_out = p7->forward(torch::relu(p6_out));
  results.push_back(p6_out);
  results.push_back(p7_out);
  names.emplace_back("p6");
  names.emplace_back("p7");
}

FeaturePyramidNetworkImpl::FeaturePyramidNetworkImpl(const std::vector<std::int64_t>& in_channels_list,
                                                     std::int64_t out_channels, ExtraFPNBlock extra,
                                                     ops::NormLayer norm_layer) {
  inner_blocks = register_module("inner_blocks", torch::nn::ModuleList());
  layer_blocks = register_module("layer_blocks", torch::nn::ModuleList());
  for (std::int64_t in : in_channels_list) {
    if (in <= 0) throw UsageError("FeaturePyramidNetwork", "in_channels=" + std::to_string(in) + " is not supported");
    inner_blocks->push_back(ops::Conv2dNormActivation(ops::Conv2dNormActivationOptions(in, out_channels, 1)
                                                          .padding(torch::ExpandingArray<2>(0))
                                                          .norm_layer(norm_layer)
                                                          .activation_layer(std::nullopt)));
    layer_blocks->push_back(ops::Conv2dNormActivation(
        ops::Conv2dNormActivationOptions(out_channels, out_channels, 3).norm_layer(norm_layer).activation_layer(std::nullopt)));
  }
  if (!architecture_only()) {
    nn::reset_parameters(*this);
    nn::for_each<nn::Conv2dImpl>(*this, init_fpn_conv);
  }
  extra_blocks = extra.impl;
  if (extra_blocks) register_module("extra_blocks", extra_blocks);
}

TensorDict FeaturePyramidNetworkImpl::forward(const TensorDict& input) {
  std::vector<std::string> names = input.keys();
  std::vector<torch::Tensor> x = input.values();
  const auto n = static_cast<std::int64_t>(x.size());
  if (n != static_cast<std::int64_t>(inner_blocks->size()))
    throw UsageError("FeaturePyramidNetwork", "expected " + std::to_string(inner_blocks->size()) + " feature maps, got " +
                                                  std::to_string(n));
  auto inner = [&](std::int64_t i) { return inner_blocks[i]->as<ops::Conv2dNormActivationImpl>()->forward(x[i]); };
  auto layer = [&](std::int64_t i, const torch::Tensor& t) {
    return layer_blocks[i]->as<ops::Conv2dNormActivationImpl>()->forward(t);
  };
  auto last_inner = inner(n - 1);
  std::vector<torch::Tensor> results(static_cast<std::size_t>(n));
  results[n - 1] = layer(n - 1, last_inner);
  for (std::int64_t i = n - 2; i >= 0; --i) {
    auto lateral = inner(i);
    auto top_down = torch::upsample_nearest2d(last_inner, {lateral.size(-2), lateral.size(-1)});
    last_inner = lateral + top_down;
    results[i] = layer(i, last_inner);
  }
  if (extra_blocks) extra_blocks->forward(results, x, names);
  TensorDict out;
  for (std::size_t i = 0; i < names.size(); ++i) out.insert(names[i], results[i]);
  return out;
}

void FeaturePyramidNetworkImpl::adapt_checkpoint(IncomingState& state, const std::string& prefix) {
  for (const char* block : {"inner_blocks", "layer_blocks"})
    for (std::size_t i = 0; i < inner_blocks->size(); ++i)
      for (const char* type : {"weight", "bias"}) {
        const std::string base = prefix + block + "." + std::to_string(i) + ".";
        state.rename(base + type, base + "0." + type);
      }
}

BackboneWithFPNImpl::BackboneWithFPNImpl(std::shared_ptr<torch::nn::Module> backbone,
                                         std::vector<std::pair<std::string, std::string>> return_layers,
                                         const std::vector<std::int64_t>& in_channels_list, std::int64_t out,
                                         ExtraFPNBlock extra_blocks, ops::NormLayer norm_layer)
    : out_channels(out) {
  if (return_layers.size() != in_channels_list.size())
    throw UsageError("BackboneWithFPN", "return_layers and in_channels_list differ in length");
  if (!extra_blocks.impl) extra_blocks = LastLevelMaxPool();
  body = register_module("body", FeatureExtractor(std::move(backbone), std::move(return_layers)));
  fpn = register_module("fpn", FeaturePyramidNetwork(in_channels_list, out, extra_blocks, std::move(norm_layer)));
}

std::int64_t validate_trainable_layers(bool is_trained, std::optional<std::int64_t> given, std::int64_t max_value,
                                       std::int64_t default_value) {
  // Without pretrained weights, torchvision warns about a given value and trains every layer.
  if (!is_trained) given = max_value;
  const std::int64_t k = given.value_or(default_value);
  if (k < 0 || k > max_value)
    throw UsageError("trainable_backbone_layers", "should be in the range [0," + std::to_string(max_value) + "], got " +
                                                      std::to_string(k));
  return k;
}

namespace {
bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }
}  // namespace

BackboneWithFPN resnet_fpn_extractor(std::shared_ptr<ResNetImpl> backbone, std::int64_t trainable_layers,
                                     std::vector<std::int64_t> returned_layers, ExtraFPNBlock extra_blocks,
                                     ops::NormLayer norm_layer) {
  if (trainable_layers < 0 || trainable_layers > 5)
    throw UsageError("resnet_fpn_extractor",
                     "trainable_layers should be in the range [0,5], got " + std::to_string(trainable_layers));
  std::vector<std::string> train = {"layer4", "layer3", "layer2", "layer1", "conv1"};
  train.resize(static_cast<std::size_t>(trainable_layers));
  if (trainable_layers == 5) train.emplace_back("bn1");
  for (auto& p : backbone->named_parameters()) {
    bool trains = false;
    for (const auto& layer : train) trains = trains || starts_with(p.key(), layer);
    if (!trains) p.value().set_requires_grad(false);
  }
  if (returned_layers.empty()) returned_layers = {1, 2, 3, 4};
  for (auto k : returned_layers)
    if (k <= 0 || k >= 5)
      throw UsageError("resnet_fpn_extractor", "each returned layer should be in the range [1,4], got " + std::to_string(k));
  std::vector<std::pair<std::string, std::string>> return_layers;
  std::vector<std::int64_t> in_channels;
  const std::int64_t stage2 = backbone->inplanes() / 8;
  for (std::size_t v = 0; v < returned_layers.size(); ++v) {
    return_layers.emplace_back("layer" + std::to_string(returned_layers[v]), std::to_string(v));
    in_channels.push_back(stage2 << (returned_layers[v] - 1));
  }
  return BackboneWithFPN(backbone, return_layers, in_channels, 256, std::move(extra_blocks), std::move(norm_layer));
}

namespace {
using ResNetBuilder = std::function<ResNet(const std::optional<Weights>&, ResNetOptions)>;
// A typed ResNet builder taking untyped weights (a wrong weights type is mz::UsageError).
template <class W>
ResNetBuilder untyped(ResNet (*builder)(std::optional<W>, ResNetOptions)) {
  return [builder](const std::optional<Weights>& w, ResNetOptions o) {
    std::optional<W> t;
    if (w) t = W::from_name(w->name());
    return builder(t, std::move(o));
  };
}
}  // namespace

BackboneWithFPN resnet_fpn_backbone(const std::string& name, const std::optional<Weights>& weights,
                                    ops::NormLayer norm_layer, std::int64_t trainable_layers,
                                    std::vector<std::int64_t> returned_layers, ExtraFPNBlock extra_blocks) {
  static const std::map<std::string, ResNetBuilder> builders = {
      {"resnet18", untyped(&resnet18)},
      {"resnet34", untyped(&resnet34)},
      {"resnet50", untyped(&resnet50)},
      {"resnet101", untyped(&resnet101)},
      {"resnet152", untyped(&resnet152)},
      {"resnext50_32x4d", untyped(&resnext50_32x4d)},
      {"resnext101_32x8d", untyped(&resnext101_32x8d)},
      {"resnext101_64x4d", untyped(&resnext101_64x4d)},
      {"wide_resnet50_2", untyped(&wide_resnet50_2)},
      {"wide_resnet101_2", untyped(&wide_resnet101_2)}};
  const auto it = builders.find(name);
  if (it == builders.end()) throw UsageError("resnet_fpn_backbone", "unknown backbone '" + name + "'");
  ResNetOptions options;
  options.norm_layer = std::move(norm_layer);
  return resnet_fpn_extractor(it->second(weights, options).ptr(), trainable_layers, std::move(returned_layers),
                              std::move(extra_blocks));
}

namespace {

std::int64_t out_channels_of(const std::shared_ptr<torch::nn::Module>& m) {
  if (auto* block = dynamic_cast<mobilenetv3::InvertedResidualImpl*>(m.get())) return block->out_channels;
  if (auto* cna = dynamic_cast<ops::Conv2dNormActivationImpl*>(m.get())) return cna->options.out_channels();
  throw UsageError("mobilenet_extractor", "unexpected block in the MobileNet features");
}

// nn.Sequential(features, nn.Conv2d(C, 256, 1)): "0" the features, "1" the 1x1 convolution.
class FeaturesThenConvImpl : public torch::nn::Module {
 public:
  FeaturesThenConvImpl(torch::nn::Sequential f, std::int64_t in, std::int64_t out) {
    features = register_module("0", std::move(f));
    conv = register_module("1", nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1)));
    if (!architecture_only()) conv->reset_parameters();
  }
  torch::Tensor forward(const torch::Tensor& x) { return conv->forward(features->forward(x)); }
  torch::nn::Sequential features{nullptr};
  nn::Conv2d conv{nullptr};
};
TORCH_MODULE(FeaturesThenConv);

}  // namespace

Backbone mobilenet_extractor(std::shared_ptr<MobileNetV3Impl> model, bool fpn, std::int64_t trainable_layers,
                             std::vector<std::int64_t> returned_layers, ExtraFPNBlock extra_blocks,
                             ops::NormLayer norm_layer) {
  torch::nn::Sequential features = model->features;
  const auto size = static_cast<std::int64_t>(features->size());
  std::vector<std::int64_t> stage_indices = {0};
  for (std::int64_t i = 0; i < size; ++i)
    if (auto* b = dynamic_cast<mobilenetv3::InvertedResidualImpl*>(features->ptr(i).get()); b && b->is_cn)
      stage_indices.push_back(i);
  stage_indices.push_back(size - 1);
  const auto num_stages = static_cast<std::int64_t>(stage_indices.size());
  if (trainable_layers < 0 || trainable_layers > num_stages)
    throw UsageError("mobilenet_extractor", "trainable_layers should be in the range [0," + std::to_string(num_stages) +
                                                "], got " + std::to_string(trainable_layers));
  const std::int64_t freeze_before = trainable_layers == 0 ? size : stage_indices[num_stages - trainable_layers];
  for (std::int64_t i = 0; i < freeze_before; ++i)
    for (auto& p : features->ptr(i)->parameters()) p.set_requires_grad(false);
  const std::int64_t out_channels = 256;
  if (!fpn) {
    Backbone b(FeaturesThenConv(features, out_channels_of(features->ptr(size - 1)), out_channels));
    b.out_channels = out_channels;
    return b;
  }
  if (returned_layers.empty()) returned_layers = {num_stages - 2, num_stages - 1};
  std::vector<std::pair<std::string, std::string>> return_layers;
  std::vector<std::int64_t> in_channels;
  for (std::size_t v = 0; v < returned_layers.size(); ++v) {
    const std::int64_t k = returned_layers[v];
    if (k < 0 || k >= num_stages)
      throw UsageError("mobilenet_extractor", "each returned layer should be in the range [0," +
                                                  std::to_string(num_stages - 1) + "], got " + std::to_string(k));
    return_layers.emplace_back(std::to_string(stage_indices[k]), std::to_string(v));
    in_channels.push_back(out_channels_of(features->ptr(stage_indices[k])));
  }
  return BackboneWithFPN(features.ptr(), return_layers, in_channels, out_channels, std::move(extra_blocks),
                         std::move(norm_layer));
}

Backbone mobilenet_backbone(const std::string& name, const std::optional<Weights>& weights, bool fpn,
                            ops::NormLayer norm_layer, std::int64_t trainable_layers,
                            std::vector<std::int64_t> returned_layers, ExtraFPNBlock extra_blocks) {
  MobileNetV3Options options;
  options.norm_layer = std::move(norm_layer);
  MobileNetV3 model{nullptr};
  if (name == "mobilenet_v3_large") {
    std::optional<MobileNet_V3_Large_Weights> w;
    if (weights) w = MobileNet_V3_Large_Weights::from_name(weights->name());
    model = mobilenet_v3_large(w, options);
  } else if (name == "mobilenet_v3_small") {
    std::optional<MobileNet_V3_Small_Weights> w;
    if (weights) w = MobileNet_V3_Small_Weights::from_name(weights->name());
    model = mobilenet_v3_small(w, options);
  } else {
    throw UsageError("mobilenet_backbone", "unknown backbone '" + name + "'");
  }
  return mobilenet_extractor(model.ptr(), fpn, trainable_layers, std::move(returned_layers), std::move(extra_blocks));
}

void overwrite_eps(torch::nn::Module& model, double eps) {
  nn::for_each<nn::FrozenBatchNorm2dImpl>(model, [eps](nn::FrozenBatchNorm2dImpl& m) { m.options.eps(eps); });
}

std::int64_t Backbone::channels(const char* model) const {
  if (out_channels) return *out_channels;
  torch::NoGradGuard no_grad;
  const bool was_training = module->is_training();
  module->eval();
  const TensorDict maps = forward(torch::zeros({1, 3, 224, 224}));
  module->train(was_training);
  if (maps.is_empty()) throw UsageError(model, "the backbone returns no feature maps");
  const std::int64_t channels = maps.values().at(0).size(1);
  for (const auto& item : maps)
    if (item.value().size(1) != channels)
      throw UsageError(model, "the backbone's levels disagree on channels: '" + maps.keys().at(0) + "' has " +
                                  std::to_string(channels) + ", '" + item.key() + "' has " +
                                  std::to_string(item.value().size(1)));
  return channels;
}

}  // namespace mz
