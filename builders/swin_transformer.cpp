// Swin Transformer v1/v2: attention -> blocks -> model -> worker -> builders, as in
// torchvision.models.swin_transformer.
#include "modelzoo/models/swin_transformer.h"

#include <cmath>

#include <torch/nn/init.h>

#include "builders/common.h"
#include "registry/register.h"

namespace mz::swin {
namespace {

// A Python slice bound (negative = from the end), clamped to [0, n].
std::int64_t py_index(std::int64_t i, std::int64_t n) { return i < 0 ? std::max<std::int64_t>(0, n + i) : std::min(i, n); }

// The mask of shifted windows: tokens that come from different regions of the padded, rolled map
// must not attend to each other (-100 before the softmax). (num_windows, N, N).
torch::Tensor shifted_window_mask(std::int64_t pad_h, std::int64_t pad_w, const std::vector<std::int64_t>& ws,
                                  const std::vector<std::int64_t>& shift, const torch::TensorOptions& options) {
  auto mask = torch::zeros({pad_h, pad_w}, options);
  const std::int64_t h_slices[3][2] = {{0, -ws[0]}, {-ws[0], -shift[0]}, {-shift[0], pad_h}};
  const std::int64_t w_slices[3][2] = {{0, -ws[1]}, {-ws[1], -shift[1]}, {-shift[1], pad_w}};
  double count = 0;
  for (const auto& h : h_slices) {
    for (const auto& w : w_slices) {
      const auto h0 = py_index(h[0], pad_h), h1 = py_index(h[1], pad_h);
      const auto w0 = py_index(w[0], pad_w), w1 = py_index(w[1], pad_w);
      if (h0 < h1 && w0 < w1) mask.slice(0, h0, h1).slice(1, w0, w1).fill_(count);
      count += 1;
    }
  }
  const auto num_windows = (pad_h / ws[0]) * (pad_w / ws[1]);
  mask = mask.view({pad_h / ws[0], ws[0], pad_w / ws[1], ws[1]}).permute({0, 2, 1, 3}).reshape({num_windows, ws[0] * ws[1]});
  mask = mask.unsqueeze(1) - mask.unsqueeze(2);
  return mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0);
}

}  // namespace

torch::Tensor shifted_window_attention(const torch::Tensor& input, const torch::Tensor& qkv_weight,
                                       const torch::Tensor& proj_weight, const torch::Tensor& relative_position_bias,
                                       std::vector<std::int64_t> ws, std::int64_t num_heads,
                                       std::vector<std::int64_t> shift, double attention_dropout, double dropout,
                                       const torch::Tensor& qkv_bias, const torch::Tensor& proj_bias,
                                       const torch::Tensor& logit_scale, bool training,
                                       const nn::PackedWeight* qkv_packed, const nn::PackedWeight* proj_packed) {
  const auto linear = [](const nn::PackedWeight* packed, const torch::Tensor& x, const torch::Tensor& weight,
                         const torch::Tensor& bias) {
    return packed ? packed->linear(x, weight, bias) : torch::linear(x, weight, bias);
  };
  TORCH_CHECK(input.dim() == 4, "shifted_window_attention expects (N, H, W, C), got ", input.sizes());
  const auto B = input.size(0), H = input.size(1), W = input.size(2), C = input.size(3);
  // Pad the feature map to multiples of the window size.
  const auto pad_r = (ws[1] - W % ws[1]) % ws[1];
  const auto pad_b = (ws[0] - H % ws[0]) % ws[0];
  auto x = torch::constant_pad_nd(input, {0, 0, 0, pad_r, 0, pad_b}, 0);
  const auto pad_h = x.size(1), pad_w = x.size(2);
  // No shift along a side the window covers entirely.
  if (ws[0] >= pad_h) shift[0] = 0;
  if (ws[1] >= pad_w) shift[1] = 0;
  const bool shifted = shift[0] + shift[1] > 0;
  if (shifted) x = torch::roll(x, {-shift[0], -shift[1]}, {1, 2});

  // Partition windows: (B * nW, Wh * Ww, C).
  const auto num_windows = (pad_h / ws[0]) * (pad_w / ws[1]);
  const auto n = ws[0] * ws[1], head_dim = C / num_heads;
  x = x.view({B, pad_h / ws[0], ws[0], pad_w / ws[1], ws[1], C}).permute({0, 1, 3, 2, 4, 5}).reshape({B * num_windows, n, C});

  torch::Tensor bias = qkv_bias;
  if (logit_scale.defined() && bias.defined()) {
    bias = bias.clone();
    const auto length = bias.numel() / 3;
    bias.slice(0, length, 2 * length).zero_();
  }
  auto qkv = linear(qkv_packed, x, qkv_weight, bias).reshape({B, num_windows, n, 3, num_heads, head_dim}).permute({3, 0, 1, 4, 2, 5});
  auto q = qkv[0], k = qkv[1], v = qkv[2];  // (B, nW, heads, N, head_dim)
  double scale = 1.0;
  if (logit_scale.defined()) {
    // Cosine attention with a learnt, clamped temperature (Swin V2).
    q = torch::nn::functional::normalize(q, torch::nn::functional::NormalizeFuncOptions().dim(-1)) *
        logit_scale.clamp_max(std::log(100.0)).exp();
    k = torch::nn::functional::normalize(k, torch::nn::functional::NormalizeFuncOptions().dim(-1));
  } else {
    scale = std::pow(static_cast<double>(head_dim), -0.5);
  }
  auto attn_bias = relative_position_bias;  // (1, heads, N, N)
  if (shifted) attn_bias = attn_bias + shifted_window_mask(pad_h, pad_w, ws, shift, x.options()).unsqueeze(1);
  auto out = ops::attention(q, k, v, attn_bias, attention_dropout, training, scale);  // (B, nW, heads, N, head_dim)
  x = out.transpose(2, 3).reshape({B * num_windows, n, C});
  x = linear(proj_packed, x, proj_weight, proj_bias);
  if (training && dropout > 0.0) x = torch::dropout(x, dropout, true);

  // Reverse windows, the cyclic shift and the padding.
  x = x.view({B, pad_h / ws[0], pad_w / ws[1], ws[0], ws[1], C}).permute({0, 1, 3, 2, 4, 5}).reshape({B, pad_h, pad_w, C});
  if (shifted) x = torch::roll(x, {shift[0], shift[1]}, {1, 2});
  return x.slice(1, 0, H).slice(2, 0, W).contiguous();
}

