// Vision Transformer: blocks -> model -> worker -> builders, as in torchvision.models.vision_transformer.
#include "modelzoo/models/vision_transformer.h"

#include <algorithm>
#include <cmath>

#include <ATen/ops/_native_multi_head_attention.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/nn/init.h>

#include "builders/common.h"
#include "modelzoo/models/googlenet.h"  // detail::trunc_normal_
#include "registry/register.h"

namespace mz {
namespace vit {

MultiheadAttentionImpl::MultiheadAttentionImpl(std::int64_t embed_dim, std::int64_t num_heads, double dropout)
    : embed_dim(embed_dim), num_heads(num_heads), dropout(dropout) {
  TORCH_CHECK(embed_dim % num_heads == 0, "embed_dim must be divisible by num_heads");
  in_proj_weight = register_parameter("in_proj_weight", torch::empty({3 * embed_dim, embed_dim}));
  in_proj_bias = register_parameter("in_proj_bias", torch::empty({3 * embed_dim}));
  out_proj = register_module("out_proj", nn::Linear(embed_dim, embed_dim));
}

void MultiheadAttentionImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  torch::nn::init::xavier_uniform_(in_proj_weight);
  in_proj_bias.zero_();
  out_proj->bias.zero_();
}

torch::Tensor MultiheadAttentionImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 3, "Expected (batch_size, seq_length, hidden_dim) got ", x.sizes());
  if (!is_training() && !torch::GradMode::is_enabled())
    return std::get<0>(at::_native_multi_head_attention(x, x, x, embed_dim, num_heads, in_proj_weight, in_proj_bias,
                                                         out_proj->weight, out_proj->bias, {}, /*need_weights=*/false));
  const auto n = x.size(0), l = x.size(1), head_dim = embed_dim / num_heads;
  auto qkv = torch::linear(x, in_proj_weight, in_proj_bias).view({n, l, 3, num_heads, head_dim}).permute({2, 0, 3, 1, 4});
  auto q = qkv[0] * std::pow(static_cast<double>(head_dim), -0.5);
  auto out = ops::attention(q, qkv[1], qkv[2], {}, dropout, is_training());
  return out_proj(out.transpose(1, 2).reshape({n, l, embed_dim}));
}

EncoderBlockImpl::EncoderBlockImpl(std::int64_t num_heads, std::int64_t hidden_dim, std::int64_t mlp_dim,
                                   double dropout_p, double attention_dropout) {
  const auto ln = [&] { return nn::LayerNorm(torch::nn::LayerNormOptions({hidden_dim}).eps(1e-6)); };
  ln_1 = register_module("ln_1", ln());
  self_attention = register_module("self_attention", MultiheadAttention(hidden_dim, num_heads, attention_dropout));
  dropout = register_module("dropout", torch::nn::Dropout(dropout_p));
  ln_2 = register_module("ln_2", ln());
  mlp = register_module(
      "mlp", ops::MLP(ops::MLPOptions(hidden_dim, {mlp_dim, hidden_dim}).activation_layer(ops::Act::GELU).dropout(dropout_p)));
}

torch::Tensor EncoderBlockImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK(input.dim() == 3, "Expected (batch_size, seq_length, hidden_dim) got ", input.sizes());
  auto x = dropout(self_attention(ln_1(input))) + input;
  return x + mlp(ln_2(x));
}

EncoderImpl::EncoderImpl(std::int64_t seq_length, std::int64_t num_layers, std::int64_t num_heads,
                         std::int64_t hidden_dim, std::int64_t mlp_dim, double dropout_p, double attention_dropout) {
  pos_embedding = register_parameter("pos_embedding", torch::empty({1, seq_length, hidden_dim}));
  dropout = register_module("dropout", torch::nn::Dropout(dropout_p));
  layers = register_module("layers", ops::SequentialBlock());
  for (std::int64_t i = 0; i < num_layers; ++i)
    layers->push_back("encoder_layer_" + std::to_string(i),
                      EncoderBlock(num_heads, hidden_dim, mlp_dim, dropout_p, attention_dropout));
  ln = register_module("ln", nn::LayerNorm(torch::nn::LayerNormOptions({hidden_dim}).eps(1e-6)));
}

torch::Tensor EncoderImpl::forward(const torch::Tensor& input) {
  TORCH_CHECK(input.dim() == 3, "Expected (batch_size, seq_length, hidden_dim) got ", input.sizes());
  return ln(layers(dropout(input + pos_embedding)));
}

}  // namespace vit

