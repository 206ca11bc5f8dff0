// RoBERTa and XLM-R encoders (torchtext.models.roberta), with any task head.
//
//   auto model = mz::roberta_base(mz::RoBERTa_Base_Weights::ENCODER);
//   model->eval();
//   torch::NoGradGuard no_grad;
//   torch::Tensor features = model->forward(ids);           // int64 [B, T] (padded with 1) -> [B, T', D]
//   auto classifier = mz::xlmr_base(mz::XLMR_Base_Weights::ENCODER,
//                                   {.freeze_encoder = true, .head = {{"type", "classification"}, {"num_classes", 3}}});
//   classifier->load_report->skipped;                      // the fresh head's keys, which the weights do not set
//
// In eval mode with gradients off, the layers run PyTorch's fused fast path exactly as torch 1.13
// does for torchtext: padded positions of the output are exactly 0, and when every row ends in
// padding the time dimension is trimmed to the longest real length (T' <= T). Otherwise (training,
// or gradients wanted) the plain path runs, with dropout and autograd.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>

#include "modelzoo/checkpoint.h"
#include "modelzoo/layers/nn.h"
#include "modelzoo/layers/ops.h"
#include "modelzoo/options.h"
#include "modelzoo/tensor_dict.h"
#include "modelzoo/text/heads.h"
#include "modelzoo/weights_enums/text.h"

namespace mz {

// torchtext's RobertaEncoderConf keyword arguments (unset: the builder's configuration, which is its
// weights' config), plus RobertaModel's freeze_encoder and a head by its options (heads.h).
struct RobertaOptions {
  std::optional<std::int64_t> vocab_size, embedding_dim, ffn_dimension, padding_idx, max_seq_len,
      num_attention_heads, num_encoder_layers;
  std::optional<double> dropout;
  std::optional<double> scaling;  // accepted and unused, as in torchtext (nn.TransformerEncoderLayer scales itself)
  std::optional<bool> normalize_before;
  bool freeze_encoder = false;
  nlohmann::json head = nullptr;  // null: features; else TextHeadOptions as JSON
};
MZ_OPTIONS(RobertaOptions, vocab_size, embedding_dim, ffn_dimension, padding_idx, max_seq_len, num_attention_heads,
           num_encoder_layers, dropout, scaling, normalize_before, freeze_encoder, head)

// The resolved configuration (RobertaEncoderConf's fields).
struct RobertaEncoderConf {
  std::int64_t vocab_size = 50265, embedding_dim = 768, ffn_dimension = 3072, padding_idx = 1, max_seq_len = 514,
               num_attention_heads = 12, num_encoder_layers = 12;
  double dropout = 0.1;
  bool normalize_before = false;
};

namespace text {

// nn.Embedding(num, dim, padding_idx): weight [num, dim]; init N(0, 1) with the padding row zero.
class EmbeddingImpl : public torch::nn::Module, public nn::Resettable {
 public:
  EmbeddingImpl(std::int64_t num_embeddings, std::int64_t embedding_dim, std::int64_t padding_idx);
  torch::Tensor forward(const torch::Tensor& ids);
  void reset_parameters() override;
  std::int64_t padding_idx;
  torch::Tensor weight;
};
TORCH_MODULE(Embedding);

// torchtext's PositionalEmbedding: positions cumsum(ids != pad) * (ids != pad) + pad, looked up in `embedding`.
class PositionalEmbeddingImpl : public torch::nn::Module {
 public:
  PositionalEmbeddingImpl(std::int64_t num_embeddings, std::int64_t embedding_dim, std::int64_t pad_index);
  torch::Tensor forward(const torch::Tensor& ids);
  Embedding embedding{nullptr};
  std::int64_t pad_index;
};
TORCH_MODULE(PositionalEmbedding);

// nn.TransformerEncoderLayer(batch_first=True, activation="gelu", norm_first=normalize_before).
class TransformerEncoderLayerImpl : public torch::nn::Module {
 public:
  TransformerEncoderLayerImpl(std::int64_t d_model, std::int64_t nhead, std::int64_t dim_feedforward, double dropout,
                              bool norm_first);
  // x [B, T, D] dense, with its key padding mask; or a nested tensor with an undefined mask.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& key_padding_mask);
  // Whether PyTorch 1.13 runs this layer's fused kernel for x (eval, even heads, no gradient needed).
  bool fast_path(const torch::Tensor& x) const;
  // Whether this layer runs step by step instead, with the same numbers: while mz::optimize_for_inference traces
  // the model (to see its linear maps' inputs) and once it packed one of them (the fused kernel cannot read it).
  bool stepwise() const;
  ops::SelfAttention self_attn{nullptr};
  nn::Linear linear1{nullptr}, linear2{nullptr};
  nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  double dropout;
  bool norm_first;
};
TORCH_MODULE(TransformerEncoderLayer);

// nn.TransformerEncoder(enable_nested_tensor=True, mask_check=False): its children are "layers.{i}".
class TransformerLayersImpl : public torch::nn::Module {
 public:
  TransformerLayersImpl(const RobertaEncoderConf& conf);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& key_padding_mask);
  torch::nn::ModuleList layers{nullptr};
};
TORCH_MODULE(TransformerLayers);

// torchtext.models.roberta.modules.TransformerEncoder. Loads checkpoints with the old layer names
// (layers.{i}.attention.input_projection, residual_mlp.mlp.0, ...) as torchtext's _load_from_state_dict does.
class RobertaTransformerImpl : public torch::nn::Module, public CheckpointAdapter {
 public:
  explicit RobertaTransformerImpl(const RobertaEncoderConf& conf);
  torch::Tensor forward(const torch::Tensor& tokens);  // [B, T] -> [B, T', D]
  void adapt_checkpoint(IncomingState& state, const std::string& prefix) override;
  Embedding token_embedding{nullptr};
  TransformerLayers layers{nullptr};
  PositionalEmbedding positional_embedding{nullptr};
  nn::LayerNorm embedding_layer_norm{nullptr};
  RobertaEncoderConf conf;
};
TORCH_MODULE(RobertaTransformer);

}  // namespace text

