// RoBERTa / XLM-R: embeddings -> layers -> encoder -> model -> builders, as in torchtext.models.roberta.
#include "modelzoo/text/roberta.h"

#include <cmath>

#include <ATen/ops/_nested_tensor_from_mask.h>
#include <ATen/ops/_transformer_encoder_layer_fwd.h>
#include <torch/nn/init.h>

#include "builders/common.h"
#include "builders/text/common.h"
#include "registry/register.h"

namespace mz {
namespace text {

EmbeddingImpl::EmbeddingImpl(std::int64_t num_embeddings, std::int64_t embedding_dim, std::int64_t padding_idx)
    : padding_idx(padding_idx) {
  weight = register_parameter("weight", torch::empty({num_embeddings, embedding_dim}));
}

torch::Tensor EmbeddingImpl::forward(const torch::Tensor& ids) { return torch::embedding(weight, ids, padding_idx); }

void EmbeddingImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  torch::nn::init::normal_(weight);
  weight[padding_idx].zero_();
}

PositionalEmbeddingImpl::PositionalEmbeddingImpl(std::int64_t num_embeddings, std::int64_t embedding_dim,
                                                 std::int64_t pad_index)
    : pad_index(pad_index) {
  embedding = register_module("embedding", Embedding(num_embeddings, embedding_dim, pad_index));
}

torch::Tensor PositionalEmbeddingImpl::forward(const torch::Tensor& ids) {
  auto masked = ids.ne(pad_index).to(torch::kLong);
  return embedding(torch::cumsum(masked, 1) * masked + pad_index);
}

TransformerEncoderLayerImpl::TransformerEncoderLayerImpl(std::int64_t d_model, std::int64_t nhead,
                                                         std::int64_t dim_feedforward, double dropout, bool norm_first)
    : dropout(dropout), norm_first(norm_first) {
  self_attn = register_module("self_attn", ops::SelfAttention(d_model, nhead, dropout));
  linear1 = register_module("linear1", nn::Linear(d_model, dim_feedforward));
  linear2 = register_module("linear2", nn::Linear(dim_feedforward, d_model));
  norm1 = register_module("norm1", nn::LayerNorm(torch::nn::LayerNormOptions({d_model})));
  norm2 = register_module("norm2", nn::LayerNorm(torch::nn::LayerNormOptions({d_model})));
}

bool TransformerEncoderLayerImpl::fast_path(const torch::Tensor& x) const {
  if (is_training() || self_attn->num_heads % 2 == 1) return false;
  if (!torch::GradMode::is_enabled()) return true;
  if (x.requires_grad()) return false;
  for (const auto& p : parameters())
    if (p.requires_grad()) return false;
  return true;
}

bool TransformerEncoderLayerImpl::stepwise() const {
  return nn::detail::trace_probe() || self_attn->in_proj_packed || self_attn->out_proj->packed || linear1->packed ||
         linear2->packed;
}

torch::Tensor TransformerEncoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& key_padding_mask) {
  if (x.is_nested() || (fast_path(x) && !stepwise())) {
    c10::optional<int64_t> mask_type;
    if (key_padding_mask.defined()) mask_type = 1;
    return at::_transformer_encoder_layer_fwd(
        x, self_attn->embed_dim, self_attn->num_heads, self_attn->adapted(self_attn->in_proj_weight),
        self_attn->in_proj_bias, self_attn->out_proj->adapted(self_attn->out_proj->weight), self_attn->out_proj->bias,
        /*use_gelu=*/true, norm_first, norm1->options.eps(), norm1->weight, norm1->bias, norm2->weight, norm2->bias,
        linear1->adapted(linear1->weight), linear1->bias, linear2->adapted(linear2->weight), linear2->bias,
        key_padding_mask.defined() ? c10::optional<torch::Tensor>(key_padding_mask) : c10::nullopt, mask_type);
  }
  const bool train = is_training();
  auto sa = [&](const torch::Tensor& h) {
    return torch::dropout(self_attn->forward(h, key_padding_mask), dropout, train);
  };
  auto ff = [&](const torch::Tensor& h) {
    auto inner = torch::dropout(torch::gelu(linear1(h)), dropout, train);
    return torch::dropout(linear2(inner), dropout, train);
  };
  if (norm_first) {
    auto h = x + sa(norm1(x));
    return h + ff(norm2(h));
  }
  auto h = norm1(x + sa(x));
  return norm2(h + ff(h));
}

