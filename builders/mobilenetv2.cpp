// MobileNetV2: block -> model -> builder, as in torchvision.models.mobilenetv2.
#include "modelzoo/models/mobilenetv2.h"

#include <torch/nn/init.h>
#include <torch/nn/modules/dropout.h>

#include "builders/common.h"
#include "registry/register.h"

namespace mz {
namespace mobilenetv2 {

InvertedResidualImpl::InvertedResidualImpl(std::int64_t inp, std::int64_t oup, std::int64_t stride,
                                           std::int64_t expand_ratio)
    : use_res_connect(stride == 1 && inp == oup), out_channels(oup) {
  if (stride != 1 && stride != 2)
    throw UsageError("MobileNetV2", "stride should be 1 or 2 instead of " + std::to_string(stride));
  using ops::Act;
  using ops::Conv2dNormActivation;
  using ops::Conv2dNormActivationOptions;
  const std::int64_t hidden_dim = inp * expand_ratio;
  conv = torch::nn::Sequential();
  if (expand_ratio != 1)  // pointwise expansion
    conv->push_back(Conv2dNormActivation(Conv2dNormActivationOptions(inp, hidden_dim, 1).activation_layer(Act::ReLU6)));
  conv->push_back(Conv2dNormActivation(  // depthwise
      Conv2dNormActivationOptions(hidden_dim, hidden_dim).stride(stride).groups(hidden_dim).activation_layer(Act::ReLU6)));
  conv->push_back(nn::Conv2d(torch::nn::Conv2dOptions(hidden_dim, oup, 1).bias(false)));  // pointwise, linear
  conv->push_back(nn::BatchNorm2d(oup));
  register_module("conv", conv);
}

}  // namespace mobilenetv2

MobileNetV2Impl::MobileNetV2Impl(const MobileNetV2Options& options) {
  using ops::Act;
  using ops::Conv2dNormActivation;
  using ops::Conv2dNormActivationOptions;
  using ops::make_divisible;
  auto setting = options.inverted_residual_setting;
  if (setting.empty())
    setting = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2}, {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
  if (setting[0].size() != 4)  // torchvision checks only the first row, too
    throw UsageError("MobileNetV2", "inverted_residual_setting should be non-empty or a 4-element list");
  const double w = options.width_mult;
  std::int64_t input_channel = make_divisible(32 * w, options.round_nearest);
  last_channel = make_divisible(1280 * std::max(1.0, w), options.round_nearest);

  features = torch::nn::Sequential();
  features->push_back(
      Conv2dNormActivation(Conv2dNormActivationOptions(3, input_channel).stride(2).activation_layer(Act::ReLU6)));
  for (const auto& row : setting) {
    const std::int64_t t = row.at(0), n = row.at(2), s = row.at(3);
    const std::int64_t output_channel = make_divisible(static_cast<double>(row.at(1)) * w, options.round_nearest);
    for (std::int64_t i = 0; i < n; ++i) {
      features->push_back(mobilenetv2::InvertedResidual(input_channel, output_channel, i == 0 ? s : 1, t));
      input_channel = output_channel;
    }
  }
  features->push_back(
      Conv2dNormActivation(Conv2dNormActivationOptions(input_channel, last_channel, 1).activation_layer(Act::ReLU6)));
  register_module("features", features);
  classifier = register_module(
      "classifier", torch::nn::Sequential(torch::nn::Dropout(options.dropout),
                                          nn::Linear(last_channel, options.num_classes.value_or(1000))));
}

std::vector<Step> MobileNetV2Impl::steps() {
  return {step("features", features),
          detail::avgpool_step(),
          detail::flatten_step(),
          step("classifier", classifier)};
}

MobileNetV2 mobilenet_v2(std::optional<MobileNet_V2_Weights> weights, MobileNetV2Options options) {
  const std::optional<Weights> w = weights;
  options.num_classes = detail::num_classes(options.num_classes, w);
  MobileNetV2 model(options);
  detail::load_or_init(*model, w, [&] { detail::init_mobilenet(*model); });
  return model;
}

MZ_REGISTER_MODEL(mobilenet_v2);

}  // namespace mz
