// MaxViT: blocks -> model -> worker -> builder, as in torchvision.models.maxvit.
#include "modelzoo/models/maxvit.h"

#include <cmath>

#include <torch/nn/init.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/pooling.h>

#include "builders/common.h"
#include "registry/register.h"

namespace mz::maxvit {
namespace {

// MaxVit's norm_layer: partial(nn.BatchNorm2d, eps=1e-3, momentum=0.99).
ops::NormLayer norm_layer() { return ops::batch_norm2d(1e-3, 0.99); }

nn::LayerNorm layer_norm(std::int64_t d) { return nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(1e-5)); }

}  // namespace

std::vector<std::int64_t> conv_output_shape(const std::vector<std::int64_t>& s) {
  return {(s.at(0) - 3 + 2) / 2 + 1, (s.at(1) - 3 + 2) / 2 + 1};
}

MBConvImpl::MBConvImpl(std::int64_t in_channels, std::int64_t out_channels, double expansion_ratio,
                       double squeeze_ratio, std::int64_t stride, double p_stochastic_dropout) {
  if (stride != 1 || in_channels != out_channels) {
    proj = torch::nn::Sequential();
    if (stride == 2) proj->push_back(torch::nn::AvgPool2d(torch::nn::AvgPool2dOptions(3).stride(stride).padding(1)));
    proj->push_back(nn::Conv2d(torch::nn::Conv2dOptions(in_channels, out_channels, 1)));
    register_module("proj", proj);
  }
  const auto mid = static_cast<std::int64_t>(static_cast<double>(out_channels) * expansion_ratio);
  const auto sqz = static_cast<std::int64_t>(static_cast<double>(out_channels) * squeeze_ratio);
  if (p_stochastic_dropout != 0.0)
    stochastic_depth = register_module("stochastic_depth", ops::StochasticDepth(p_stochastic_dropout, "row"));
  layers = register_module("layers", torch::nn::Sequential());
  layers->push_back("pre_norm", norm_layer()(in_channels));
  layers->push_back("conv_a", ops::Conv2dNormActivation(ops::Conv2dNormActivationOptions(in_channels, mid, 1)
                                                            .norm_layer(norm_layer())
                                                            .activation_layer(ops::Act::GELU)
                                                            .inplace(false)));
  layers->push_back("conv_b", ops::Conv2dNormActivation(ops::Conv2dNormActivationOptions(mid, mid, 3)
                                                            .stride(stride)
                                                            .groups(mid)
                                                            .norm_layer(norm_layer())
                                                            .activation_layer(ops::Act::GELU)
                                                            .inplace(false)));
  layers->push_back("squeeze_excitation",
                    ops::SqueezeExcitation(ops::SqueezeExcitationOptions(mid, sqz).activation(ops::Act::SiLU)));
  layers->push_back("conv_c", nn::Conv2d(torch::nn::Conv2dOptions(mid, out_channels, 1)));
}

torch::Tensor MBConvImpl::forward(const torch::Tensor& x) {
  auto res = proj ? proj->forward(x) : x;
  auto out = layers->forward(x);
  if (stochastic_depth) out = stochastic_depth(out);
  return res + out;
}

RelativePositionalMultiHeadAttentionImpl::RelativePositionalMultiHeadAttentionImpl(std::int64_t feat_dim,
                                                                                   std::int64_t head_dim,
                                                                                   std::int64_t max_seq_len)
    : n_heads(feat_dim / head_dim),
      head_dim(head_dim),
      size(static_cast<std::int64_t>(std::sqrt(static_cast<double>(max_seq_len)))),
      max_seq_len(max_seq_len),
      scale_factor(std::pow(static_cast<double>(feat_dim), -0.5)) {
  if (feat_dim % head_dim != 0)
    throw UsageError("RelativePositionalMultiHeadAttention", "feat_dim: " + std::to_string(feat_dim) +
                                                                 " must be divisible by head_dim: " +
                                                                 std::to_string(head_dim));
  to_qkv = register_module("to_qkv", nn::Linear(feat_dim, n_heads * head_dim * 3));
  merge = register_module("merge", nn::Linear(head_dim * n_heads, feat_dim));
  relative_position_bias_table =
      register_parameter("relative_position_bias_table", torch::empty({(2 * size - 1) * (2 * size - 1), n_heads}));
  relative_position_index = register_buffer(
      "relative_position_index", ops::relative_position_index(size, size).view({size * size, size * size}));
}

torch::Tensor RelativePositionalMultiHeadAttentionImpl::get_relative_positional_bias() {
  auto bias = relative_position_bias_table.index({relative_position_index.view(-1)}).view({max_seq_len, max_seq_len, -1});
  return bias.permute({2, 0, 1}).contiguous().unsqueeze(0);
}

torch::Tensor RelativePositionalMultiHeadAttentionImpl::forward(const torch::Tensor& x) {
  const auto B = x.size(0), G = x.size(1), P = x.size(2), D = x.size(3);
  auto qkv = to_qkv(x).chunk(3, -1);
  const auto heads = [&](const torch::Tensor& t) { return t.reshape({B, G, P, n_heads, head_dim}).permute({0, 1, 3, 2, 4}); };
  auto out = ops::attention(heads(qkv[0]), heads(qkv[1]), heads(qkv[2]), get_relative_positional_bias(), 0.0, false,
                            scale_factor);
  return merge(out.permute({0, 1, 3, 2, 4}).reshape({B, G, P, D}));
}