TransformerLayersImpl::TransformerLayersImpl(const RobertaEncoderConf& conf) {
  if (conf.num_attention_heads <= 0 || conf.embedding_dim % conf.num_attention_heads != 0)
    throw UsageError("RobertaEncoder", "embedding_dim (" + std::to_string(conf.embedding_dim) +
                                           ") must be divisible by num_attention_heads (" +
                                           std::to_string(conf.num_attention_heads) + ")");
  layers = register_module("layers", torch::nn::ModuleList());
  for (std::int64_t i = 0; i < conf.num_encoder_layers; ++i)
    layers->push_back(TransformerEncoderLayer(conf.embedding_dim, conf.num_attention_heads, conf.ffn_dimension,
                                              conf.dropout, conf.normalize_before));
}

// nn.TransformerEncoder.forward in torch 1.13: when the first layer would take its fast path (and
// is post-norm), the batch becomes a nested tensor of the unpadded rows and comes back padded with 0.
// A batch without padding skips that detour (and its mask): the same kernels on the dense batch, which
// give the same rows without the nested tensor's conversions. When a layer runs step by step (stepwise()),
// which cannot read a nested tensor, the dense batch gives the same result: the nested tensor keeps each row's
// first n tokens (n its unpadded count, wherever the padding is), and comes back with the rest zero and the
// batch cut to its longest row.
torch::Tensor TransformerLayersImpl::forward(const torch::Tensor& x, const torch::Tensor& key_padding_mask) {
  if (layers->is_empty()) return x;
  auto first = layers->ptr<TransformerEncoderLayerImpl>(0);
  const bool padded = key_padding_mask.defined() && key_padding_mask.any().item<bool>();
  const bool as_nested = padded && !first->norm_first && first->fast_path(x);
  bool stepwise = false;
  for (const auto& layer : *layers) stepwise = stepwise || layer->as<TransformerEncoderLayerImpl>()->stepwise();
  const bool nested = as_nested && !stepwise;
  torch::Tensor out = nested ? at::_nested_tensor_from_mask(x, key_padding_mask.logical_not(), /*mask_check=*/false) : x;
  torch::Tensor mask = nested || !padded ? torch::Tensor() : key_padding_mask, lengths;
  if (as_nested && !nested) {
    lengths = key_padding_mask.logical_not().sum(1, /*keepdim=*/true);
    mask = torch::arange(x.size(1), lengths.options()).unsqueeze(0) >= lengths;
  }
  for (const auto& layer : *layers) out = layer->as<TransformerEncoderLayerImpl>()->forward(out, mask);
  if (nested) return out.to_padded_tensor(0.);
  if (lengths.defined()) return out.masked_fill(mask.unsqueeze(-1), 0).narrow(1, 0, lengths.max().item<std::int64_t>());
  return out;
}

RobertaTransformerImpl::RobertaTransformerImpl(const RobertaEncoderConf& conf) : conf(conf) {
  token_embedding = register_module("token_embedding", Embedding(conf.vocab_size, conf.embedding_dim, conf.padding_idx));
  layers = register_module("layers", TransformerLayers(conf));
  positional_embedding = register_module(
      "positional_embedding", PositionalEmbedding(conf.max_seq_len, conf.embedding_dim, conf.padding_idx));
  embedding_layer_norm =
      register_module("embedding_layer_norm", nn::LayerNorm(torch::nn::LayerNormOptions({conf.embedding_dim})));
}