VisionTransformerImpl::VisionTransformerImpl(std::int64_t image_size, std::int64_t patch_size, std::int64_t num_layers,
                                             std::int64_t num_heads, std::int64_t hidden_dim, std::int64_t mlp_dim,
                                             const VisionTransformerOptions& options)
    : image_size(image_size), patch_size(patch_size), hidden_dim(hidden_dim) {
  if (image_size % patch_size != 0)
    throw UsageError("VisionTransformer", "Input shape indivisible by patch size! (image_size " +
                                              std::to_string(image_size) + ", patch_size " +
                                              std::to_string(patch_size) + ")");
  conv_proj = register_module(
      "conv_proj", nn::Conv2d(torch::nn::Conv2dOptions(3, hidden_dim, patch_size).stride(patch_size)));
  seq_length = (image_size / patch_size) * (image_size / patch_size) + 1;
  class_token = register_parameter("class_token", torch::empty({1, 1, hidden_dim}));
  encoder = register_module("encoder", vit::Encoder(seq_length, num_layers, num_heads, hidden_dim, mlp_dim,
                                                    options.dropout, options.attention_dropout));
  const std::int64_t num_classes = options.num_classes.value_or(1000);
  heads = register_module("heads", torch::nn::Sequential());
  if (!options.representation_size) {
    heads->push_back("head", nn::Linear(hidden_dim, num_classes));
  } else {
    heads->push_back("pre_logits", nn::Linear(hidden_dim, *options.representation_size));
    heads->push_back("act", ops::Activation(ops::Act::Tanh));
    heads->push_back("head", nn::Linear(*options.representation_size, num_classes));
  }
}

std::vector<Step> VisionTransformerImpl::steps() {
  return {{"conv_proj",
           [this](torch::Tensor x) {
             TORCH_CHECK(x.dim() == 4, "VisionTransformer expects (N, 3, H, W), got ", x.sizes());
             TORCH_CHECK(x.size(2) == image_size, "Wrong image height! Expected ", image_size, " but got ", x.size(2),
                         "!");
             TORCH_CHECK(x.size(3) == image_size, "Wrong image width! Expected ", image_size, " but got ", x.size(3),
                         "!");
             return conv_proj(x);
           }},
          // (n, hidden_dim, n_h, n_w) -> (n, n_h * n_w, hidden_dim)
          {"flatten", [](torch::Tensor x) { return x.flatten(2).permute({0, 2, 1}); }},
          {"class_token",
           [this](torch::Tensor x) { return torch::cat({class_token.expand({x.size(0), -1, -1}), x}, 1); }},
          step("encoder", encoder),
          {"select_class_token", [](torch::Tensor x) { return x.select(1, 0); }},
          step("heads", heads)};
}

NamedTensors interpolate_embeddings(std::int64_t image_size, std::int64_t patch_size, NamedTensors model_state,
                                    const std::string& interpolation_mode, bool reset_heads) {
  auto it = std::find_if(model_state.begin(), model_state.end(),
                         [](const auto& kv) { return kv.first == "encoder.pos_embedding"; });
  if (it == model_state.end()) throw UsageError("interpolate_embeddings", "no encoder.pos_embedding in the state dict");
  const auto pos_embedding = it->second;
  if (pos_embedding.dim() != 3 || pos_embedding.size(0) != 1)
    throw UsageError("interpolate_embeddings", "Unexpected position embedding shape: " +
                                                   c10::str(pos_embedding.sizes()));
  auto seq_length = pos_embedding.size(1);
  const auto hidden_dim = pos_embedding.size(2);
  auto new_seq_length = (image_size / patch_size) * (image_size / patch_size) + 1;
  if (new_seq_length == seq_length) return model_state;

  // The class token's embedding is not interpolated.
  seq_length -= 1;
  new_seq_length -= 1;
  auto token = pos_embedding.slice(1, 0, 1);
  auto img = pos_embedding.slice(1, 1).permute({0, 2, 1});
  const auto side = static_cast<std::int64_t>(std::sqrt(static_cast<double>(seq_length)));
  if (side * side != seq_length)
    throw UsageError("interpolate_embeddings", "seq_length is not a perfect square! Instead got seq_length_1d * "
                                               "seq_length_1d = " + std::to_string(side * side) +
                                                   " and seq_length = " + std::to_string(seq_length));
  img = img.reshape({1, hidden_dim, side, side});
  namespace F = torch::nn::functional;
  auto options = F::InterpolateFuncOptions().size(std::vector<std::int64_t>{image_size / patch_size,
                                                                            image_size / patch_size});
  if (interpolation_mode == "bicubic") options.mode(torch::kBicubic).align_corners(true);
  else if (interpolation_mode == "bilinear") options.mode(torch::kBilinear).align_corners(true);
  else if (interpolation_mode == "nearest") options.mode(torch::kNearest);
  else throw UsageError("interpolate_embeddings", "unsupported interpolation_mode '" + interpolation_mode + "'");
  auto new_img = F::interpolate(img, options).reshape({1, hidden_dim, new_seq_length}).permute({0, 2, 1});
  it->second = torch::cat({token, new_img}, 1);
  if (reset_heads) {
    NamedTensors kept;
    for (auto& kv : model_state)
      if (kv.first.rfind("heads", 0) != 0) kept.push_back(std::move(kv));
    return kept;
  }
  return model_state;
}