namespace {

torch::Tensor make_relative_coords_table(std::int64_t wh, std::int64_t ww) {
  auto h = torch::arange(-(wh - 1), wh, torch::kFloat32);
  auto w = torch::arange(-(ww - 1), ww, torch::kFloat32);
  auto grids = torch::meshgrid({h, w}, "ij");
  auto table = torch::stack({grids[0], grids[1]}).permute({1, 2, 0}).contiguous().unsqueeze(0);  // 1, 2Wh-1, 2Ww-1, 2
  table.select(3, 0).div_(static_cast<double>(wh - 1));
  table.select(3, 1).div_(static_cast<double>(ww - 1));
  table.mul_(8);
  return torch::sign(table) * torch::log2(torch::abs(table) + 1.0) / 3.0;
}

}  // namespace

ShiftedWindowAttentionImpl::ShiftedWindowAttentionImpl(std::int64_t dim, std::vector<std::int64_t> window_size_,
                                                       std::vector<std::int64_t> shift_size_, std::int64_t num_heads,
                                                       bool v2, double attention_dropout, double dropout)
    : window_size(std::move(window_size_)),
      shift_size(std::move(shift_size_)),
      num_heads(num_heads),
      v2(v2),
      attention_dropout(attention_dropout),
      dropout(dropout) {
  if (window_size.size() != 2 || shift_size.size() != 2)
    throw UsageError("ShiftedWindowAttention", "window_size and shift_size must be of length 2");
  qkv = register_module("qkv", nn::Linear(dim, dim * 3));
  proj = register_module("proj", nn::Linear(dim, dim));
  const auto wh = window_size[0], ww = window_size[1];
  if (!v2) {
    relative_position_bias_table =
        register_parameter("relative_position_bias_table", torch::empty({(2 * wh - 1) * (2 * ww - 1), num_heads}));
  } else {
    relative_coords_table = register_buffer("relative_coords_table", make_relative_coords_table(wh, ww));
  }
  relative_position_index = register_buffer("relative_position_index", ops::relative_position_index(wh, ww));
  if (v2) {
    logit_scale = register_parameter("logit_scale", torch::empty({num_heads, 1, 1}));
    cpb_mlp = register_module(
        "cpb_mlp", torch::nn::Sequential(nn::Linear(2, 512), ops::Activation(ops::Act::ReLU),
                                         nn::Linear(torch::nn::LinearOptions(512, num_heads).bias(false))));
  }
}

torch::Tensor ShiftedWindowAttentionImpl::get_relative_position_bias() {
  const auto n = window_size[0] * window_size[1];
  const auto table = v2 ? cpb_mlp->forward(relative_coords_table).view({-1, num_heads}) : relative_position_bias_table;
  auto bias = table.index({relative_position_index}).view({n, n, -1}).permute({2, 0, 1}).contiguous().unsqueeze(0);
  return v2 ? 16 * torch::sigmoid(bias) : bias;
}

