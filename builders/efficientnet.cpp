// EfficientNet: configs -> blocks -> model -> worker -> builders, as in torchvision.models.efficientnet.
#include "modelzoo/models/efficientnet.h"

#include <cmath>

#include <torch/nn/init.h>
#include <torch/nn/modules/dropout.h>

#include "builders/common.h"
#include "registry/register.h"

namespace mz {
namespace efficientnet {

using ops::Act;
using ops::Conv2dNormActivation;
using ops::Conv2dNormActivationOptions;

std::int64_t MBConvConfig::adjust_channels(std::int64_t channels, double width_mult,
                                           std::optional<std::int64_t> min_value) {
  return ops::make_divisible(static_cast<double>(channels) * width_mult, 8, min_value);
}

std::int64_t MBConvConfig::adjust_depth(std::int64_t num_layers, double depth_mult) {
  return static_cast<std::int64_t>(std::ceil(static_cast<double>(num_layers) * depth_mult));
}

MBConvConfig mbconv(double expand_ratio, std::int64_t kernel, std::int64_t stride, std::int64_t input_channels,
                    std::int64_t out_channels, std::int64_t num_layers, double width_mult, double depth_mult) {
  return {expand_ratio,
          kernel,
          stride,
          MBConvConfig::adjust_channels(input_channels, width_mult),
          MBConvConfig::adjust_channels(out_channels, width_mult),
          MBConvConfig::adjust_depth(num_layers, depth_mult),
          false};
}

MBConvConfig fused_mbconv(double expand_ratio, std::int64_t kernel, std::int64_t stride, std::int64_t input_channels,
                          std::int64_t out_channels, std::int64_t num_layers) {
  return {expand_ratio, kernel, stride, input_channels, out_channels, num_layers, true};
}

MBConvBaseImpl::MBConvBaseImpl(const MBConvConfig& cnf, double stochastic_depth_prob)
    : use_res_connect(cnf.stride == 1 && cnf.input_channels == cnf.out_channels), out_channels(cnf.out_channels) {
  if (cnf.stride < 1 || cnf.stride > 2) throw UsageError("EfficientNet", "illegal stride value");
  block = register_module("block", torch::nn::Sequential());
  stochastic_depth = register_module("stochastic_depth", ops::StochasticDepth(stochastic_depth_prob, "row"));
}

torch::Tensor MBConvBaseImpl::forward(const torch::Tensor& x) {
  torch::Tensor out = block->forward(x);
  return use_res_connect ? stochastic_depth->forward(out).add_(x) : out;  // torchvision's `result += input`
}

MBConvImpl::MBConvImpl(const MBConvConfig& cnf, double stochastic_depth_prob, const ops::NormLayer& norm_layer)
    : MBConvBaseImpl(cnf, stochastic_depth_prob) {
  const std::int64_t expanded = MBConvConfig::adjust_channels(cnf.input_channels, cnf.expand_ratio);
  if (expanded != cnf.input_channels)  // expand
    block->push_back(Conv2dNormActivation(
        Conv2dNormActivationOptions(cnf.input_channels, expanded, 1).norm_layer(norm_layer).activation_layer(Act::SiLU)));
  block->push_back(Conv2dNormActivation(  // depthwise
      Conv2dNormActivationOptions(expanded, expanded, cnf.kernel)
          .stride(cnf.stride)
          .groups(expanded)
          .norm_layer(norm_layer)
          .activation_layer(Act::SiLU)));
  const std::int64_t squeeze = std::max<std::int64_t>(1, cnf.input_channels / 4);
  block->push_back(ops::SqueezeExcitation(ops::SqueezeExcitationOptions(expanded, squeeze).activation(Act::SiLU)));
  block->push_back(Conv2dNormActivation(  // project
      Conv2dNormActivationOptions(expanded, cnf.out_channels, 1).norm_layer(norm_layer).activation_layer(std::nullopt)));
}

FusedMBConvImpl::FusedMBConvImpl(const MBConvConfig& cnf, double stochastic_depth_prob,
                                 const ops::NormLayer& norm_layer)
    : MBConvBaseImpl(cnf, stochastic_depth_prob) {
  const std::int64_t expanded = MBConvConfig::adjust_channels(cnf.input_channels, cnf.expand_ratio);
  if (expanded != cnf.input_channels) {
    block->push_back(Conv2dNormActivation(  // fused expand
        Conv2dNormActivationOptions(cnf.input_channels, expanded, cnf.kernel)
            .stride(cnf.stride)
            .norm_layer(norm_layer)
            .activation_layer(Act::SiLU)));
    block->push_back(Conv2dNormActivation(  // project
        Conv2dNormActivationOptions(expanded, cnf.out_channels, 1).norm_layer(norm_layer).activation_layer(std::nullopt)));
  } else {
    block->push_back(Conv2dNormActivation(Conv2dNormActivationOptions(cnf.input_channels, cnf.out_channels, cnf.kernel)
                                              .stride(cnf.stride)
                                              .norm_layer(norm_layer)
                                              .activation_layer(Act::SiLU)));
  }
}

std::pair<std::vector<MBConvConfig>, std::optional<std::int64_t>> config(const std::string& arch, double width_mult,
                                                                         double depth_mult) {
  if (arch.rfind("efficientnet_b", 0) == 0) {
    auto bneck = [&](double e, std::int64_t k, std::int64_t s, std::int64_t in, std::int64_t out, std::int64_t n) {
      return mbconv(e, k, s, in, out, n, width_mult, depth_mult);
    };
    return {{bneck(1, 3, 1, 32, 16, 1), bneck(6, 3, 2, 16, 24, 2), bneck(6, 5, 2, 24, 40, 2),
             bneck(6, 3, 2, 40, 80, 3), bneck(6, 5, 1, 80, 112, 3), bneck(6, 5, 2, 112, 192, 4),
             bneck(6, 3, 1, 192, 320, 1)},
            std::nullopt};
  }
  if (arch.rfind("efficientnet_v2_s", 0) == 0)
    return {{fused_mbconv(1, 3, 1, 24, 24, 2), fused_mbconv(4, 3, 2, 24, 48, 4), fused_mbconv(4, 3, 2, 48, 64, 4),
             mbconv(4, 3, 2, 64, 128, 6), mbconv(6, 3, 1, 128, 160, 9), mbconv(6, 3, 2, 160, 256, 15)},
            1280};
  if (arch.rfind("efficientnet_v2_m", 0) == 0)
    return {{fused_mbconv(1, 3, 1, 24, 24, 3), fused_mbconv(4, 3, 2, 24, 48, 5), fused_mbconv(4, 3, 2, 48, 80, 5),
             mbconv(4, 3, 2, 80, 160, 7), mbconv(6, 3, 1, 160, 176, 14), mbconv(6, 3, 2, 176, 304, 18),
             mbconv(6, 3, 1, 304, 512, 5)},
            1280};
  if (arch.rfind("efficientnet_v2_l", 0) == 0)
    return {{fused_mbconv(1, 3, 1, 32, 32, 4), fused_mbconv(4, 3, 2, 32, 64, 7), fused_mbconv(4, 3, 2, 64, 96, 7),
             mbconv(4, 3, 2, 96, 192, 10), mbconv(6, 3, 1, 192, 224, 19), mbconv(6, 3, 2, 224, 384, 25),
             mbconv(6, 3, 1, 384, 640, 7)},
            1280};
  throw UsageError("EfficientNet", "unsupported model type " + arch);
}

}  // namespace efficientnet

EfficientNetImpl::EfficientNetImpl(const std::vector<efficientnet::MBConvConfig>& setting, double dropout,
                                   const EfficientNetOptions& options, const ops::NormLayer& norm_layer,
                                   std::optional<std::int64_t> last_channel) {
  using namespace efficientnet;
  using ops::Act;
  using ops::Conv2dNormActivation;
  using ops::Conv2dNormActivationOptions;
  if (setting.empty()) throw UsageError("EfficientNet", "the inverted_residual_setting should not be empty");
  features = torch::nn::Sequential();
  features->push_back(Conv2dNormActivation(Conv2dNormActivationOptions(3, setting.front().input_channels, 3)
                                               .stride(2)
                                               .norm_layer(norm_layer)
                                               .activation_layer(Act::SiLU)));
  std::int64_t total_stage_blocks = 0;
  for (const auto& cnf : setting) total_stage_blocks += cnf.num_layers;
  std::int64_t stage_block_id = 0;
  for (const auto& cnf : setting) {
    ops::SequentialBlock stage;
    for (std::int64_t i = 0; i < cnf.num_layers; ++i) {
      MBConvConfig block_cnf = cnf;
      if (i > 0) {  // not the first block of the stage
        block_cnf.input_channels = block_cnf.out_channels;
        block_cnf.stride = 1;
      }
      const double sd_prob =
          options.stochastic_depth_prob * static_cast<double>(stage_block_id) / static_cast<double>(total_stage_blocks);
      if (cnf.fused) stage->push_back(FusedMBConv(block_cnf, sd_prob, norm_layer));
      else stage->push_back(MBConv(block_cnf, sd_prob, norm_layer));
      ++stage_block_id;
    }
    features->push_back(stage);
  }
  const std::int64_t last_in = setting.back().out_channels, last_out = last_channel.value_or(4 * last_in);
  features->push_back(Conv2dNormActivation(
      Conv2dNormActivationOptions(last_in, last_out, 1).norm_layer(norm_layer).activation_layer(Act::SiLU)));
  register_module("features", features);
  classifier = register_module(
      "classifier", torch::nn::Sequential(torch::nn::Dropout(torch::nn::DropoutOptions(dropout).inplace(true)),
                                          nn::Linear(last_out, options.num_classes.value_or(1000))));
}

std::vector<Step> EfficientNetImpl::steps() {
  return {step("features", features),
          detail::avgpool_step(),
          detail::flatten_step(),
          step("classifier", classifier)};
}

namespace {

// torchvision's EfficientNet init: kaiming_normal_(fan_out) for convs with zero biases, norms to
// (1, 0), Linear weights U(-1/sqrt(out), 1/sqrt(out)) with zero biases.
void init_efficientnet(EfficientNetImpl& model) {
  torch::NoGradGuard no_grad;
  nn::for_each<nn::Conv2dImpl>(model, [](nn::Conv2dImpl& c) {
    torch::nn::init::kaiming_normal_(c.weight, 0, torch::kFanOut);
    if (c.bias.defined()) c.bias.zero_();
  });
  nn::for_each<nn::LinearImpl>(model, [](nn::LinearImpl& l) {
    const double range = 1.0 / std::sqrt(static_cast<double>(l.options.out_features()));
    l.weight.uniform_(-range, range);
    l.bias.zero_();
  });
}

// BatchNorm of B0-B4 (PyTorch's defaults), of B5-B7 (the ported TF weights) and of V2.
const ops::NormLayer kNormV1 = ops::batch_norm2d();
const ops::NormLayer kNormB5 = ops::batch_norm2d(0.001, 0.01);
const ops::NormLayer kNormV2 = ops::batch_norm2d(1e-3);

EfficientNet make_efficientnet(const std::string& arch, double width_mult, double depth_mult, double dropout,
                               const ops::NormLayer& norm_layer, const std::optional<Weights>& weights,
                               EfficientNetOptions options) {
  options.num_classes = detail::num_classes(options.num_classes, weights);
  auto [setting, last_channel] = efficientnet::config(arch, width_mult, depth_mult);
  EfficientNet model(setting, dropout, options, norm_layer, last_channel);
  detail::load_or_init(*model, weights, [&] { init_efficientnet(*model); });
  return model;
}

}  // namespace

EfficientNet efficientnet_b0(std::optional<EfficientNet_B0_Weights> w, EfficientNetOptions o) {
  return make_efficientnet("efficientnet_b0", 1.0, 1.0, 0.2, kNormV1, w, o);
}
EfficientNet efficientnet_b1(std::optional<EfficientNet_B1_Weights> w, EfficientNetOptions o) {
  return make_efficientnet("efficientnet_b1", 1.0, 1.1, 0.2, kNormV1, w, o);
}
EfficientNet efficientnet_b2(std::optional<EfficientNet_B2_Weights> w, EfficientNetOptions o) {
  return make_efficientnet("efficientnet_b2", 1.1, 1.2, 0.3, kNormV1, w, o);
}
EfficientNet efficientnet_b3(std::optional<EfficientNet_B3_Weights> w, EfficientNetOptions o) {
  return make_efficientnet("efficientnet_b3", 1.2, 1.4, 0.3, kNormV1, w, o);
}
EfficientNet efficientnet_b4(std::optional<EfficientNet_B4_Weights> w, EfficientNetOptions o) {
  return make_efficientnet("efficientnet_b4", 1.4, 1.8, 0.4, kNormV1, w, o);
}
EfficientNet efficientnet_b5(std::optional<EfficientNet_B5_Weights> w, EfficientNetOptions o) {
  return make_efficientnet("efficientnet_b5", 1.6, 2.2, 0.4, kNormB5, w, o);
}
EfficientNet efficientnet_b6(std::optional<EfficientNet_B6_Weights> w, EfficientNetOptions o) {
  return make_efficientnet("efficientnet_b6", 1.8, 2.6, 0.5, kNormB5, w, o);
}
EfficientNet efficientnet_b7(std::optional<EfficientNet_B7_Weights> w, EfficientNetOptions o) {
  return make_efficientnet("efficientnet_b7", 2.0, 3.1, 0.5, kNormB5, w, o);
}
EfficientNet efficientnet_v2_s(std::optional<EfficientNet_V2_S_Weights> w, EfficientNetOptions o) {
  return make_efficientnet("efficientnet_v2_s", 1.0, 1.0, 0.2, kNormV2, w, o);
}
EfficientNet efficientnet_v2_m(std::optional<EfficientNet_V2_M_Weights> w, EfficientNetOptions o) {
  return make_efficientnet("efficientnet_v2_m", 1.0, 1.0, 0.3, kNormV2, w, o);
}
EfficientNet efficientnet_v2_l(std::optional<EfficientNet_V2_L_Weights> w, EfficientNetOptions o) {
  return make_efficientnet("efficientnet_v2_l", 1.0, 1.0, 0.4, kNormV2, w, o);
}

MZ_REGISTER_MODEL(efficientnet_b0);
MZ_REGISTER_MODEL(efficientnet_b1);
MZ_REGISTER_MODEL(efficientnet_b2);
MZ_REGISTER_MODEL(efficientnet_b3);
MZ_REGISTER_MODEL(efficientnet_b4);
MZ_REGISTER_MODEL(efficientnet_b5);
MZ_REGISTER_MODEL(efficientnet_b6);
MZ_REGISTER_MODEL(efficientnet_b7);
MZ_REGISTER_MODEL(efficientnet_v2_s);
MZ_REGISTER_MODEL(efficientnet_v2_m);
MZ_REGISTER_MODEL(efficientnet_v2_l);

}  // namespace mz