LoadReport load_vit_checkpoint(VisionTransformerImpl& model, const std::string& path, const LoadOptions& options,
                               const std::string& interpolation_mode) {
  Checkpoint checkpoint(path);
  std::string key = "encoder.pos_embedding";
  for (const auto& name : checkpoint.names())
    if ((options.rename ? options.rename(name) : name) == key) key = name;
  const auto names = checkpoint.names();
  if (std::find(names.begin(), names.end(), key) == names.end()) return checkpoint.load_into(model, options);
  auto stored = checkpoint.tensor(key);
  if (stored.sizes() == model.encoder->pos_embedding.sizes()) return checkpoint.load_into(model, options);
  auto state = interpolate_embeddings(model.image_size, model.patch_size, {{"encoder.pos_embedding", stored}},
                                      interpolation_mode);
  const auto& resized = state.front().second;
  if (resized.sizes() != model.encoder->pos_embedding.sizes())
    throw LoadError(path, "encoder.pos_embedding: checkpoint " + c10::str(stored.sizes()) + " cannot be interpolated to " +
                              c10::str(model.encoder->pos_embedding.sizes()));
  LoadOptions rest = options;
  rest.skip.push_back("encoder.pos_embedding");
  auto report = checkpoint.load_into(model, rest);
  {
    torch::NoGradGuard no_grad;
    model.encoder->pos_embedding.copy_(resized);
  }
  report.skipped.erase(std::remove(report.skipped.begin(), report.skipped.end(), "encoder.pos_embedding"),
                       report.skipped.end());
  report.loaded.push_back("encoder.pos_embedding");
  return report;
}

namespace {

// torchvision's init: PyTorch defaults, then MLPBlock's xavier/normal(1e-6), MultiheadAttention's
// own, pos_embedding ~ N(0, 0.02), class token 0, patchify stem trunc_normal(sqrt(1/fan_in)),
// pre_logits trunc_normal(sqrt(1/fan_in)), head zeros.
void init_vit(VisionTransformerImpl& model) {
  torch::NoGradGuard no_grad;
  nn::reset_parameters(model);
  nn::for_each<vit::EncoderBlockImpl>(model, [](vit::EncoderBlockImpl& b) {
    nn::for_each<nn::LinearImpl>(*b.mlp, [](nn::LinearImpl& l) {
      torch::nn::init::xavier_uniform_(l.weight);
      l.bias.normal_(0, 1e-6);
    });
    b.self_attention->reset_parameters();
  });
  model.encoder->pos_embedding.normal_(0, 0.02);
  model.class_token.zero_();
  const auto& k = model.conv_proj->options.kernel_size();
  const double fan_in = 3.0 * static_cast<double>(k->at(0) * k->at(1));
  detail::trunc_normal_(model.conv_proj->weight, 0, std::sqrt(1 / fan_in), -2, 2);
  model.conv_proj->bias.zero_();
  for (const auto& item : model.heads->named_children()) {
    auto* linear = item.value()->as<nn::LinearImpl>();
    if (!linear) continue;
    if (item.key() == "pre_logits") {
      const double in = static_cast<double>(linear->options.in_features());
      detail::trunc_normal_(linear->weight, 0, std::sqrt(1 / in), -2, 2);
      linear->bias.zero_();
    } else {
      linear->weight.zero_();
      linear->bias.zero_();
    }
  }
}

VisionTransformer make_vit(std::int64_t patch_size, std::int64_t num_layers, std::int64_t num_heads,
                           std::int64_t hidden_dim, std::int64_t mlp_dim, const std::optional<Weights>& weights,
                           VisionTransformerOptions options) {
  options.num_classes = detail::num_classes(options.num_classes, weights);
  if (weights) {
    const auto& min_size = weights->meta().min_size;
    if (!min_size || min_size->first != min_size->second)
      throw UsageError(weights->name(), "ViT weights need a square min_size");
    options.image_size = detail::override_param(options.image_size, min_size->first, "image_size", weights->name());
  }
  VisionTransformer model(options.image_size.value_or(224), patch_size, num_layers, num_heads, hidden_dim, mlp_dim,
                          options);
  detail::load_or_init(*model, weights, [&] { init_vit(*model); });
  return model;
}

}  // namespace

VisionTransformer vit_b_16(std::optional<ViT_B_16_Weights> w, VisionTransformerOptions o) {
  return make_vit(16, 12, 12, 768, 3072, w, o);
}
VisionTransformer vit_b_32(std::optional<ViT_B_32_Weights> w, VisionTransformerOptions o) {
  return make_vit(32, 12, 12, 768, 3072, w, o);
}
VisionTransformer vit_l_16(std::optional<ViT_L_16_Weights> w, VisionTransformerOptions o) {
  return make_vit(16, 24, 16, 1024, 4096, w, o);
}
VisionTransformer vit_l_32(std::optional<ViT_L_32_Weights> w, VisionTransformerOptions o) {
  return make_vit(32, 24, 16, 1024, 4096, w, o);
}
VisionTransformer vit_h_14(std::optional<ViT_H_14_Weights> w, VisionTransformerOptions o) {
  return make_vit(14, 32, 16, 1280, 5120, w, o);
}

MZ_REGISTER_MODEL(vit_b_16, "classification");
MZ_REGISTER_MODEL(vit_b_32, "classification");
MZ_REGISTER_MODEL(vit_l_16, "classification");
MZ_REGISTER_MODEL(vit_l_32, "classification");
MZ_REGISTER_MODEL(vit_h_14, "classification");

}  // namespace mz
