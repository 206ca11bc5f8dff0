// Vision Transformer: blocks -> model -> worker -> builders, as in torchvision.models.vision_transformer.
#include "modelzoo/models/vision_transformer.h"

#include <algorithm>
#include <cmath>

#include <torch/nn/functional/upsampling.h>
#include <torch/nn/init.h>

#include "builders/common.h"
#include "registry/register.h"

namespace mz {
namespace vit {

EncoderBlockImpl::EncoderBlockImpl(std::int64_t num_heads, std::int64_t hidden_dim, std::int64_t mlp_dim,
                                   double dropout_p, double attention_dropout) {
  const auto ln = [&] { return nn::LayerNorm(torch::nn::LayerNormOptions({hidden_dim}).eps(1e-6)); };
  ln_1 = register_module("ln_1", ln());
  self_attention = register_module("self_attention", ops::SelfAttention(hidden_dim, num_heads, attention_dropout));
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

namespace {

// The position embeddings [1, 1 + side^2, D] resized to [1, 1 + new_side^2, D]: the class token's
// embedding is kept, the grid is resized with `mode` (align_corners=True where it applies).
torch::Tensor resize_pos_embedding(const torch::Tensor& pos_embedding, std::int64_t side, std::int64_t new_side,
                                   const std::string& mode) {
  namespace F = torch::nn::functional;
  const auto hidden_dim = pos_embedding.size(2);
  auto options = F::InterpolateFuncOptions().size(std::vector<std::int64_t>{new_side, new_side});
  if (mode == "bicubic") options.mode(torch::kBicubic).align_corners(true);
  else if (mode == "bilinear") options.mode(torch::kBilinear).align_corners(true);
  else if (mode == "nearest") options.mode(torch::kNearest);
  else throw UsageError("interpolate_embeddings", "unsupported interpolation_mode '" + mode + "'");
  auto token = pos_embedding.slice(1, 0, 1);
  auto grid = pos_embedding.slice(1, 1).permute({0, 2, 1}).reshape({1, hidden_dim, side, side});
  auto resized = F::interpolate(grid, options).reshape({1, hidden_dim, new_side * new_side}).permute({0, 2, 1});
  return torch::cat({token, resized}, 1);
}

// The side of the square grid of `seq_length` = 1 + side^2 positions, or -1.
std::int64_t grid_side(std::int64_t seq_length) {
  const auto side = static_cast<std::int64_t>(std::lround(std::sqrt(static_cast<double>(seq_length - 1))));
  return side * side == seq_length - 1 ? side : -1;
}

}  // namespace

TensorDict interpolate_embeddings(std::int64_t image_size, std::int64_t patch_size, TensorDict model_state,
                                    const std::string& interpolation_mode, bool reset_heads) {
  torch::Tensor* found = model_state.find("encoder.pos_embedding");
  if (!found) throw UsageError("interpolate_embeddings", "no encoder.pos_embedding in the state dict");
  const auto pos_embedding = *found;
  if (pos_embedding.dim() != 3 || pos_embedding.size(0) != 1)
    throw UsageError("interpolate_embeddings", "Unexpected position embedding shape: " +
                                                   c10::str(pos_embedding.sizes()));
  const auto seq_length = pos_embedding.size(1);
  const auto new_side = image_size / patch_size;
  if (new_side * new_side + 1 == seq_length) return model_state;
  const auto side = static_cast<std::int64_t>(std::sqrt(static_cast<double>(seq_length - 1)));
  if (side * side != seq_length - 1)
    throw UsageError("interpolate_embeddings", "seq_length is not a perfect square! Instead got seq_length_1d * "
                                               "seq_length_1d = " + std::to_string(side * side) +
                                                   " and seq_length = " + std::to_string(seq_length - 1));
  *found = resize_pos_embedding(pos_embedding, side, new_side, interpolation_mode);
  if (!reset_heads) return model_state;
  TensorDict kept;
  for (const auto& item : model_state)
    if (item.key().rfind("heads", 0) != 0) kept.insert(item.key(), item.value());
  return kept;
}

void vit::EncoderImpl::adapt_checkpoint(IncomingState& state, const std::string& prefix) {
  const std::string key = prefix + "pos_embedding";
  if (!state.contains(key)) return;
  const auto shape = state.shape(key);
  if (torch::IntArrayRef(shape) == pos_embedding.sizes()) return;
  // Anything but another square grid of the same width is left for the loader to report.
  if (shape.size() != 3 || shape[0] != 1 || shape[2] != pos_embedding.size(2)) return;
  const auto side = grid_side(shape[1]), new_side = grid_side(pos_embedding.size(1));
  if (side < 1 || new_side < 1) return;
  state.set(key, resize_pos_embedding(state.read(key), side, new_side, "bicubic"));
}

namespace {

// torchvision's init: PyTorch defaults, then MLPBlock's xavier/normal(1e-6), MultiheadAttention's
// own, pos_embedding ~ N(0, 0.02), class token 0, patchify stem trunc_normal(sqrt(1/fan_in)),
// pre_logits trunc_normal(sqrt(1/fan_in)), head zeros.
void init_vit(VisionTransformerImpl& model) {
  torch::NoGradGuard no_grad;
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
  nn::init::trunc_normal_(model.conv_proj->weight, 0, std::sqrt(1 / fan_in), -2, 2);
  model.conv_proj->bias.zero_();
  for (const auto& item : model.heads->named_children()) {
    auto* linear = item.value()->as<nn::LinearImpl>();
    if (!linear) continue;
    if (item.key() == "pre_logits") {
      const double in = static_cast<double>(linear->options.in_features());
      nn::init::trunc_normal_(linear->weight, 0, std::sqrt(1 / in), -2, 2);
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

MZ_REGISTER_MODEL(vit_b_16);
MZ_REGISTER_MODEL(vit_b_32);
MZ_REGISTER_MODEL(vit_l_16);
MZ_REGISTER_MODEL(vit_l_32);
MZ_REGISTER_MODEL(vit_h_14);

}  // namespace mz
