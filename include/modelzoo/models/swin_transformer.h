// Swin Transformer v1 (swin_t, swin_s, swin_b) and v2 (swin_v2_t, swin_v2_s, swin_v2_b)
// (torchvision.models.swin_transformer): shifted-window attention with padding to multiples of
// the window, a relative position bias table (v1) or a continuous position bias MLP with cosine
// attention (v2). Any input size works (feature maps are padded).
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

// Python keyword arguments of torchvision's swin builders (SwinTransformer's, minus the ones the
// builders fix; norm_layer, block and downsample_layer are not exposed).
struct SwinTransformerOptions {
  std::optional<std::int64_t> num_classes;  // default 1000, or len(categories) with weights
  double mlp_ratio = 4.0;
  double dropout = 0.0;
  double attention_dropout = 0.0;
  std::optional<double> stochastic_depth_prob;  // fixed by each builder (0.2, 0.3, 0.5)
};
MZ_OPTIONS(SwinTransformerOptions, num_classes, mlp_ratio, dropout, attention_dropout, stochastic_depth_prob)

namespace swin {

// torchvision.models.swin_transformer.shifted_window_attention: window multi-head self-attention
// on an (N, H, W, C) tensor, padded to multiples of window_size, cyclically shifted by shift_size
// (masked across the shifted borders; no shift along a side the window covers). logit_scale
// defined = Swin V2's cosine attention (the middle third of qkv_bias is then ignored). qkv_packed and
// proj_packed, where given, are the projections' packed copies (mz::optimize_for_inference), used only
// while they hold these very weights (nn::PackedWeight::linear).
torch::Tensor shifted_window_attention(const torch::Tensor& input, const torch::Tensor& qkv_weight,
                                       const torch::Tensor& proj_weight, const torch::Tensor& relative_position_bias,
                                       std::vector<std::int64_t> window_size, std::int64_t num_heads,
                                       std::vector<std::int64_t> shift_size, double attention_dropout = 0.0,
                                       double dropout = 0.0, const torch::Tensor& qkv_bias = {},
                                       const torch::Tensor& proj_bias = {}, const torch::Tensor& logit_scale = {},
                                       bool training = false, const nn::PackedWeight* qkv_packed = nullptr,
                                       const nn::PackedWeight* proj_packed = nullptr);

// ShiftedWindowAttention (v1: relative_position_bias_table) and ShiftedWindowAttentionV2 (v2:
// logit_scale, cpb_mlp, relative_coords_table). Both register the relative_position_index buffer,
// which is part of the state dict as in torchvision.
class ShiftedWindowAttentionImpl : public torch::nn::Module {
 public:
  ShiftedWindowAttentionImpl(std::int64_t dim, std::vector<std::int64_t> window_size,
                             std::vector<std::int64_t> shift_size, std::int64_t num_heads, bool v2,
                             double attention_dropout = 0.0, double dropout = 0.0);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor get_relative_position_bias();
  std::vector<std::int64_t> window_size, shift_size;
  std::int64_t num_heads;
  bool v2;
  double attention_dropout, dropout;
  nn::Linear qkv{nullptr}, proj{nullptr};
  torch::Tensor relative_position_bias_table;  // v1
  torch::Tensor logit_scale, relative_coords_table;  // v2
  torch::nn::Sequential cpb_mlp{nullptr};             // v2: Linear(2, 512), ReLU, Linear(512, heads, bias=False)
  torch::Tensor relative_position_index;
};
TORCH_MODULE(ShiftedWindowAttention);

// SwinTransformerBlock (v1: pre-norm, x + sd(attn(norm1(x)))) and SwinTransformerBlockV2 (res-post-norm,
// x + sd(norm1(attn(x)))); mlp is ops::MLP with GELU.
class SwinTransformerBlockImpl : public torch::nn::Module {
 public:
  SwinTransformerBlockImpl(std::int64_t dim, std::int64_t num_heads, std::vector<std::int64_t> window_size,
                           std::vector<std::int64_t> shift_size, bool v2, double mlp_ratio, double dropout,
                           double attention_dropout, double stochastic_depth_prob);
  torch::Tensor forward(const torch::Tensor& x);
  bool v2;
  nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  ShiftedWindowAttention attn{nullptr};
  ops::StochasticDepth stochastic_depth{nullptr};
  ops::MLP mlp{nullptr};
};
TORCH_MODULE(SwinTransformerBlock);

// PatchMerging (v1: norm(4C) then reduction) and PatchMergingV2 (reduction then norm(2C)):
// (..., H, W, C) -> (..., ceil(H/2), ceil(W/2), 2C).
class PatchMergingImpl : public torch::nn::Module {
 public:
  PatchMergingImpl(std::int64_t dim, bool v2);
  torch::Tensor forward(const torch::Tensor& x);
  std::int64_t dim;
  bool v2;
  nn::Linear reduction{nullptr};
  nn::LayerNorm norm{nullptr};
};
TORCH_MODULE(PatchMerging);

}  // namespace swin

// features: 0 = patch embedding (Conv2d, Permute, LayerNorm), then stages of blocks with a
// PatchMerging between them; norm, permute (NHWC -> NCHW), avgpool, flatten, head.
class SwinTransformerImpl : public torch::nn::Module, public Chain {
 public:
  // Parameters are left uninitialised; the builders initialise or load them.
  SwinTransformerImpl(std::vector<std::int64_t> patch_size, std::int64_t embed_dim, std::vector<std::int64_t> depths,
                      std::vector<std::int64_t> num_heads, std::vector<std::int64_t> window_size, bool v2,
                      const SwinTransformerOptions& options);
  torch::Tensor forward(torch::Tensor x) { return run_steps(std::move(x)); }
  std::vector<Step> steps() override;
  ops::SequentialBlock features{nullptr};
  nn::LayerNorm norm{nullptr};
  ops::Permute permute{nullptr};
  nn::Linear head{nullptr};
};
TORCH_MODULE(SwinTransformer);

// The weights enums (Swin_T_Weights, Swin_S_Weights, ...) are generated into <modelzoo/weights_enums/classification.h>
// from the records in weights/records/swin_transformer.cpp.

SwinTransformer swin_t(std::optional<Swin_T_Weights> weights = {}, SwinTransformerOptions options = {});
SwinTransformer swin_s(std::optional<Swin_S_Weights> weights = {}, SwinTransformerOptions options = {});
SwinTransformer swin_b(std::optional<Swin_B_Weights> weights = {}, SwinTransformerOptions options = {});
SwinTransformer swin_v2_t(std::optional<Swin_V2_T_Weights> weights = {}, SwinTransformerOptions options = {});
SwinTransformer swin_v2_s(std::optional<Swin_V2_S_Weights> weights = {}, SwinTransformerOptions options = {});
SwinTransformer swin_v2_b(std::optional<Swin_V2_B_Weights> weights = {}, SwinTransformerOptions options = {});

}  // namespace mz