PartitionAttentionLayerImpl::PartitionAttentionLayerImpl(std::int64_t in_channels, std::int64_t head_dim,
                                                         std::int64_t partition_size, const std::string& partition_type,
                                                         std::vector<std::int64_t> grid_size_, std::int64_t mlp_ratio,
                                                         double attention_dropout, double mlp_dropout,
                                                         double p_stochastic_dropout)
    : n_heads(in_channels / head_dim),
      head_dim(head_dim),
      n_partitions(grid_size_.at(0) / partition_size),
      grid(partition_type == "grid"),
      grid_size(std::move(grid_size_)) {
  if (partition_type != "grid" && partition_type != "window")
    throw UsageError("PartitionAttentionLayer", "partition_type must be either 'grid' or 'window'");
  p = grid ? n_partitions : partition_size;
  g = grid ? partition_size : n_partitions;
  attn_layer = register_module(
      "attn_layer",
      torch::nn::Sequential(layer_norm(in_channels),
                            RelativePositionalMultiHeadAttention(in_channels, head_dim, partition_size * partition_size),
                            torch::nn::Dropout(attention_dropout)));
  mlp_layer = register_module(
      "mlp_layer", ops::SequentialBlock(layer_norm(in_channels), nn::Linear(in_channels, in_channels * mlp_ratio),
                                        ops::Activation(ops::Act::GELU), nn::Linear(in_channels * mlp_ratio, in_channels),
                                        torch::nn::Dropout(mlp_dropout)));
  stochastic_dropout = register_module("stochastic_dropout", ops::StochasticDepth(p_stochastic_dropout, "row"));
}

torch::Tensor PartitionAttentionLayerImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK(grid_size[0] % p == 0 && grid_size[1] % p == 0, "Grid size must be divisible by partition size. Got grid size of ",
              grid_size, " and partition size of ", p);
  const auto gh = grid_size[0] / p, gw = grid_size[1] / p;
  const auto B = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
  // Partition into (B, H/P * W/P, P*P, C); the grid variant attends across partitions instead.
  auto x = input.reshape({B, C, H / p, p, W / p, p}).permute({0, 2, 4, 3, 5, 1}).reshape({B, (H / p) * (W / p), p * p, C});
  if (grid) x = x.swapaxes(-2, -3);
  x = x + stochastic_dropout(attn_layer->forward(x));
  x = x + stochastic_dropout(mlp_layer->forward(x));
  if (grid) x = x.swapaxes(-2, -3);
  // Departition back to (B, C, H, W).
  return x.reshape({B, gh, gw, p, p, C}).permute({0, 5, 1, 3, 2, 4}).reshape({B, C, gh * p, gw * p});
}

MaxVitLayerImpl::MaxVitLayerImpl(std::int64_t in_channels, std::int64_t out_channels, std::int64_t stride,
                                 std::int64_t head_dim, std::int64_t partition_size, std::vector<std::int64_t> grid_size,
                                 double p, const MaxVitOptions& o) {
  layers = register_module("layers", torch::nn::Sequential());
  layers->push_back("MBconv", MBConv(in_channels, out_channels, o.expansion_ratio, o.squeeze_ratio, stride, p));
  for (const char* type : {"window", "grid"})
    layers->push_back(std::string(type) + "_attention",
                      PartitionAttentionLayer(out_channels, head_dim, partition_size, type, grid_size, o.mlp_ratio,
                                              o.attention_dropout, o.mlp_dropout, p));
}

MaxVitBlockImpl::MaxVitBlockImpl(std::int64_t in_channels, std::int64_t out_channels, std::int64_t head_dim,
                                 std::int64_t partition_size, const std::vector<std::int64_t>& input_grid_size,
                                 const std::vector<double>& p_stochastic, const MaxVitOptions& options)
    : grid_size(conv_output_shape(input_grid_size)) {
  layers = register_module("layers", ops::SequentialBlock());
  for (std::size_t idx = 0; idx < p_stochastic.size(); ++idx)
    layers->push_back(MaxVitLayer(idx == 0 ? in_channels : out_channels, out_channels, idx == 0 ? 2 : 1, head_dim,
                                  partition_size, grid_size, p_stochastic[idx], options));
}

}  // namespace mz::maxvit

