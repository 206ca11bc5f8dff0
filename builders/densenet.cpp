// DenseNet family: blocks -> model -> worker -> builders, as in torchvision.models.densenet.
#include "modelzoo/models/densenet.h"

#include <torch/nn/init.h>

#include "builders/common.h"
#include "registry/register.h"

namespace mz {

DenseLayerImpl::DenseLayerImpl(std::int64_t num_input_features, std::int64_t growth_rate, std::int64_t bn_size,
                               double drop_rate)
    : drop_rate(drop_rate) {
  using torch::nn::Conv2dOptions;
  norm1 = register_module("norm1", nn::BatchNorm2d(num_input_features));
  conv1 = register_module("conv1", nn::Conv2d(Conv2dOptions(num_input_features, bn_size * growth_rate, 1).bias(false)));
  norm2 = register_module("norm2", nn::BatchNorm2d(bn_size * growth_rate));
  conv2 = register_module("conv2",
                          nn::Conv2d(Conv2dOptions(bn_size * growth_rate, growth_rate, 3).padding(1).bias(false)));
}

torch::Tensor DenseLayerImpl::forward(torch::Tensor x) {
  auto bottleneck = conv1(torch::relu(norm1(x)));
  auto out = conv2(torch::relu(norm2(bottleneck)));
  if (drop_rate > 0) out = torch::dropout(out, drop_rate, is_training());
  return out;
}

DenseBlockImpl::DenseBlockImpl(std::int64_t num_layers, std::int64_t num_input_features, std::int64_t bn_size,
                               std::int64_t growth_rate, double drop_rate) {
  for (std::int64_t i = 0; i < num_layers; ++i)
    layers.push_back(register_module(
        "denselayer" + std::to_string(i + 1),
        DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size, drop_rate)));
}

torch::Tensor DenseBlockImpl::forward(torch::Tensor x) {
  std::vector<torch::Tensor> features{std::move(x)};
  for (auto& layer : layers) features.push_back(layer(torch::cat(features, 1)));
  return torch::cat(features, 1);
}

TransitionImpl::TransitionImpl(std::int64_t num_input_features, std::int64_t num_output_features) {
  norm = register_module("norm", nn::BatchNorm2d(num_input_features));
  conv = register_module(
      "conv", nn::Conv2d(torch::nn::Conv2dOptions(num_input_features, num_output_features, 1).bias(false)));
}

std::vector<Step> TransitionImpl::steps() {
  return {step("norm", norm),
          detail::relu_step(),
          step("conv", conv),
          {"pool", [](torch::Tensor x) { return torch::avg_pool2d(x, 2, 2); }}};
}

DenseNetImpl::DenseNetImpl(std::int64_t growth_rate, const std::vector<std::int64_t>& block_config,
                           std::int64_t num_init_features, const DenseNetOptions& options) {
  features = register_module("features", torch::nn::Sequential());
  features->push_back("conv0", nn::Conv2d(torch::nn::Conv2dOptions(3, num_init_features, 7).stride(2).padding(3).bias(
                                   false)));
  features->push_back("norm0", nn::BatchNorm2d(num_init_features));
  features->push_back("relu0", torch::nn::ReLU());
  features->push_back("pool0", torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(3).stride(2).padding(1)));
  std::int64_t num_features = num_init_features;
  for (std::size_t i = 0; i < block_config.size(); ++i) {
    const auto n = std::to_string(i + 1);
    features->push_back("denseblock" + n,
                        DenseBlock(block_config[i], num_features, options.bn_size, growth_rate, options.drop_rate));
    num_features += block_config[i] * growth_rate;
    if (i + 1 != block_config.size()) {
      features->push_back("transition" + n, Transition(num_features, num_features / 2));
      num_features /= 2;
    }
  }
  features->push_back("norm5", nn::BatchNorm2d(num_features));
  classifier = register_module("classifier", nn::Linear(num_features, options.num_classes.value_or(1000)));
}

std::vector<Step> DenseNetImpl::steps() {
  return {step("features", features),
          detail::relu_step(),
          {"adaptive_avg_pool2d", [](torch::Tensor x) { return torch::adaptive_avg_pool2d(x, {1, 1}); }},
          detail::flatten_step(),
          step("classifier", classifier)};
}

void DenseLayerImpl::adapt_checkpoint(IncomingState& state, const std::string& prefix) {
  for (const char* layer : {"norm", "relu", "conv"})
    for (const char* index : {"1", "2"})
      for (const char* tensor : {"weight", "bias", "running_mean", "running_var"})
        state.rename(prefix + layer + "." + index + "." + tensor, prefix + layer + index + "." + tensor);
}

namespace {

// torchvision's DenseNet init beyond PyTorch's defaults: kaiming_normal_ for convs, zero linear biases.
void init_densenet(DenseNetImpl& model) {
  torch::NoGradGuard no_grad;
  nn::for_each<nn::Conv2dImpl>(model, [](nn::Conv2dImpl& c) { torch::nn::init::kaiming_normal_(c.weight); });
  nn::for_each<nn::LinearImpl>(model, [](nn::LinearImpl& l) { l.bias.zero_(); });
}

DenseNet make_densenet(std::int64_t growth_rate, const std::vector<std::int64_t>& block_config,
                       std::int64_t num_init_features, const std::optional<Weights>& weights,
                       DenseNetOptions options) {
  options.num_classes = detail::num_classes(options.num_classes, weights);
  DenseNet model(growth_rate, block_config, num_init_features, options);
  detail::load_or_init(*model, weights, [&] { init_densenet(*model); });
  return model;
}

}  // namespace

DenseNet densenet121(std::optional<DenseNet121_Weights> w, DenseNetOptions o) {
  return make_densenet(32, {6, 12, 24, 16}, 64, w, o);
}
DenseNet densenet161(std::optional<DenseNet161_Weights> w, DenseNetOptions o) {
  return make_densenet(48, {6, 12, 36, 24}, 96, w, o);
}
DenseNet densenet169(std::optional<DenseNet169_Weights> w, DenseNetOptions o) {
  return make_densenet(32, {6, 12, 32, 32}, 64, w, o);
}
DenseNet densenet201(std::optional<DenseNet201_Weights> w, DenseNetOptions o) {
  return make_densenet(32, {6, 12, 48, 32}, 64, w, o);
}

MZ_REGISTER_MODEL(densenet121);
MZ_REGISTER_MODEL(densenet161);
MZ_REGISTER_MODEL(densenet169);
MZ_REGISTER_MODEL(densenet201);

}  // namespace mz
