// MobileNetV3: config -> block -> model -> worker -> builders, as in torchvision.models.mobilenetv3.
#include "modelzoo/models/mobilenetv3.h"

#include <torch/nn/modules/dropout.h>

#include "builders/common.h"
#include "registry/register.h"

namespace mz {
namespace mobilenetv3 {

using ops::Act;
using ops::Conv2dNormActivation;
using ops::Conv2dNormActivationOptions;

InvertedResidualConfig::InvertedResidualConfig(std::int64_t in, std::int64_t k, std::int64_t expanded,
                                               std::int64_t out, bool se, const char* activation, std::int64_t s,
                                               std::int64_t d, double width_mult)
    : input_channels(adjust_channels(in, width_mult)),
      kernel(k),
      expanded_channels(adjust_channels(expanded, width_mult)),
      out_channels(adjust_channels(out, width_mult)),
      use_se(se),
      use_hs(std::string(activation) == "HS"),
      stride(s),
      dilation(d) {}

std::int64_t InvertedResidualConfig::adjust_channels(std::int64_t channels, double width_mult) {
  return ops::make_divisible(static_cast<double>(channels) * width_mult, 8);
}

InvertedResidualImpl::InvertedResidualImpl(const InvertedResidualConfig& cnf, const ops::NormLayer& norm)
    : use_res_connect(cnf.stride == 1 && cnf.input_channels == cnf.out_channels),
      out_channels(cnf.out_channels),
      is_cn(cnf.stride > 1) {
  if (cnf.stride < 1 || cnf.stride > 2) throw UsageError("MobileNetV3", "illegal stride value");
  const Act act = cnf.use_hs ? Act::Hardswish : Act::ReLU;
  const std::int64_t expanded = cnf.expanded_channels;
  block = torch::nn::Sequential();
  if (expanded != cnf.input_channels)  // expand
    block->push_back(Conv2dNormActivation(
        Conv2dNormActivationOptions(cnf.input_channels, expanded, 1).norm_layer(norm).activation_layer(act)));
  block->push_back(Conv2dNormActivation(  // depthwise
      Conv2dNormActivationOptions(expanded, expanded, cnf.kernel)
          .stride(cnf.dilation > 1 ? 1 : cnf.stride)
          .dilation(cnf.dilation)
          .groups(expanded)
          .norm_layer(norm)
          .activation_layer(act)));
  if (cnf.use_se)
    block->push_back(ops::SqueezeExcitation(ops::SqueezeExcitationOptions(expanded, ops::make_divisible(expanded / 4, 8))
                                                .scale_activation(Act::Hardsigmoid)));
  block->push_back(Conv2dNormActivation(  // project
      Conv2dNormActivationOptions(expanded, cnf.out_channels, 1).norm_layer(norm).activation_layer(std::nullopt)));
  register_module("block", block);
}

std::pair<std::vector<InvertedResidualConfig>, std::int64_t> config(const std::string& arch,
                                                                     const MobileNetV3Options& options) {
  const std::int64_t r = options.reduced_tail ? 2 : 1;  // reduce_divider
  const std::int64_t d = options.dilated ? 2 : 1;
  const double w = options.width_mult;
  auto bneck = [w](std::int64_t in, std::int64_t k, std::int64_t exp, std::int64_t out, bool se, const char* act,
                   std::int64_t s, std::int64_t dil) { return InvertedResidualConfig(in, k, exp, out, se, act, s, dil, w); };
  if (arch == "mobilenet_v3_large")
    return {{bneck(16, 3, 16, 16, false, "RE", 1, 1),
             bneck(16, 3, 64, 24, false, "RE", 2, 1),  // C1
             bneck(24, 3, 72, 24, false, "RE", 1, 1),
             bneck(24, 5, 72, 40, true, "RE", 2, 1),  // C2
             bneck(40, 5, 120, 40, true, "RE", 1, 1),
             bneck(40, 5, 120, 40, true, "RE", 1, 1),
             bneck(40, 3, 240, 80, false, "HS", 2, 1),  // C3
             bneck(80, 3, 200, 80, false, "HS", 1, 1),
             bneck(80, 3, 184, 80, false, "HS", 1, 1),
             bneck(80, 3, 184, 80, false, "HS", 1, 1),
             bneck(80, 3, 480, 112, true, "HS", 1, 1),
             bneck(112, 3, 672, 112, true, "HS", 1, 1),
             bneck(112, 5, 672, 160 / r, true, "HS", 2, d),  // C4
             bneck(160 / r, 5, 960 / r, 160 / r, true, "HS", 1, d),
             bneck(160 / r, 5, 960 / r, 160 / r, true, "HS", 1, d)},
            InvertedResidualConfig::adjust_channels(1280 / r, w)};  // C5
  if (arch == "mobilenet_v3_small")
    return {{bneck(16, 3, 16, 16, true, "RE", 2, 1),  // C1
             bneck(16, 3, 72, 24, false, "RE", 2, 1),  // C2
             bneck(24, 3, 88, 24, false, "RE", 1, 1),
             bneck(24, 5, 96, 40, true, "HS", 2, 1),  // C3
             bneck(40, 5, 240, 40, true, "HS", 1, 1),
             bneck(40, 5, 240, 40, true, "HS", 1, 1),
             bneck(40, 5, 120, 48, true, "HS", 1, 1),
             bneck(48, 5, 144, 48, true, "HS", 1, 1),
             bneck(48, 5, 288, 96 / r, true, "HS", 2, d),  // C4
             bneck(96 / r, 5, 576 / r, 96 / r, true, "HS", 1, d),
             bneck(96 / r, 5, 576 / r, 96 / r, true, "HS", 1, d)},
            InvertedResidualConfig::adjust_channels(1024 / r, w)};  // C5
  throw UsageError("MobileNetV3", "unsupported model type " + arch);
}

}  // namespace mobilenetv3

MobileNetV3Impl::MobileNetV3Impl(const std::vector<mobilenetv3::InvertedResidualConfig>& setting,
                                 std::int64_t last_channel, const MobileNetV3Options& options) {
  using namespace mobilenetv3;
  // BatchNorm of every MobileNetV3 layer, unless the caller chose another norm_layer.
  const ops::NormLayer kNorm = options.norm_layer ? options.norm_layer : ops::batch_norm2d(0.001, 0.01);
  if (setting.empty()) throw UsageError("MobileNetV3", "the inverted_residual_setting should not be empty");
  features = torch::nn::Sequential();
  const std::int64_t first = setting.front().input_channels;
  features->push_back(Conv2dNormActivation(
      Conv2dNormActivationOptions(3, first, 3).stride(2).norm_layer(kNorm).activation_layer(Act::Hardswish)));
  for (const auto& cnf : setting) features->push_back(InvertedResidual(cnf, kNorm));
  const std::int64_t last_in = setting.back().out_channels, last_out = 6 * last_in;
  features->push_back(Conv2dNormActivation(
      Conv2dNormActivationOptions(last_in, last_out, 1).norm_layer(kNorm).activation_layer(Act::Hardswish)));
  register_module("features", features);
  classifier = register_module(
      "classifier", torch::nn::Sequential(nn::Linear(last_out, last_channel), ops::Activation(Act::Hardswish),
                                          torch::nn::Dropout(options.dropout),
                                          nn::Linear(last_channel, options.num_classes.value_or(1000))));
}

std::vector<Step> MobileNetV3Impl::steps() {
  return {step("features", features),
          detail::avgpool_step(),
          detail::flatten_step(),
          step("classifier", classifier)};
}

namespace {

MobileNetV3 make_mobilenet_v3(const std::string& arch, const std::optional<Weights>& weights,
                              MobileNetV3Options options) {
  options.num_classes = detail::num_classes(options.num_classes, weights);
  auto [setting, last_channel] = mobilenetv3::config(arch, options);
  MobileNetV3 model(setting, last_channel, options);
  detail::load_or_init(*model, weights, [&] { detail::init_mobilenet(*model); });
  return model;
}

}  // namespace

MobileNetV3 mobilenet_v3_large(std::optional<MobileNet_V3_Large_Weights> w, MobileNetV3Options o) {
  return make_mobilenet_v3("mobilenet_v3_large", w, o);
}
MobileNetV3 mobilenet_v3_small(std::optional<MobileNet_V3_Small_Weights> w, MobileNetV3Options o) {
  return make_mobilenet_v3("mobilenet_v3_small", w, o);
}

MZ_REGISTER_MODEL(mobilenet_v3_large);
MZ_REGISTER_MODEL(mobilenet_v3_small);

}  // namespace mz