torch::Tensor RobertaTransformerImpl::forward(const torch::Tensor& tokens) {
  const auto padding_mask = tokens.eq(conf.padding_idx);
  auto embedded = token_embedding(tokens) + positional_embedding(tokens);
  if (!conf.normalize_before) embedded = embedding_layer_norm(embedded);
  embedded = torch::dropout(embedded, conf.dropout, is_training());
  auto encoded = layers(embedded, padding_mask);
  return conf.normalize_before ? embedding_layer_norm(encoded) : encoded;
}

void RobertaTransformerImpl::adapt_checkpoint(IncomingState& state, const std::string& prefix) {
  static const std::pair<const char*, const char*> kOldNames[] = {
      {"attention.input_projection.weight", "self_attn.in_proj_weight"},
      {"attention.input_projection.bias", "self_attn.in_proj_bias"},
      {"attention.output_projection.weight", "self_attn.out_proj.weight"},
      {"attention.output_projection.bias", "self_attn.out_proj.bias"},
      {"residual_mlp.mlp.0.weight", "linear1.weight"},
      {"residual_mlp.mlp.0.bias", "linear1.bias"},
      {"residual_mlp.mlp.3.weight", "linear2.weight"},
      {"residual_mlp.mlp.3.bias", "linear2.bias"},
      {"attention_layer_norm.weight", "norm1.weight"},
      {"attention_layer_norm.bias", "norm1.bias"},
      {"final_layer_norm.weight", "norm2.weight"},
      {"final_layer_norm.bias", "norm2.bias"},
  };
  for (std::int64_t i = 0; i < conf.num_encoder_layers; ++i) {
    const std::string index = std::to_string(i) + ".";
    for (const auto& [old_name, name] : kOldNames)
      state.rename(prefix + "layers." + index + old_name, prefix + "layers.layers." + index + name);
  }
}

}  // namespace text

RobertaEncoderImpl::RobertaEncoderImpl(const RobertaEncoderConf& conf) {
  transformer = register_module("transformer", text::RobertaTransformer(conf));
}

torch::Tensor RobertaEncoderImpl::forward(const torch::Tensor& tokens) { return transformer(tokens); }

void RobertaEncoderImpl::reset_parameters() {
  nn::reset_parameters(*this);
  nn::for_each<ops::SelfAttentionImpl>(*this, [](ops::SelfAttentionImpl& a) { a.reset_parameters(); });
}

RobertaModelImpl::RobertaModelImpl(const RobertaEncoderConf& conf, std::shared_ptr<TextHeadImpl> head)
    : head(std::move(head)), conf(conf) {
  encoder = register_module("encoder", RobertaEncoder(conf));
  if (this->head) register_module("head", this->head);
}

torch::Tensor RobertaModelImpl::forward(const torch::Tensor& tokens) {
  auto features = encoder(tokens);
  return head ? head->forward(features) : features;
}

void RobertaModelImpl::check_tokens(const torch::Tensor& tokens, const std::string& what) const {
  text::check_token_ids(tokens, what, conf.vocab_size);
  const std::int64_t max_tokens = conf.max_seq_len - conf.padding_idx - 1;
  if (tokens.size(1) > max_tokens)
    throw UsageError(what, "sequence of " + std::to_string(tokens.size(1)) +
                               " tokens is longer than the position table allows (" + std::to_string(max_tokens) + ")");
}

TensorDict RobertaModelImpl::run(const TensorDict& inputs) {
  if (!inputs.contains("input")) throw UsageError("input", "no tensor named 'input' (token ids [B, T], int64)");
  const auto& tokens = inputs.at("input");
  check_tokens(tokens);
  auto features = encoder(tokens.to(torch::kLong));
  if (head) return head->outputs(features);
  TensorDict out;
  out.insert("output", features);
  return out;
}