torch::Tensor ShiftedWindowAttentionImpl::forward(const torch::Tensor& x) {
  return shifted_window_attention(x, qkv->adapted(qkv->weight), proj->adapted(proj->weight),
                                  get_relative_position_bias(), window_size, num_heads, shift_size, attention_dropout,
                                  dropout, qkv->bias, proj->bias, v2 ? logit_scale : torch::Tensor(), is_training(),
                                  &qkv->packed, &proj->packed);
}

SwinTransformerBlockImpl::SwinTransformerBlockImpl(std::int64_t dim, std::int64_t num_heads,
                                                   std::vector<std::int64_t> window_size,
                                                   std::vector<std::int64_t> shift_size, bool v2, double mlp_ratio,
                                                   double dropout, double attention_dropout,
                                                   double stochastic_depth_prob)
    : v2(v2) {
  norm1 = register_module("norm1", nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-5)));
  attn = register_module("attn", ShiftedWindowAttention(dim, std::move(window_size), std::move(shift_size), num_heads,
                                                        v2, attention_dropout, dropout));
  stochastic_depth = register_module("stochastic_depth", ops::StochasticDepth(stochastic_depth_prob, "row"));
  norm2 = register_module("norm2", nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-5)));
  const auto hidden = static_cast<std::int64_t>(static_cast<double>(dim) * mlp_ratio);
  mlp = register_module(
      "mlp", ops::MLP(ops::MLPOptions(dim, {hidden, dim}).activation_layer(ops::Act::GELU).dropout(dropout)));
}

torch::Tensor SwinTransformerBlockImpl::forward(const torch::Tensor& input) {
  if (v2) {
    auto x = input + stochastic_depth(norm1(attn(input)));
    return x + stochastic_depth(norm2(mlp(x)));
  }
  auto x = input + stochastic_depth(attn(norm1(input)));
  return x + stochastic_depth(mlp(norm2(x)));
}

PatchMergingImpl::PatchMergingImpl(std::int64_t dim, bool v2) : dim(dim), v2(v2) {
  reduction = register_module("reduction", nn::Linear(torch::nn::LinearOptions(4 * dim, 2 * dim).bias(false)));
  norm = register_module("norm", nn::LayerNorm(torch::nn::LayerNormOptions({v2 ? 2 * dim : 4 * dim}).eps(1e-5)));
}

torch::Tensor PatchMergingImpl::forward(const torch::Tensor& input) {
  const auto H = input.size(-3), W = input.size(-2);
  auto x = torch::constant_pad_nd(input, {0, 0, 0, W % 2, 0, H % 2}, 0);
  const auto rows = [&](std::int64_t r, std::int64_t c) {
    return x.slice(-3, r, c10::nullopt, 2).slice(-2, c, c10::nullopt, 2);
  };
  x = torch::cat({rows(0, 0), rows(1, 0), rows(0, 1), rows(1, 1)}, -1);  // ... H/2 W/2 4C
  return v2 ? norm(reduction(x)) : reduction(norm(x));
}

}  // namespace mz::swin

namespace mz {

SwinTransformerImpl::SwinTransformerImpl(std::vector<std::int64_t> patch_size, std::int64_t embed_dim,
                                         std::vector<std::int64_t> depths, std::vector<std::int64_t> num_heads,
                                         std::vector<std::int64_t> window_size, bool v2,
                                         const SwinTransformerOptions& options) {
  const auto ln = [](std::int64_t d) { return nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(1e-5)); };
  features = register_module("features", ops::SequentialBlock());
  // Split the image into non-overlapping patches (NCHW -> NHWC).
  features->push_back(ops::SequentialBlock(
      nn::Conv2d(torch::nn::Conv2dOptions(3, embed_dim, {patch_size.at(0), patch_size.at(1)})
                     .stride({patch_size.at(0), patch_size.at(1)})),
      ops::Permute(std::vector<std::int64_t>{0, 2, 3, 1}), ln(embed_dim)));
  std::int64_t total_blocks = 0;
  for (auto d : depths) total_blocks += d;
  const double sd = options.stochastic_depth_prob.value_or(0.1);
  std::int64_t block_id = 0;
  for (std::size_t i_stage = 0; i_stage < depths.size(); ++i_stage) {
    const std::int64_t dim = embed_dim << i_stage;
    ops::SequentialBlock stage;
    for (std::int64_t i_layer = 0; i_layer < depths[i_stage]; ++i_layer) {
      const double sd_prob = sd * static_cast<double>(block_id) / static_cast<double>(total_blocks - 1);
      std::vector<std::int64_t> shift;
      for (auto w : window_size) shift.push_back(i_layer % 2 == 0 ? 0 : w / 2);
      stage->push_back(swin::SwinTransformerBlock(dim, num_heads.at(i_stage), window_size, shift, v2, options.mlp_ratio,
                                                  options.dropout, options.attention_dropout, sd_prob));
      ++block_id;
    }
    features->push_back(stage);
    if (i_stage + 1 < depths.size()) features->push_back(swin::PatchMerging(dim, v2));
  }
  const std::int64_t num_features = embed_dim << (depths.size() - 1);
  norm = register_module("norm", ln(num_features));
  permute = register_module("permute", ops::Permute(std::vector<std::int64_t>{0, 3, 1, 2}));
  head = register_module("head", nn::Linear(num_features, options.num_classes.value_or(1000)));
}

