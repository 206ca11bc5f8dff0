// T5 (torchtext.prototype.models.t5): encoder-only, encoder-decoder, and encoder-decoder with the
// language-model head, and greedy generation.
//
//   auto model = mz::t5_small(mz::T5_Small_Weights::GENERATION);  // DEFAULT: FULL (no lm_head)
//   model->eval();
//   torch::NoGradGuard no_grad;
//   auto transform = mz::text::TextTransform::from_weights(mz::T5_Small_Weights::GENERATION);
//   torch::Tensor ids = transform({"translate English to German: Hello"});  // SentencePiece, Truncate(512), </s>, pad 0
//   mz::T5Output out = model->forward(ids);             // encoder_output [B, T, D], decoder_output [B, 1, V]
//   torch::Tensor tokens = model->generate(ids, 32);    // greedy: [B, 1 + n], starting with 0
//   auto encoder = mz::t5_base(mz::T5_Base_Weights::ENCODER);  // encoder_only: forward(ids).encoder_output
//
// Semantics are torchtext 0.14.1's, quirks included: attention is not scaled by 1/sqrt(d); the first
// layer of each stack computes the relative position bias and the others reuse it; the decoder's
// self-attention bias is bidirectional (torchtext builds it with is_decoder=False) and its
// cross-attention has none; T5's RMS layer norm has no bias; the model's final norms (norm1, norm2)
// use eps 1e-6 whatever layer_norm_eps says; with linear_head the decoder output is scaled by
// embedding_dim^-0.5 before lm_head. Dropout only runs in training mode with `training` set.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>

#include "modelzoo/checkpoint.h"
#include "modelzoo/layers/nn.h"
#include "modelzoo/options.h"
#include "modelzoo/tensor_dict.h"
#include "modelzoo/text/heads.h"
#include "modelzoo/text/roberta.h"  // text::Embedding
#include "modelzoo/weights_enums/text.h"