TensorDict RobertaModelImpl::example_inputs(std::int64_t batch, std::int64_t tokens) {
  TensorDict out;
  out.insert("input", torch::randint(3, 20, {batch, tokens}, torch::kLong));  // valid for any vocabulary of 20+
  return out;
}

void RobertaModelImpl::freeze_encoder() {
  for (auto& p : encoder->parameters()) p.set_requires_grad(false);
}

namespace {

// The weights' (or the DEFAULT weights') RobertaEncoderConf, with the caller's options: without
// weights any option applies; with weights one that contradicts their config is an error.
RobertaEncoderConf resolve_conf(const RobertaOptions& o, const WeightsRecord& config_source, bool with_weights,
                                const char* builder) {
  const text::ConfigSource c(config_source, with_weights, builder);
  RobertaEncoderConf conf;
  conf.vocab_size = c.pick(o.vocab_size, "vocab_size");
  conf.embedding_dim = c.pick(o.embedding_dim, "embedding_dim");
  conf.ffn_dimension = c.pick(o.ffn_dimension, "ffn_dimension");
  conf.padding_idx = c.pick(o.padding_idx, "padding_idx");
  conf.max_seq_len = c.pick(o.max_seq_len, "max_seq_len");
  conf.num_attention_heads = c.pick(o.num_attention_heads, "num_attention_heads");
  conf.num_encoder_layers = c.pick(o.num_encoder_layers, "num_encoder_layers");
  conf.dropout = c.free(o.dropout, "dropout");  // dropout does not change the weights
  conf.normalize_before = c.pick(o.normalize_before, "normalize_before");
  if (conf.padding_idx < 0 || conf.padding_idx >= conf.vocab_size || conf.padding_idx >= conf.max_seq_len)
    throw UsageError(c.subject(), "padding_idx " + std::to_string(conf.padding_idx) + " is outside the embeddings");
  return conf;
}

template <class W>
RobertaModel make_roberta(const std::optional<W>& weights, const RobertaOptions& options, const char* builder) {
  const WeightsRecord& source = weights ? weights->record() : W::DEFAULT.record();
  const RobertaEncoderConf conf = resolve_conf(options, source, weights.has_value(), builder);
  // The masked-LM head reads the encoder's embedding matrix (tied), which exists once the model does.
  auto tied = std::make_shared<std::weak_ptr<text::EmbeddingImpl>>();
  std::shared_ptr<TextHeadImpl> head = text::make_head(options.head, builder, conf.embedding_dim, conf.vocab_size, tied);
  RobertaModel model(conf, head);
  *tied = model->encoder->transformer->token_embedding.ptr();
  if (!architecture_only()) {
    if (weights) {
      const LoadOptions load = text::load_options_with_head(head != nullptr);
      model->load_report = load_weights(*model, *weights, load);
    } else {
      model->encoder->reset_parameters();
    }
    if (head) head->reset_parameters();
  }
  if (options.freeze_encoder) model->freeze_encoder();
  return model;
}

}  // namespace

RobertaModel roberta_base(std::optional<RoBERTa_Base_Weights> w, RobertaOptions o) { return make_roberta(w, o, "roberta_base"); }
RobertaModel roberta_large(std::optional<RoBERTa_Large_Weights> w, RobertaOptions o) {
  return make_roberta(w, o, "roberta_large");
}
RobertaModel xlmr_base(std::optional<XLMR_Base_Weights> w, RobertaOptions o) { return make_roberta(w, o, "xlmr_base"); }
RobertaModel xlmr_large(std::optional<XLMR_Large_Weights> w, RobertaOptions o) { return make_roberta(w, o, "xlmr_large"); }

MZ_REGISTER_MODEL(roberta_base);
MZ_REGISTER_MODEL(roberta_large);
MZ_REGISTER_MODEL(xlmr_base);
MZ_REGISTER_MODEL(xlmr_large);

}  // namespace mz