std::vector<Step> SwinTransformerImpl::steps() {
  return {step("features", features),
          step("norm", norm),
          step("permute", permute),
          detail::avgpool_step(),
          detail::flatten_step(),
          step("head", head)};
}

namespace {

// torchvision's init: PyTorch defaults; every Linear trunc_normal(0.02) with zero bias; v1 bias
// tables trunc_normal(0.02); v2 logit_scale log(10).
void init_swin(SwinTransformerImpl& model) {
  torch::NoGradGuard no_grad;
  nn::for_each<swin::ShiftedWindowAttentionImpl>(model, [](swin::ShiftedWindowAttentionImpl& a) {
    if (a.v2) a.logit_scale.fill_(std::log(10.0));
    else nn::init::trunc_normal_(a.relative_position_bias_table, 0, 0.02, -2, 2);
  });
  nn::for_each<nn::LinearImpl>(model, [](nn::LinearImpl& l) {
    nn::init::trunc_normal_(l.weight, 0, 0.02, -2, 2);
    if (l.bias.defined()) l.bias.zero_();
  });
}

SwinTransformer make_swin(const char* builder, std::vector<std::int64_t> depths, std::int64_t embed_dim,
                          std::vector<std::int64_t> num_heads, std::int64_t window, double stochastic_depth_prob,
                          bool v2, const std::optional<Weights>& weights, SwinTransformerOptions options) {
  options.num_classes = detail::num_classes(options.num_classes, weights);
  options.stochastic_depth_prob =
      detail::override_param(options.stochastic_depth_prob, stochastic_depth_prob, "stochastic_depth_prob", builder);
  SwinTransformer model(std::vector<std::int64_t>{4, 4}, embed_dim, std::move(depths), std::move(num_heads),
                        std::vector<std::int64_t>{window, window}, v2, options);
  detail::load_or_init(*model, weights, [&] { init_swin(*model); });
  return model;
}

}  // namespace

SwinTransformer swin_t(std::optional<Swin_T_Weights> w, SwinTransformerOptions o) {
  return make_swin("swin_t", {2, 2, 6, 2}, 96, {3, 6, 12, 24}, 7, 0.2, false, w, o);
}
SwinTransformer swin_s(std::optional<Swin_S_Weights> w, SwinTransformerOptions o) {
  return make_swin("swin_s", {2, 2, 18, 2}, 96, {3, 6, 12, 24}, 7, 0.3, false, w, o);
}
SwinTransformer swin_b(std::optional<Swin_B_Weights> w, SwinTransformerOptions o) {
  return make_swin("swin_b", {2, 2, 18, 2}, 128, {4, 8, 16, 32}, 7, 0.5, false, w, o);
}
SwinTransformer swin_v2_t(std::optional<Swin_V2_T_Weights> w, SwinTransformerOptions o) {
  return make_swin("swin_v2_t", {2, 2, 6, 2}, 96, {3, 6, 12, 24}, 8, 0.2, true, w, o);
}
SwinTransformer swin_v2_s(std::optional<Swin_V2_S_Weights> w, SwinTransformerOptions o) {
  return make_swin("swin_v2_s", {2, 2, 18, 2}, 96, {3, 6, 12, 24}, 8, 0.3, true, w, o);
}
SwinTransformer swin_v2_b(std::optional<Swin_V2_B_Weights> w, SwinTransformerOptions o) {
  return make_swin("swin_v2_b", {2, 2, 18, 2}, 128, {4, 8, 16, 32}, 8, 0.5, true, w, o);
}

MZ_REGISTER_MODEL(swin_t);
MZ_REGISTER_MODEL(swin_s);
MZ_REGISTER_MODEL(swin_b);
MZ_REGISTER_MODEL(swin_v2_t);
MZ_REGISTER_MODEL(swin_v2_s);
MZ_REGISTER_MODEL(swin_v2_b);

}  // namespace mz
