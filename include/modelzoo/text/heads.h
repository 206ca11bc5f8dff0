// Task heads over any text encoder: each takes features [B, T, D] and knows nothing of the encoder
// that made them. A text model (RobertaModel) wraps an encoder and one of these as its child "head".
//
//   {"type": "classification", "num_classes": 3}        RobertaClassificationHead: x[:, 0] -> [B, C]
//   {"type": "token_classification", "num_classes": 9}  per token: [B, T, C]
//   {"type": "span"}                                     question answering: start and end logits [B, T]
//   {"type": "mlm"}                                      masked LM, output projection tied to the embedding
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <torch/nn/module.h>

#include "modelzoo/layers/nn.h"
#include "modelzoo/options.h"
#include "modelzoo/tensor_dict.h"

namespace mz {

// A head's configuration by name, as `--options '{"head": {...}}'` gives it.
struct TextHeadOptions {
  std::string type;                        // "classification", "token_classification", "span" or "mlm"
  std::optional<std::int64_t> num_classes;  // classification and token_classification
  std::optional<std::int64_t> inner_dim;    // classification: default input_dim (torchtext)
  double dropout = 0.1;
};
MZ_OPTIONS(TextHeadOptions, type, num_classes, inner_dim, dropout)

// The interface every text head implements.
class TextHeadImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& features) = 0;
  // The head's output by name: {"output": ...}, or the span head's {"start_logits", "end_logits"}.
  virtual TensorDict outputs(const torch::Tensor& features);
  // PyTorch's default init of the head's layers (a fresh head, as torchtext builds one).
  virtual void reset_parameters() { nn::reset_parameters(*this); }
};

// torchtext.models.RobertaClassificationHead: x[:, 0, :] -> dropout -> dense -> ReLU -> dropout -> out_proj.
class RobertaClassificationHeadImpl : public TextHeadImpl {
 public:
  RobertaClassificationHeadImpl(std::int64_t num_classes, std::int64_t input_dim,
                                std::optional<std::int64_t> inner_dim = {}, double dropout = 0.1);
  torch::Tensor forward(const torch::Tensor& features) override;
  nn::Linear dense{nullptr}, out_proj{nullptr};
  double dropout;
};
TORCH_MODULE(RobertaClassificationHead);

// Per-token classification (tagging): dropout -> out_proj on every position, [B, T, C].
class TokenClassificationHeadImpl : public TextHeadImpl {
 public:
  TokenClassificationHeadImpl(std::int64_t num_classes, std::int64_t input_dim, double dropout = 0.1);
  torch::Tensor forward(const torch::Tensor& features) override;
  nn::Linear out_proj{nullptr};
  double dropout;
};
TORCH_MODULE(TokenClassificationHead);

// Extractive question answering: qa_outputs (D -> 2) gives start and end logits per position.
// forward returns [B, T, 2]; outputs() names the two halves.
class SpanHeadImpl : public TextHeadImpl {
 public:
  explicit SpanHeadImpl(std::int64_t input_dim);
  torch::Tensor forward(const torch::Tensor& features) override;
  TensorDict outputs(const torch::Tensor& features) override;
  nn::Linear qa_outputs{nullptr};
};
TORCH_MODULE(SpanHead);

// fairseq's RobertaLMHead: dense -> GELU -> layer_norm -> x @ E^T + bias, where E is the encoder's
// token embedding matrix itself (tied: no copy, no state-dict entry of its own). Keys: head.dense.*,
// head.layer_norm.*, head.bias. Logits [B, T, V].
class MaskedLMHeadImpl : public TextHeadImpl, public nn::PackableLinear {
 public:
  // `embedding_weight` returns the tied matrix [V, D] at call time (it follows any load into it).
  MaskedLMHeadImpl(std::int64_t input_dim, std::int64_t vocab_size, std::function<torch::Tensor()> embedding_weight);
  torch::Tensor forward(const torch::Tensor& features) override;
  void reset_parameters() override;
  std::vector<std::pair<torch::Tensor, nn::PackedWeight*>> linear_weights() override {
    return {{embedding_weight_(), &projection_packed}};
  }
  nn::Linear dense{nullptr};
  nn::LayerNorm layer_norm{nullptr};
  torch::Tensor bias;
  nn::PackedWeight projection_packed;  // the tied matrix, packed by mz::optimize_for_inference

 private:
  std::function<torch::Tensor()> embedding_weight_;
};
TORCH_MODULE(MaskedLMHead);

// Builds a head from its options over features of width `input_dim`; `embedding_weight` serves the
// masked-LM head's tie. Throws mz::UsageError naming the problem (unknown type, missing num_classes).
std::shared_ptr<TextHeadImpl> make_text_head(const TextHeadOptions& options, std::int64_t input_dim,
                                             std::int64_t vocab_size, std::function<torch::Tensor()> embedding_weight);

}  // namespace mz