namespace mz {

// torchtext's T5Conf keyword arguments (unset: the builder's configuration, which is its weights'
// config), plus get_model's freeze_model and, over an encoder-only model, a task head by its options
// (heads.h), as RoBERTa's.
struct T5Options {
  std::optional<bool> encoder_only, linear_head;
  std::optional<std::int64_t> embedding_dim, qkv_dim, num_attention_heads, num_encoder_layers, num_decoder_layers,
      ffn_dimension;
  std::optional<double> dropout;
  std::optional<std::string> activation;  // "relu" or "gelu"
  std::optional<double> layer_norm_eps;
  std::optional<std::int64_t> relative_attention_num_buckets, relative_attention_max_distance, padding_idx,
      max_seq_len, vocab_size;
  std::optional<bool> training;  // dropout on (in training mode); torchtext's T5Conf.training
  bool freeze_model = false;      // requires_grad false on T5's own weights (not a head's)
  nlohmann::json head = nullptr;  // null: none; else TextHeadOptions as JSON (needs encoder_only)
};
MZ_OPTIONS(T5Options, encoder_only, linear_head, embedding_dim, qkv_dim, num_attention_heads, num_encoder_layers,
           num_decoder_layers, ffn_dimension, dropout, activation, layer_norm_eps, relative_attention_num_buckets,
           relative_attention_max_distance, padding_idx, max_seq_len, vocab_size, training, freeze_model, head)

// The resolved configuration: T5Conf's fields and defaults (T5-base, full model).
struct T5Conf {
  bool encoder_only = false, linear_head = false;
  std::int64_t embedding_dim = 768, qkv_dim = 64, num_attention_heads = 12, num_encoder_layers = 12,
               num_decoder_layers = 12, ffn_dimension = 3072;
  double dropout = 0.1;
  std::string activation = "relu";
  double layer_norm_eps = 1e-6;
  std::int64_t relative_attention_num_buckets = 32, relative_attention_max_distance = 128, padding_idx = 0,
               max_seq_len = 512, vocab_size = 32128;
  bool training = false;
};

namespace text {

// T5LayerNorm: x * rsqrt(mean(x^2) + eps) * weight (no mean subtraction, no bias); weight init ones.
class T5LayerNormImpl : public torch::nn::Module, public nn::Resettable {
 public:
  explicit T5LayerNormImpl(std::int64_t d_model, double eps = 1e-6);
  torch::Tensor forward(const torch::Tensor& x);
  void reset_parameters() override;
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(T5LayerNorm);

// T5MultiheadAttention: q/k/v_proj_weight [H * qkv_dim, D], out_proj (no bias), and in the first layer
// of a stack relative_attention_bias [num_buckets, H].
class T5MultiheadAttentionImpl : public torch::nn::Module, public nn::PackableLinear {
 public:
  T5MultiheadAttentionImpl(const T5Conf& conf, bool is_decoder, bool compute_relative_attention_bias);
  // query [B, L, D], key/value [B, S, D]; attn_mask bool [L, S] (true = not allowed) and key_padding_mask
  // bool [B, S] (true = pad) may be undefined. position_bias [1, H, L, S]: when undefined, this layer's
  // relative bias (first layer) or zeros is used and stored back into it.
  torch::Tensor forward(const torch::Tensor& query, const torch::Tensor& key, const torch::Tensor& value,
                        const torch::Tensor& key_padding_mask, const torch::Tensor& attn_mask,
                        torch::Tensor& position_bias);
  torch::Tensor compute_bias(std::int64_t query_length, std::int64_t key_length, bool bidirectional) const;
  void reset_parameters();  // xavier_uniform_ on q/k/v (torchtext leaves them uninitialised), defaults elsewhere
  std::vector<std::pair<torch::Tensor, nn::PackedWeight*>> linear_weights() override {
    return {{q_proj_weight, &q_proj_packed}, {k_proj_weight, &k_proj_packed}, {v_proj_weight, &v_proj_packed}};
  }
  torch::Tensor q_proj_weight, k_proj_weight, v_proj_weight;
  nn::PackedWeight q_proj_packed, k_proj_packed, v_proj_packed;  // set by mz::optimize_for_inference
  nn::Linear out_proj{nullptr};
  torch::nn::Embedding relative_attention_bias{nullptr};  // null unless compute_relative_attention_bias
  std::int64_t num_heads, qkv_dim, num_buckets, max_distance;
  bool is_decoder;
  double dropout;
};
TORCH_MODULE(T5MultiheadAttention);

// T5EncoderLayer (pre-norm self-attention and feed-forward), or with `decoder` T5DecoderLayer (plus
// cross-attention over the encoder's output: cross_attn, norm3).
class T5LayerImpl : public torch::nn::Module {
 public:
  T5LayerImpl(const T5Conf& conf, bool decoder, bool compute_relative_attention_bias);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& attn_mask, const torch::Tensor& key_padding_mask,
                        torch::Tensor& position_bias, const torch::Tensor& memory = {},
                        const torch::Tensor& memory_key_padding_mask = {});
  T5MultiheadAttention self_attn{nullptr}, cross_attn{nullptr};
  nn::Linear linear1{nullptr}, linear2{nullptr};
  T5LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
  bool gelu;
  double dropout;
};
TORCH_MODULE(T5Layer);

// T5Encoder / T5Decoder: "layers.{i}", the first computing the relative position bias the others share.
class T5StackImpl : public torch::nn::Module {
 public:
  T5StackImpl(const T5Conf& conf, bool decoder);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& attn_mask, const torch::Tensor& key_padding_mask,
                        const torch::Tensor& memory = {}, const torch::Tensor& memory_key_padding_mask = {});
  torch::nn::ModuleList layers{nullptr};
};
TORCH_MODULE(T5Stack);

}  // namespace text

// What torchtext's T5Model returns, without the per-layer lists: the normalised encoder output
// [B, T, D] and, unless encoder_only, the normalised decoder output [B, T_dec, D] or, with
// linear_head, the language-model logits [B, T_dec, V]. With a head: its output over encoder_output.
struct T5Output {
  torch::Tensor encoder_output, decoder_output, head_output;
};

