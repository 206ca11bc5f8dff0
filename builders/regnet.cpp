// RegNet: block parameters -> blocks -> model -> worker -> builders, as in torchvision.models.regnet.
#include "modelzoo/models/regnet.h"

#include <cmath>
#include <set>

#include "builders/common.h"
#include "registry/register.h"

namespace mz {
namespace regnet {

using ops::Act;
using ops::Conv2dNormActivation;
using ops::Conv2dNormActivationOptions;

namespace {

// Python's round(): halves to even (the default floating-point rounding mode).
std::int64_t py_round(double v) { return static_cast<std::int64_t>(std::nearbyint(v)); }

}  // namespace

BlockParams BlockParams::from_init_params(std::int64_t depth, std::int64_t w_0, double w_a, double w_m,
                                          std::int64_t group_width, double bottleneck_multiplier,
                                          std::optional<double> se_ratio) {
  constexpr std::int64_t kQuant = 8, kStride = 2;
  if (w_a < 0 || w_0 <= 0 || w_m <= 1 || w_0 % 8 != 0) throw UsageError("RegNet", "Invalid RegNet settings");
  // The block widths, each stage having one unique width: float32 tensor arithmetic, as torchvision.
  torch::NoGradGuard no_grad;
  const auto widths_cont = torch::arange(depth) * w_a + w_0;
  const auto block_capacity = torch::round(torch::log(widths_cont / w_0) / std::log(w_m));
  const auto quantised =
      (torch::round(torch::divide(w_0 * torch::pow(w_m, block_capacity), kQuant)) * kQuant).to(torch::kInt);
  std::vector<std::int64_t> block_widths(depth);
  for (std::int64_t i = 0; i < depth; ++i) block_widths[i] = quantised[i].item<std::int32_t>();
  const std::size_t num_stages = std::set<std::int64_t>(block_widths.begin(), block_widths.end()).size();

  // Per-stage parameters: a stage starts wherever the width changes.
  BlockParams p;
  std::vector<std::int64_t> starts;
  for (std::int64_t i = 0; i <= depth; ++i) {
    const std::int64_t w = i < depth ? block_widths[i] : 0, wp = i > 0 ? block_widths[i - 1] : 0;
    if (w != wp) {
      starts.push_back(i);
      if (i < depth) p.widths.push_back(w);
    }
  }
  for (std::size_t i = 1; i < starts.size(); ++i) p.depths.push_back(starts[i] - starts[i - 1]);
  p.strides.assign(num_stages, kStride);
  p.bottleneck_multipliers.assign(num_stages, bottleneck_multiplier);
  p.group_widths.assign(num_stages, group_width);
  p.se_ratio = se_ratio;

  // _adjust_widths_groups_compatibilty: bottleneck widths divisible by (possibly reduced) group widths.
  for (std::size_t i = 0; i < p.widths.size(); ++i) {
    const double b = p.bottleneck_multipliers[i];
    const auto w_bot = static_cast<std::int64_t>(static_cast<double>(p.widths[i]) * b);
    const std::int64_t g = std::min(p.group_widths[i], w_bot);
    const std::int64_t w_bot_adjusted = ops::make_divisible(static_cast<double>(w_bot), g);
    p.widths[i] = static_cast<std::int64_t>(static_cast<double>(w_bot_adjusted) / b);
    p.group_widths[i] = g;
  }
  return p;
}

BottleneckTransformImpl::BottleneckTransformImpl(std::int64_t width_in, std::int64_t width_out, std::int64_t stride,
                                                 const ops::NormLayer& norm_layer, std::int64_t group_width,
                                                 double bottleneck_multiplier, std::optional<double> se_ratio) {
  const std::int64_t w_b = py_round(static_cast<double>(width_out) * bottleneck_multiplier);
  const std::int64_t g = w_b / group_width;
  push_back("a", Conv2dNormActivation(Conv2dNormActivationOptions(width_in, w_b, 1).norm_layer(norm_layer)));
  push_back("b", Conv2dNormActivation(
                     Conv2dNormActivationOptions(w_b, w_b, 3).stride(stride).groups(g).norm_layer(norm_layer)));
  if (se_ratio && *se_ratio != 0.0)  // the SE reduction is relative to the block's input width
    push_back("se", ops::SqueezeExcitation(
                        ops::SqueezeExcitationOptions(w_b, py_round(*se_ratio * static_cast<double>(width_in)))));
  push_back("c", Conv2dNormActivation(
                     Conv2dNormActivationOptions(w_b, width_out, 1).norm_layer(norm_layer).activation_layer(std::nullopt)));
}

ResBottleneckBlockImpl::ResBottleneckBlockImpl(std::int64_t width_in, std::int64_t width_out, std::int64_t stride,
                                               const ops::NormLayer& norm_layer, std::int64_t group_width,
                                               double bottleneck_multiplier, std::optional<double> se_ratio) {
  if (width_in != width_out || stride != 1)  // projection shortcut when the shape changes
    proj = register_module("proj", Conv2dNormActivation(Conv2dNormActivationOptions(width_in, width_out, 1)
                                                            .stride(stride)
                                                            .norm_layer(norm_layer)
                                                            .activation_layer(std::nullopt)));
  f = register_module("f", BottleneckTransform(width_in, width_out, stride, norm_layer, group_width,
                                               bottleneck_multiplier, se_ratio));
  activation = register_module("activation", ops::Activation(Act::ReLU));
}

torch::Tensor ResBottleneckBlockImpl::forward(const torch::Tensor& x) {
  auto out = f->forward(x);
  return activation->forward(proj ? proj->forward(x) + out : x + out);
}

AnyStageImpl::AnyStageImpl(std::int64_t width_in, std::int64_t width_out, std::int64_t stride, std::int64_t depth,
                           const ops::NormLayer& norm_layer, std::int64_t group_width, double bottleneck_multiplier,
                           std::optional<double> se_ratio, std::int64_t stage_index) {
  for (std::int64_t i = 0; i < depth; ++i)
    push_back("block" + std::to_string(stage_index) + "-" + std::to_string(i),
              ResBottleneckBlock(i == 0 ? width_in : width_out, width_out, i == 0 ? stride : 1, norm_layer,
                                 group_width, bottleneck_multiplier, se_ratio));
}

}  // namespace regnet

RegNetImpl::RegNetImpl(const regnet::BlockParams& bp, const RegNetOptions& options) {
  using namespace regnet;
  const ops::NormLayer norm_layer = ops::batch_norm2d(1e-5, 0.1);
  stem = register_module("stem", Conv2dNormActivation(
                                     Conv2dNormActivationOptions(3, options.stem_width, 3).stride(2).norm_layer(norm_layer)));
  std::int64_t current_width = options.stem_width;
  trunk_output = torch::nn::Sequential();
  for (std::size_t i = 0; i < bp.widths.size(); ++i) {
    const auto index = static_cast<std::int64_t>(i) + 1;
    trunk_output->push_back("block" + std::to_string(index),
                            AnyStage(current_width, bp.widths[i], bp.strides[i], bp.depths[i], norm_layer,
                                     bp.group_widths[i], bp.bottleneck_multipliers[i], bp.se_ratio, index));
    current_width = bp.widths[i];
  }
  register_module("trunk_output", trunk_output);
  fc = register_module("fc", nn::Linear(current_width, options.num_classes.value_or(1000)));
}

std::vector<Step> RegNetImpl::steps() {
  return {step("stem", stem),
          step("trunk_output", trunk_output),
          detail::avgpool_step(),
          detail::flatten_step(),
          step("fc", fc)};
}

namespace {

// torchvision's RegNet init (ResNet style): conv weights N(0, sqrt(2 / fan_out)) with
// fan_out = kh * kw * out_channels, norms to (1, 0), fc weights N(0, 0.01) with zero bias.
void init_regnet(RegNetImpl& model) {
  torch::NoGradGuard no_grad;
  nn::for_each<nn::Conv2dImpl>(model, [](nn::Conv2dImpl& c) {
    const auto& k = c.options.kernel_size();
    const double fan_out = static_cast<double>(k->at(0) * k->at(1) * c.options.out_channels());
    c.weight.normal_(0.0, std::sqrt(2.0 / fan_out));
  });
  nn::for_each<nn::LinearImpl>(model, [](nn::LinearImpl& l) {
    l.weight.normal_(0.0, 0.01);
    l.bias.zero_();
  });
}

RegNet make_regnet(const regnet::BlockParams& params, const std::optional<Weights>& weights, RegNetOptions options) {
  options.num_classes = detail::num_classes(options.num_classes, weights);
  RegNet model(params, options);
  detail::load_or_init(*model, weights, [&] { init_regnet(*model); });
  return model;
}

// BlockParams.from_init_params(depth, w_0, w_a, w_m, group_width, se_ratio=...) of each builder.
regnet::BlockParams y_params(std::int64_t depth, std::int64_t w_0, double w_a, double w_m, std::int64_t group_width) {
  return regnet::BlockParams::from_init_params(depth, w_0, w_a, w_m, group_width, 1.0, 0.25);
}
regnet::BlockParams x_params(std::int64_t depth, std::int64_t w_0, double w_a, double w_m, std::int64_t group_width) {
  return regnet::BlockParams::from_init_params(depth, w_0, w_a, w_m, group_width);
}

}  // namespace

RegNet regnet_y_400mf(std::optional<RegNet_Y_400MF_Weights> w, RegNetOptions o) {
  return make_regnet(y_params(16, 48, 27.89, 2.09, 8), w, o);
}
RegNet regnet_y_800mf(std::optional<RegNet_Y_800MF_Weights> w, RegNetOptions o) {
  return make_regnet(y_params(14, 56, 38.84, 2.4, 16), w, o);
}
RegNet regnet_y_1_6gf(std::optional<RegNet_Y_1_6GF_Weights> w, RegNetOptions o) {
  return make_regnet(y_params(27, 48, 20.71, 2.65, 24), w, o);
}
RegNet regnet_y_3_2gf(std::optional<RegNet_Y_3_2GF_Weights> w, RegNetOptions o) {
  return make_regnet(y_params(21, 80, 42.63, 2.66, 24), w, o);
}
RegNet regnet_y_8gf(std::optional<RegNet_Y_8GF_Weights> w, RegNetOptions o) {
  return make_regnet(y_params(17, 192, 76.82, 2.19, 56), w, o);
}
RegNet regnet_y_16gf(std::optional<RegNet_Y_16GF_Weights> w, RegNetOptions o) {
  return make_regnet(y_params(18, 200, 106.23, 2.48, 112), w, o);
}
RegNet regnet_y_32gf(std::optional<RegNet_Y_32GF_Weights> w, RegNetOptions o) {
  return make_regnet(y_params(20, 232, 115.89, 2.53, 232), w, o);
}
RegNet regnet_y_128gf(std::optional<RegNet_Y_128GF_Weights> w, RegNetOptions o) {
  return make_regnet(y_params(27, 456, 160.83, 2.52, 264), w, o);
}
RegNet regnet_x_400mf(std::optional<RegNet_X_400MF_Weights> w, RegNetOptions o) {
  return make_regnet(x_params(22, 24, 24.48, 2.54, 16), w, o);
}
RegNet regnet_x_800mf(std::optional<RegNet_X_800MF_Weights> w, RegNetOptions o) {
  return make_regnet(x_params(16, 56, 35.73, 2.28, 16), w, o);
}
RegNet regnet_x_1_6gf(std::optional<RegNet_X_1_6GF_Weights> w, RegNetOptions o) {
  return make_regnet(x_params(18, 80, 34.01, 2.25, 24), w, o);
}
RegNet regnet_x_3_2gf(std::optional<RegNet_X_3_2GF_Weights> w, RegNetOptions o) {
  return make_regnet(x_params(25, 88, 26.31, 2.25, 48), w, o);
}
RegNet regnet_x_8gf(std::optional<RegNet_X_8GF_Weights> w, RegNetOptions o) {
  return make_regnet(x_params(23, 80, 49.56, 2.88, 120), w, o);
}
RegNet regnet_x_16gf(std::optional<RegNet_X_16GF_Weights> w, RegNetOptions o) {
  return make_regnet(x_params(22, 216, 55.59, 2.1, 128), w, o);
}
RegNet regnet_x_32gf(std::optional<RegNet_X_32GF_Weights> w, RegNetOptions o) {
  return make_regnet(x_params(23, 320, 69.86, 2.0, 168), w, o);
}

MZ_REGISTER_MODEL(regnet_y_400mf);
MZ_REGISTER_MODEL(regnet_y_800mf);
MZ_REGISTER_MODEL(regnet_y_1_6gf);
MZ_REGISTER_MODEL(regnet_y_3_2gf);
MZ_REGISTER_MODEL(regnet_y_8gf);
MZ_REGISTER_MODEL(regnet_y_16gf);
MZ_REGISTER_MODEL(regnet_y_32gf);
MZ_REGISTER_MODEL(regnet_y_128gf);
MZ_REGISTER_MODEL(regnet_x_400mf);
MZ_REGISTER_MODEL(regnet_x_800mf);
MZ_REGISTER_MODEL(regnet_x_1_6gf);
MZ_REGISTER_MODEL(regnet_x_3_2gf);
MZ_REGISTER_MODEL(regnet_x_8gf);
MZ_REGISTER_MODEL(regnet_x_16gf);
MZ_REGISTER_MODEL(regnet_x_32gf);

}  // namespace mz
