// Vision Transformer: vit_b_16, vit_b_32, vit_l_16, vit_l_32, vit_h_14 (torchvision.models.vision_transformer),
// including the SWAG weights, whose image_size (384, 512, 518) comes from the weights' min_size.
//
//   auto model = mz::vit_b_16(mz::ViT_B_16_Weights::IMAGENET1K_SWAG_E2E_V1);   // image_size 384
//   auto model = mz::vit_b_16({}, {.image_size = 384});                         // architecture at 384
//   mz::load_checkpoint(*model, "vit_b_16-224.pth");        // position embeddings interpolated 224 -> 384
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <torch/nn/modules/container/sequential.h>

#include "modelzoo/layers/chain.h"
#include "modelzoo/checkpoint.h"
#include "modelzoo/layers/nn.h"
#include "modelzoo/layers/ops.h"
#include "modelzoo/options.h"
#include "modelzoo/weights_enums/classification.h"

namespace mz {

// Python keyword arguments of torchvision's vit builders (VisionTransformer's, minus the ones the
// builders fix; norm_layer and conv_stem_configs are not exposed).
struct VisionTransformerOptions {
  std::optional<std::int64_t> num_classes;  // default 1000, or len(categories) with weights
  std::optional<std::int64_t> image_size;   // default 224, or the weights' min_size (SWAG: 384/512/518)
  double dropout = 0.0;
  double attention_dropout = 0.0;
  std::optional<std::int64_t> representation_size;  // a pre_logits Linear + Tanh before the head
};
MZ_OPTIONS(VisionTransformerOptions, num_classes, image_size, dropout, attention_dropout, representation_size)

namespace vit {

// Pre-norm transformer block: x + attention(ln_1(x)), then + mlp(ln_2(.)). `mlp` is
// torchvision's MLPBlock: an ops::MLP with GELU (state dict mlp.0.*, mlp.3.*).
class EncoderBlockImpl : public torch::nn::Module {
 public:
  EncoderBlockImpl(std::int64_t num_heads, std::int64_t hidden_dim, std::int64_t mlp_dim, double dropout,
                   double attention_dropout);
  torch::Tensor forward(const torch::Tensor& input);
  nn::LayerNorm ln_1{nullptr}, ln_2{nullptr};
  ops::SelfAttention self_attention{nullptr};
  torch::nn::Dropout dropout{nullptr};
  ops::MLP mlp{nullptr};
};
TORCH_MODULE(EncoderBlock);

// pos_embedding (1, seq_length, hidden_dim) + dropout + layers.encoder_layer_{i} + ln.
// A checkpoint trained at another image size loads with its position embeddings interpolated to
// this encoder's grid (interpolate_embeddings, bicubic), in every load path.
class EncoderImpl : public torch::nn::Module, public CheckpointAdapter {
 public:
  EncoderImpl(std::int64_t seq_length, std::int64_t num_layers, std::int64_t num_heads, std::int64_t hidden_dim,
              std::int64_t mlp_dim, double dropout, double attention_dropout);
  torch::Tensor forward(const torch::Tensor& input);
  void adapt_checkpoint(IncomingState& state, const std::string& prefix) override;
  torch::Tensor pos_embedding;
  torch::nn::Dropout dropout{nullptr};
  ops::SequentialBlock layers{nullptr};
  nn::LayerNorm ln{nullptr};
};
TORCH_MODULE(Encoder);

}  // namespace vit

class VisionTransformerImpl : public torch::nn::Module, public Chain {
 public:
  // Parameters are left uninitialised; the builders initialise or load them.
  VisionTransformerImpl(std::int64_t image_size, std::int64_t patch_size, std::int64_t num_layers,
                        std::int64_t num_heads, std::int64_t hidden_dim, std::int64_t mlp_dim,
                        const VisionTransformerOptions& options);
  torch::Tensor forward(torch::Tensor x) { return run_steps(std::move(x)); }
  std::vector<Step> steps() override;
  std::int64_t image_size, patch_size, hidden_dim, seq_length;
  nn::Conv2d conv_proj{nullptr};
  torch::Tensor class_token;
  vit::Encoder encoder{nullptr};
  torch::nn::Sequential heads{nullptr};  // head, or pre_logits, act (Tanh), head
};
TORCH_MODULE(VisionTransformer);

// torchvision.models.vision_transformer.interpolate_embeddings: resizes "encoder.pos_embedding" of a
// state dict trained at another image size to (image_size / patch_size)^2 + 1 positions (the class
// token's embedding is kept; the grid is resized with `interpolation_mode`, align_corners=True).
// With reset_heads, drops the "heads*" entries. Returns the state dict unchanged when sizes agree.
TensorDict interpolate_embeddings(std::int64_t image_size, std::int64_t patch_size, TensorDict model_state,
                                    const std::string& interpolation_mode = "bicubic", bool reset_heads = false);

// The weights enums (ViT_B_16_Weights, ViT_B_32_Weights, ...) are generated into <modelzoo/weights_enums/classification.h>
// from the records in weights/records/vision_transformer.cpp.

VisionTransformer vit_b_16(std::optional<ViT_B_16_Weights> weights = {}, VisionTransformerOptions options = {});
VisionTransformer vit_b_32(std::optional<ViT_B_32_Weights> weights = {}, VisionTransformerOptions options = {});
VisionTransformer vit_l_16(std::optional<ViT_L_16_Weights> weights = {}, VisionTransformerOptions options = {});
VisionTransformer vit_l_32(std::optional<ViT_L_32_Weights> weights = {}, VisionTransformerOptions options = {});
VisionTransformer vit_h_14(std::optional<ViT_H_14_Weights> weights = {}, VisionTransformerOptions options = {});

}  // namespace mz
