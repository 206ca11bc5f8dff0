// ConvNeXt: block -> model -> worker -> builders, as in torchvision.models.convnext.
#include "modelzoo/models/convnext.h"

#include <torch/nn/modules/linear.h>

#include "builders/common.h"
#include "registry/register.h"

namespace mz {
namespace convnext {

CNBlockImpl::CNBlockImpl(std::int64_t dim, double stochastic_depth_prob) {
  block = register_module(
      "block",
      ops::SequentialBlock(
          nn::Conv2d(torch::nn::Conv2dOptions(dim, dim, 7).padding(3).groups(dim).bias(true)),
          ops::Permute(std::vector<std::int64_t>{0, 2, 3, 1}),
          nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-6)), nn::Linear(dim, 4 * dim),
          ops::Activation(ops::Act::GELU), nn::Linear(4 * dim, dim),
          ops::Permute(std::vector<std::int64_t>{0, 3, 1, 2})));
  layer_scale = register_parameter("layer_scale", torch::empty({dim, 1, 1}));
  stochastic_depth = register_module("stochastic_depth", ops::StochasticDepth(stochastic_depth_prob, "row"));
}

torch::Tensor CNBlockImpl::forward(const torch::Tensor& x) {
  // In place, as torchvision's `result += input`: the sum is a fresh tensor either way.
  return stochastic_depth->forward(layer_scale * block->forward(x)).add_(x);
}

}  // namespace convnext

namespace {

// partial(LayerNorm2d, eps=1e-6): ConvNeXt's norm_layer.
torch::nn::AnyModule layer_norm2d(std::int64_t channels) { return torch::nn::AnyModule(ops::LayerNorm2d(channels, 1e-6)); }

}  // namespace

ConvNeXtImpl::ConvNeXtImpl(const std::vector<convnext::CNBlockConfig>& block_setting, double stochastic_depth_prob,
                           const ConvNeXtOptions& options) {
  if (block_setting.empty()) throw UsageError("ConvNeXt", "the block_setting should not be empty");
  features = torch::nn::Sequential();
  features->push_back(ops::Conv2dNormActivation(ops::Conv2dNormActivationOptions(3, block_setting[0].input_channels, 4)
                                                    .stride(4)
                                                    .padding(torch::ExpandingArray<2>(0))
                                                    .norm_layer(layer_norm2d)
                                                    .activation_layer(std::nullopt)
                                                    .bias(true)));
  std::int64_t total_stage_blocks = 0;
  for (const auto& cnf : block_setting) total_stage_blocks += cnf.num_layers;
  std::int64_t stage_block_id = 0;
  for (const auto& cnf : block_setting) {
    ops::SequentialBlock stage;
    for (std::int64_t i = 0; i < cnf.num_layers; ++i) {
      // the stochastic depth probability grows linearly with the block's depth
      const double sd_prob =
          stochastic_depth_prob * static_cast<double>(stage_block_id) / (static_cast<double>(total_stage_blocks) - 1.0);
      stage->push_back(convnext::CNBlock(cnf.input_channels, sd_prob));
      ++stage_block_id;
    }
    features->push_back(stage);
    if (cnf.out_channels)  // downsampling
      features->push_back(ops::SequentialBlock(
          layer_norm2d(cnf.input_channels),
          nn::Conv2d(torch::nn::Conv2dOptions(cnf.input_channels, *cnf.out_channels, 2).stride(2))));
  }
  register_module("features", features);
  const auto& last = block_setting.back();
  const std::int64_t last_channels = last.out_channels.value_or(last.input_channels);
  classifier = register_module(
      "classifier", torch::nn::Sequential(ops::LayerNorm2d(last_channels, 1e-6), torch::nn::Flatten(),
                                          nn::Linear(last_channels, options.num_classes.value_or(1000))));
}

std::vector<Step> ConvNeXtImpl::steps() {
  return {step("features", features),
          detail::avgpool_step(),
          step("classifier", classifier)};
}

namespace {

// torchvision's ConvNeXt init: layer_scale filled with its value, conv and linear weights
// trunc_normal_(std=0.02) with zero biases; LayerNorms keep PyTorch's default (1, 0).
void init_convnext(ConvNeXtImpl& model, double layer_scale) {
  torch::NoGradGuard no_grad;
  nn::for_each<convnext::CNBlockImpl>(model, [&](convnext::CNBlockImpl& b) { b.layer_scale.fill_(layer_scale); });
  nn::for_each<nn::Conv2dImpl>(model, [](nn::Conv2dImpl& c) {
    nn::init::trunc_normal_(c.weight, 0, 0.02, -2, 2);
    if (c.bias.defined()) c.bias.zero_();
  });
  nn::for_each<nn::LinearImpl>(model, [](nn::LinearImpl& l) {
    nn::init::trunc_normal_(l.weight, 0, 0.02, -2, 2);
    if (l.bias.defined()) l.bias.zero_();
  });
}

ConvNeXt make_convnext(const std::vector<convnext::CNBlockConfig>& block_setting, double default_sd_prob,
                       const std::optional<Weights>& weights, ConvNeXtOptions options) {
  options.num_classes = detail::num_classes(options.num_classes, weights);
  ConvNeXt model(block_setting, options.stochastic_depth_prob.value_or(default_sd_prob), options);
  detail::load_or_init(*model, weights, [&] { init_convnext(*model, options.layer_scale); });
  return model;
}

}  // namespace

ConvNeXt convnext_tiny(std::optional<ConvNeXt_Tiny_Weights> w, ConvNeXtOptions o) {
  return make_convnext({{96, 192, 3}, {192, 384, 3}, {384, 768, 9}, {768, std::nullopt, 3}}, 0.1, w, o);
}
ConvNeXt convnext_small(std::optional<ConvNeXt_Small_Weights> w, ConvNeXtOptions o) {
  return make_convnext({{96, 192, 3}, {192, 384, 3}, {384, 768, 27}, {768, std::nullopt, 3}}, 0.4, w, o);
}
ConvNeXt convnext_base(std::optional<ConvNeXt_Base_Weights> w, ConvNeXtOptions o) {
  return make_convnext({{128, 256, 3}, {256, 512, 3}, {512, 1024, 27}, {1024, std::nullopt, 3}}, 0.5, w, o);
}
ConvNeXt convnext_large(std::optional<ConvNeXt_Large_Weights> w, ConvNeXtOptions o) {
  return make_convnext({{192, 384, 3}, {384, 768, 3}, {768, 1536, 27}, {1536, std::nullopt, 3}}, 0.5, w, o);
}

MZ_REGISTER_MODEL(convnext_tiny);
MZ_REGISTER_MODEL(convnext_small);
MZ_REGISTER_MODEL(convnext_base);
MZ_REGISTER_MODEL(convnext_large);

}  // namespace mz
