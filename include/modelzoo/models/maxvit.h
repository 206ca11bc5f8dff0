// MaxViT (torchvision.models.maxvit): maxvit_t. Each layer is an MBConv followed by block
// ("window") and grid attention with a relative position bias; the input size must give block
// inputs divisible by the partition size (224 for maxvit_t).
#pragma once

#include <optional>
#include <vector>

#include <torch/nn/modules/container/sequential.h>

#include "modelzoo/layers/chain.h"
#include "modelzoo/layers/nn.h"
#include "modelzoo/layers/ops.h"
#include "modelzoo/options.h"
#include "modelzoo/weights_enums/classification.h"

namespace mz {

// Python keyword arguments of torchvision's maxvit_t (MaxVit's, minus the ones the builder fixes;
// norm_layer and activation_layer are not exposed).
struct MaxVitOptions {
  std::optional<std::int64_t> num_classes;             // default 1000, or len(categories) with weights
  std::optional<std::vector<std::int64_t>> input_size;  // (H, W); default (224, 224), or the weights' min_size
  double squeeze_ratio = 0.25;
  double expansion_ratio = 4;
  std::int64_t mlp_ratio = 4;
  double mlp_dropout = 0.0;
  double attention_dropout = 0.0;
};
MZ_OPTIONS(MaxVitOptions, num_classes, input_size, squeeze_ratio, expansion_ratio, mlp_ratio, mlp_dropout,
           attention_dropout)

namespace maxvit {

// MBConv: proj (AvgPool + 1x1 conv when the shape changes) + stochastic_depth(layers(x)), layers =
// pre_norm, conv_a (1x1), conv_b (3x3 depthwise), squeeze_excitation (SiLU), conv_c (1x1).
class MBConvImpl : public torch::nn::Module {
 public:
  MBConvImpl(std::int64_t in_channels, std::int64_t out_channels, double expansion_ratio, double squeeze_ratio,
             std::int64_t stride, double p_stochastic_dropout);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Sequential proj{nullptr};  // null: identity
  ops::StochasticDepth stochastic_depth{nullptr};  // null: identity (p == 0)
  torch::nn::Sequential layers{nullptr};
};
TORCH_MODULE(MBConv);

// Multi-head self-attention over (B, G, P, D) with a learnt relative position bias table;
// relative_position_index is a (P, P) buffer in the state dict.
class RelativePositionalMultiHeadAttentionImpl : public torch::nn::Module {
 public:
  RelativePositionalMultiHeadAttentionImpl(std::int64_t feat_dim, std::int64_t head_dim, std::int64_t max_seq_len);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor get_relative_positional_bias();
  std::int64_t n_heads, head_dim, size, max_seq_len;
  double scale_factor;
  nn::Linear to_qkv{nullptr}, merge{nullptr};
  torch::Tensor relative_position_bias_table, relative_position_index;
};
TORCH_MODULE(RelativePositionalMultiHeadAttention);

// Window ("window") or grid ("grid") partition, attention and MLP with pre-norms and residuals.
class PartitionAttentionLayerImpl : public torch::nn::Module {
 public:
  PartitionAttentionLayerImpl(std::int64_t in_channels, std::int64_t head_dim, std::int64_t partition_size,
                              const std::string& partition_type, std::vector<std::int64_t> grid_size,
                              std::int64_t mlp_ratio, double attention_dropout, double mlp_dropout,
                              double p_stochastic_dropout);
  torch::Tensor forward(const torch::Tensor& x);
  std::int64_t n_heads, head_dim, n_partitions, p, g;
  bool grid;
  std::vector<std::int64_t> grid_size;
  torch::nn::Sequential attn_layer{nullptr};
  ops::SequentialBlock mlp_layer{nullptr};
  ops::StochasticDepth stochastic_dropout{nullptr};
};
TORCH_MODULE(PartitionAttentionLayer);

// layers: MBconv, window_attention, grid_attention.
class MaxVitLayerImpl : public torch::nn::Module {
 public:
  MaxVitLayerImpl(std::int64_t in_channels, std::int64_t out_channels, std::int64_t stride, std::int64_t head_dim,
                  std::int64_t partition_size, std::vector<std::int64_t> grid_size, double p_stochastic_dropout,
                  const MaxVitOptions& options);
  torch::Tensor forward(const torch::Tensor& x) { return layers->forward(x); }
  torch::nn::Sequential layers{nullptr};
};
TORCH_MODULE(MaxVitLayer);

// n_layers MaxVitLayer in `layers`, the first with stride 2 (grid_size: the halved input grid).
class MaxVitBlockImpl : public torch::nn::Module {
 public:
  MaxVitBlockImpl(std::int64_t in_channels, std::int64_t out_channels, std::int64_t head_dim,
                  std::int64_t partition_size, const std::vector<std::int64_t>& input_grid_size,
                  const std::vector<double>& p_stochastic, const MaxVitOptions& options);
  torch::Tensor forward(const torch::Tensor& x) { return layers->forward(x); }
  std::vector<std::int64_t> grid_size;
  ops::SequentialBlock layers{nullptr};
};
TORCH_MODULE(MaxVitBlock);

// (H, W) after a 3x3, stride-2, padding-1 convolution.
std::vector<std::int64_t> conv_output_shape(const std::vector<std::int64_t>& input_size);

}  // namespace maxvit

// stem (two Conv2dNormActivation), blocks (each a Sequential "layers" of MaxVitLayer; the first
// halves the resolution), classifier (avgpool, flatten, LayerNorm, Linear, Tanh, Linear).
class MaxVitImpl : public torch::nn::Module, public Chain {
 public:
  // Parameters are left uninitialised; the builders initialise or load them.
  MaxVitImpl(std::int64_t stem_channels, std::int64_t partition_size, std::vector<std::int64_t> block_channels,
             std::vector<std::int64_t> block_layers, std::int64_t head_dim, double stochastic_depth_prob,
             const MaxVitOptions& options);
  torch::Tensor forward(torch::Tensor x) { return run_steps(std::move(x)); }
  std::vector<Step> steps() override;
  ops::SequentialBlock stem{nullptr}, blocks{nullptr};
  torch::nn::Sequential classifier{nullptr};
};
TORCH_MODULE(MaxVit);

// The weights enums (MaxVit_T_Weights) are generated into <modelzoo/weights_enums/classification.h>
// from the records in weights/records/maxvit.cpp.

MaxVit maxvit_t(std::optional<MaxVit_T_Weights> weights = {}, MaxVitOptions options = {});

}  // namespace mz