// torchtext.prototype.models.T5Model. Children: token_embeddings, encoder, norm1, decoder, norm2,
// lm_head (the last three only when built), so state-dict keys equal torchtext's; then "head", a task
// head over the encoder output of an encoder-only model (any TextHeadImpl; not in torchtext).
class T5ModelImpl : public torch::nn::Module {
 public:
  explicit T5ModelImpl(const T5Conf& conf, std::shared_ptr<TextHeadImpl> head = nullptr);
  // encoder_tokens [B, T] int64 padded with padding_idx; decoder_tokens [B, T_dec] (undefined: the start
  // token padding_idx alone, as torchtext does). The decoder's first column is never masked as padding.
  T5Output forward(const torch::Tensor& encoder_tokens, const torch::Tensor& decoder_tokens = {});
  torch::Tensor encode(const torch::Tensor& encoder_tokens);  // normalised encoder output
  // The decoder over an encoder output (from encode) and its tokens' padding mask.
  torch::Tensor decode(const torch::Tensor& decoder_tokens, const torch::Tensor& encoder_output,
                       const torch::Tensor& encoder_padding_mask);
  // Greedy decoding as torchtext's T5Wrapper.generate with beam_size 1: start from padding_idx, append
  // the argmax of each step's log-softmax of the last position (the whole decoder re-run each step),
  // zero the new token of rows that already produced eos_idx, stop when every row has, or after
  // max_length steps. Returns [B, 1 + steps] with the start token. Needs linear_head.
  torch::Tensor generate(const torch::Tensor& encoder_tokens, std::int64_t max_length = 512, std::int64_t eos_idx = 1);
  // mz::Model::run: int64 "input" [B, T] (and for a full model optionally "decoder_input" [B, T_dec])
  // -> "output" (encoder-only: the encoder output, or the head's named outputs; else the decoder output
  // or logits) and, for a full model, "encoder_output". Bad ids (not integers, not 2-D, outside the vocabulary) are mz::UsageError.
  TensorDict run(const TensorDict& inputs);
  static TensorDict example_inputs(std::int64_t batch, std::int64_t tokens);  // "input": random ids in [2, 20)
  void check_tokens(const torch::Tensor& tokens, const std::string& what = "input") const;

  text::Embedding token_embeddings{nullptr};
  text::T5Stack encoder{nullptr}, decoder{nullptr};
  text::T5LayerNorm norm1{nullptr}, norm2{nullptr};
  nn::Linear lm_head{nullptr};
  std::shared_ptr<TextHeadImpl> head;
  T5Conf conf;
  std::optional<LoadReport> load_report;  // set by a builder given weights: what loaded, what was skipped
};
TORCH_MODULE(T5Model);

// The builders: torchtext's bundle configurations (small D 512/H 8/L 6/FF 2048; base 768/12/12/3072;
// large 1024/16/24/4096; 3b 1024, qkv_dim 128, 32 heads, 24 layers, FF 16384; 11b the same with 128
// heads and FF 65536; vocabulary 32128). Each has ENCODER (encoder_only), FULL (encoder-decoder) and
// GENERATION (linear_head) weights; DEFAULT is FULL, as T5Conf's defaults are. As in torchtext,
// linear_head adds lm_head even to an encoder-only model. With weights, options that contradict their
// config are an error (dropout and training aside); the load is strict (as torchtext's get_model).
T5Model t5_small(std::optional<T5_Small_Weights> weights = {}, T5Options options = {});
T5Model t5_base(std::optional<T5_Base_Weights> weights = {}, T5Options options = {});
T5Model t5_large(std::optional<T5_Large_Weights> weights = {}, T5Options options = {});
T5Model t5_3b(std::optional<T5_3B_Weights> weights = {}, T5Options options = {});
T5Model t5_11b(std::optional<T5_11B_Weights> weights = {}, T5Options options = {});

}  // namespace mz