// torchtext.models.RobertaEncoder: the child "transformer".
class RobertaEncoderImpl : public torch::nn::Module {
 public:
  explicit RobertaEncoderImpl(const RobertaEncoderConf& conf);
  torch::Tensor forward(const torch::Tensor& tokens);
  void reset_parameters();  // torchtext's init: PyTorch's defaults, then each attention's _reset_parameters
  text::RobertaTransformer transformer{nullptr};
};
TORCH_MODULE(RobertaEncoder);

// torchtext.models.RobertaModel: an encoder ("encoder") and optionally a head ("head"), any TextHeadImpl.
class RobertaModelImpl : public torch::nn::Module {
 public:
  RobertaModelImpl(const RobertaEncoderConf& conf, std::shared_ptr<TextHeadImpl> head = nullptr);
  torch::Tensor forward(const torch::Tensor& tokens);  // features [B, T', D], or the head's output
  // mz::Model::run: int64 "input" [B, T] -> "output" (or the head's named outputs). Checks the ids
  // (integer, 2-D, within the vocabulary, not longer than the position table) and throws mz::UsageError.
  TensorDict run(const TensorDict& inputs);
  static TensorDict example_inputs(std::int64_t batch, std::int64_t tokens);  // random ids in [3, 20), no padding
  // Checks token ids as run() does; throws mz::UsageError naming `what`.
  void check_tokens(const torch::Tensor& tokens, const std::string& what = "input") const;
  // freeze_encoder: requires_grad false on every encoder parameter (torchtext's RobertaEncoder(freeze=True)).
  void freeze_encoder();

  RobertaEncoder encoder{nullptr};
  std::shared_ptr<TextHeadImpl> head;
  RobertaEncoderConf conf;
  std::optional<LoadReport> load_report;  // set by a builder given weights: what loaded, what was skipped
};
TORCH_MODULE(RobertaModel);

// The builders: the configuration of torchtext's bundles (RoBERTa: vocab 50265; XLM-R: 250002; base:
// D 768, FF 3072, 12 heads, 12 layers; large: 1024, 4096, 16, 24). With weights, options that contradict
// the weights' config are an error. With a head, the head's fresh tensors win over the checkpoint's and
// the load's report lists them as skipped (torchtext's get_model(head=...), which loads silently with
// strict=False); every other key must match.
RobertaModel roberta_base(std::optional<RoBERTa_Base_Weights> weights = {}, RobertaOptions options = {});
RobertaModel roberta_large(std::optional<RoBERTa_Large_Weights> weights = {}, RobertaOptions options = {});
RobertaModel xlmr_base(std::optional<XLMR_Base_Weights> weights = {}, RobertaOptions options = {});
RobertaModel xlmr_large(std::optional<XLMR_Large_Weights> weights = {}, RobertaOptions options = {});

}  // namespace mz
