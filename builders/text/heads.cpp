// Task heads over any text encoder's features [B, T, D].
#include "modelzoo/text/heads.h"

#include <torch/nn/functional/normalization.h>

namespace mz {

TensorDict TextHeadImpl::outputs(const torch::Tensor& features) {
  TensorDict out;
  out.insert("output", forward(features));
  return out;
}

RobertaClassificationHeadImpl::RobertaClassificationHeadImpl(std::int64_t num_classes, std::int64_t input_dim,
                                                             std::optional<std::int64_t> inner_dim, double dropout)
    : dropout(dropout) {
  const std::int64_t inner = inner_dim && *inner_dim ? *inner_dim : input_dim;  // torchtext: `if not inner_dim`
  dense = register_module("dense", nn::Linear(input_dim, inner));
  out_proj = register_module("out_proj", nn::Linear(inner, num_classes));
}

torch::Tensor RobertaClassificationHeadImpl::forward(const torch::Tensor& features) {
  auto x = torch::dropout(features.select(1, 0), dropout, is_training());
  x = torch::relu(dense(x));
  return out_proj(torch::dropout(x, dropout, is_training()));
}

TokenClassificationHeadImpl::TokenClassificationHeadImpl(std::int64_t num_classes, std::int64_t input_dim,
                                                         double dropout)
    : dropout(dropout) {
  out_proj = register_module("out_proj", nn::Linear(input_dim, num_classes));
}

torch::Tensor TokenClassificationHeadImpl::forward(const torch::Tensor& features) {
  return out_proj(torch::dropout(features, dropout, is_training()));
}

SpanHeadImpl::SpanHeadImpl(std::int64_t input_dim) {
  qa_outputs = register_module("qa_outputs", nn::Linear(input_dim, 2));
}

torch::Tensor SpanHeadImpl::forward(const torch::Tensor& features) { return qa_outputs(features); }

TensorDict SpanHeadImpl::outputs(const torch::Tensor& features) {
  auto logits = forward(features);
  TensorDict out;
  out.insert("start_logits", logits.select(-1, 0).contiguous());
  out.insert("end_logits", logits.select(-1, 1).contiguous());
  return out;
}

MaskedLMHeadImpl::MaskedLMHeadImpl(std::int64_t input_dim, std::int64_t vocab_size,
                                   std::function<torch::Tensor()> embedding_weight)
    : embedding_weight_(std::move(embedding_weight)) {
  dense = register_module("dense", nn::Linear(input_dim, input_dim));
  layer_norm = register_module("layer_norm", nn::LayerNorm(torch::nn::LayerNormOptions({input_dim})));
  bias = register_parameter("bias", torch::empty({vocab_size}));
}

torch::Tensor MaskedLMHeadImpl::forward(const torch::Tensor& features) {
  auto x = layer_norm(torch::gelu(dense(features)));
  return projection_packed.linear(x, embedding_weight_(), {}) + bias;
}

void MaskedLMHeadImpl::reset_parameters() {
  nn::reset_parameters(*this);
  torch::NoGradGuard no_grad;
  bias.zero_();
}

std::shared_ptr<TextHeadImpl> make_text_head(const TextHeadOptions& o, std::int64_t input_dim, std::int64_t vocab_size,
                                             std::function<torch::Tensor()> embedding_weight) {
  auto classes = [&] {
    if (!o.num_classes || *o.num_classes <= 0)
      throw UsageError("head", "type '" + o.type + "' needs a positive num_classes");
    return *o.num_classes;
  };
  if (o.dropout < 0.0 || o.dropout > 1.0) throw UsageError("head", "dropout must be in [0, 1]");
  if (o.type == "classification")
    return RobertaClassificationHead(classes(), input_dim, o.inner_dim, o.dropout).ptr();
  if (o.type == "token_classification") return TokenClassificationHead(classes(), input_dim, o.dropout).ptr();
  if (o.type == "span") return SpanHead(input_dim).ptr();
  if (o.type == "mlm") return MaskedLMHead(input_dim, vocab_size, std::move(embedding_weight)).ptr();
  throw UsageError("head", "unknown type '" + o.type + "' (valid: classification, token_classification, span, mlm)");
}

}  // namespace mz