namespace mz {

MaxVitImpl::MaxVitImpl(std::int64_t stem_channels, std::int64_t partition_size, std::vector<std::int64_t> block_channels,
                       std::vector<std::int64_t> block_layers, std::int64_t head_dim, double stochastic_depth_prob,
                       const MaxVitOptions& options) {
  auto input_size = options.input_size.value_or(std::vector<std::int64_t>{224, 224});
  if (input_size.size() != 2) throw UsageError("MaxVit", "input_size must be (height, width)");
  // Every block input must be divisible by the partition size.
  std::vector<std::vector<std::int64_t>> block_input_sizes;
  auto shape = maxvit::conv_output_shape(input_size);
  for (std::size_t i = 0; i < block_channels.size(); ++i) block_input_sizes.push_back(shape = maxvit::conv_output_shape(shape));
  for (std::size_t i = 0; i < block_input_sizes.size(); ++i) {
    const auto& s = block_input_sizes[i];
    if (s[0] % partition_size != 0 || s[1] % partition_size != 0)
      throw UsageError("MaxVit", "Input size (" + std::to_string(s[0]) + ", " + std::to_string(s[1]) + ") of block " +
                                     std::to_string(i) + " is not divisible by partition size " +
                                     std::to_string(partition_size) + " (input_size " +
                                     std::to_string(input_size[0]) + "x" + std::to_string(input_size[1]) + ")");
  }
  stem = register_module(
      "stem", ops::SequentialBlock(
                  ops::Conv2dNormActivation(ops::Conv2dNormActivationOptions(3, stem_channels, 3)
                                                .stride(2)
                                                .norm_layer(maxvit::norm_layer())
                                                .activation_layer(ops::Act::GELU)
                                                .bias(false)
                                                .inplace(false)),
                  ops::Conv2dNormActivation(ops::Conv2dNormActivationOptions(stem_channels, stem_channels, 3)
                                                .norm_layer(nullptr)
                                                .activation_layer(std::nullopt)
                                                .bias(true))));
  input_size = maxvit::conv_output_shape(input_size);
  // np.linspace(0, stochastic_depth_prob, sum(block_layers))
  std::int64_t total = 0;
  for (auto n : block_layers) total += n;
  std::vector<double> p_stochastic(total);
  for (std::int64_t i = 0; i < total; ++i)
    p_stochastic[i] = total > 1 ? (i == total - 1 ? stochastic_depth_prob
                                                  : static_cast<double>(i) * (stochastic_depth_prob / (total - 1)))
                                : 0.0;
  blocks = register_module("blocks", ops::SequentialBlock());
  std::int64_t in_channels = stem_channels, p_idx = 0;
  for (std::size_t i = 0; i < block_channels.size(); ++i) {
    std::vector<double> ps(p_stochastic.begin() + p_idx, p_stochastic.begin() + p_idx + block_layers[i]);
    maxvit::MaxVitBlock block(in_channels, block_channels[i], head_dim, partition_size, input_size, ps, options);
    input_size = block->grid_size;
    blocks->push_back(block);
    in_channels = block_channels[i];
    p_idx += block_layers[i];
  }
  const auto c = block_channels.back();
  classifier = register_module(
      "classifier",
      torch::nn::Sequential(torch::nn::AdaptiveAvgPool2d(1), torch::nn::Flatten(), maxvit::layer_norm(c),
                            nn::Linear(c, c), ops::Activation(ops::Act::Tanh),
                            nn::Linear(torch::nn::LinearOptions(c, options.num_classes.value_or(1000)).bias(false))));
}

std::vector<Step> MaxVitImpl::steps() {
  return {step("stem", stem), step("blocks", blocks), step("classifier", classifier)};
}

namespace {

// torchvision's _init_weights: Conv2d and Linear N(0, 0.02) with zero bias, BatchNorm (1, 0),
// LayerNorm defaults; the relative position bias tables trunc_normal(0.02).
void init_maxvit(MaxVitImpl& model) {
  torch::NoGradGuard no_grad;
  nn::for_each<maxvit::RelativePositionalMultiHeadAttentionImpl>(
      model, [](maxvit::RelativePositionalMultiHeadAttentionImpl& a) {
        nn::init::trunc_normal_(a.relative_position_bias_table, 0, 0.02, -2, 2);
      });
  nn::for_each<nn::Conv2dImpl>(model, [](nn::Conv2dImpl& c) {
    c.weight.normal_(0, 0.02);
    if (c.bias.defined()) c.bias.zero_();
  });
  nn::for_each<nn::LinearImpl>(model, [](nn::LinearImpl& l) {
    l.weight.normal_(0, 0.02);
    if (l.bias.defined()) l.bias.zero_();
  });
}

}  // namespace

MaxVit maxvit_t(std::optional<MaxVit_T_Weights> w, MaxVitOptions options) {
  const std::optional<Weights> weights = w;
  options.num_classes = detail::num_classes(options.num_classes, weights);
  if (weights) {
    const auto& min_size = weights->meta().min_size;
    if (!min_size || min_size->first != min_size->second)
      throw UsageError(weights->name(), "MaxVit weights need a square min_size");
    options.input_size = detail::override_param(options.input_size, std::vector<std::int64_t>{min_size->first, min_size->second},
                                                "input_size", weights->name());
  }
  MaxVit model(64, 7, std::vector<std::int64_t>{64, 128, 256, 512}, std::vector<std::int64_t>{2, 2, 5, 2}, 32, 0.2,
               options);
  detail::load_or_init(*model, weights, [&] { init_maxvit(*model); });
  return model;
}

MZ_REGISTER_MODEL(maxvit_t);

}  // namespace mz
