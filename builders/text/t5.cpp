// T5: layer norm -> attention with relative position bias -> layers -> stacks -> model -> generation ->
// builders, as in torchtext.prototype.models.t5 (modules.py, model.py, wrapper.py).
#include "modelzoo/text/t5.h"

#include <cmath>
#include <limits>

#include <torch/nn/init.h>

#include "builders/common.h"
#include "builders/text/common.h"
#include "registry/register.h"

namespace mz {
namespace text {

T5LayerNormImpl::T5LayerNormImpl(std::int64_t d_model, double eps) : eps(eps) {
  weight = register_parameter("weight", torch::ones({d_model}));
}

torch::Tensor T5LayerNormImpl::forward(const torch::Tensor& x) {
  auto variance = x.to(torch::kFloat32).pow(2).mean(-1, /*keepdim=*/true);
  return weight * (x * torch::rsqrt(variance + eps));
}

void T5LayerNormImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  weight.fill_(1);
}

T5MultiheadAttentionImpl::T5MultiheadAttentionImpl(const T5Conf& conf, bool is_decoder,
                                                   bool compute_relative_attention_bias)
    : num_heads(conf.num_attention_heads),
      qkv_dim(conf.qkv_dim),
      num_buckets(conf.relative_attention_num_buckets),
      max_distance(conf.relative_attention_max_distance),
      is_decoder(is_decoder),
      dropout(conf.training ? conf.dropout : 0.0) {
  const std::int64_t inner = num_heads * qkv_dim, d = conf.embedding_dim;
  if (num_heads <= 0 || d % num_heads != 0)  // torch.nn.MultiheadAttention's check, which torchtext inherits
    throw UsageError("T5", "embedding_dim (" + std::to_string(d) + ") must be divisible by num_attention_heads (" +
                               std::to_string(num_heads) + ")");
  q_proj_weight = register_parameter("q_proj_weight", torch::empty({inner, d}));
  k_proj_weight = register_parameter("k_proj_weight", torch::empty({inner, d}));
  v_proj_weight = register_parameter("v_proj_weight", torch::empty({inner, d}));
  out_proj = register_module("out_proj", nn::Linear(torch::nn::LinearOptions(inner, d).bias(false)));
  if (compute_relative_attention_bias)
    relative_attention_bias =
        register_module("relative_attention_bias", torch::nn::Embedding(num_buckets, num_heads));
}

void T5MultiheadAttentionImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  for (auto* w : {&q_proj_weight, &k_proj_weight, &v_proj_weight}) torch::nn::init::xavier_uniform_(*w);
  if (relative_attention_bias) torch::nn::init::normal_(relative_attention_bias->weight);
}

// Mesh TensorFlow's bucketing of relative positions (memory - query), as torchtext computes it.
torch::Tensor T5MultiheadAttentionImpl::compute_bias(std::int64_t query_length, std::int64_t key_length,
                                                     bool bidirectional) const {
  auto context = torch::arange(query_length, torch::kLong).unsqueeze(1);
  auto memory = torch::arange(key_length, torch::kLong).unsqueeze(0);
  auto relative = memory - context;
  auto buckets = torch::zeros(relative.sizes(), torch::kLong);
  std::int64_t n = num_buckets;
  if (bidirectional) {
    n /= 2;
    buckets += relative.gt(0).to(torch::kLong) * n;
    relative = relative.abs();
  } else {
    relative = -torch::min(relative, torch::zeros_like(relative));
  }
  const std::int64_t max_exact = n / 2;
  auto is_small = relative.lt(max_exact);
  auto large = max_exact + (torch::log(relative.to(torch::kFloat) / max_exact) /
                            std::log(static_cast<double>(max_distance) / static_cast<double>(max_exact)) *
                            static_cast<double>(n - max_exact))
                               .to(torch::kLong);
  large = torch::min(large, torch::full_like(large, n - 1));
  buckets += torch::where(is_small, relative, large);
  return torch::embedding(relative_attention_bias->weight, buckets).permute({2, 0, 1}).unsqueeze(0);  // [1, H, L, S]
}

// torchtext's _t5_multi_head_attention_forward: no 1/sqrt(d) scaling; masks become -inf added to the
// (batch-repeated) position bias, which is added to the scores.
torch::Tensor T5MultiheadAttentionImpl::forward(const torch::Tensor& query, const torch::Tensor& key,
                                                const torch::Tensor& value, const torch::Tensor& key_padding_mask,
                                                const torch::Tensor& attn_mask, torch::Tensor& position_bias) {
  const auto b = query.size(0), l = query.size(1), s = key.size(1);
  auto heads = [&](const torch::Tensor& x, const torch::Tensor& w, const nn::PackedWeight& packed) {
    return packed.linear(x, w, {}).view({b, -1, num_heads, qkv_dim}).transpose(1, 2);
  };
  auto q = heads(query, q_proj_weight, q_proj_packed), k = heads(key, k_proj_weight, k_proj_packed),
       v = heads(value, v_proj_weight, v_proj_packed);
  torch::Tensor mask;  // bool [B, H, L, S]
  if (attn_mask.defined()) mask = attn_mask.view({1, 1, l, s}).expand({b, num_heads, -1, -1});
  if (key_padding_mask.defined()) {
    auto padding = key_padding_mask.view({b, 1, 1, s}).expand({-1, num_heads, l, -1});
    mask = mask.defined() ? mask.logical_or(padding) : padding;
  }
  if (!position_bias.defined())
    position_bias = relative_attention_bias ? compute_bias(l, s, !is_decoder)
                                            : torch::zeros({num_heads, l, s}, k.options()).unsqueeze(0);
  auto bias = position_bias.repeat({b, 1, 1, 1});
  if (mask.defined())
    bias += torch::zeros_like(mask, q.options()).masked_fill_(mask, -std::numeric_limits<float>::infinity());
  auto scores = torch::matmul(q, k.transpose(3, 2));
  scores += bias;
  auto weights = torch::softmax(scores, -1);
  if (dropout > 0.0 && is_training()) weights = torch::dropout(weights, dropout, true);
  auto out = torch::matmul(weights, v).transpose(1, 2).contiguous().view({b, -1, num_heads * qkv_dim});
  return out_proj(out);
}

T5LayerImpl::T5LayerImpl(const T5Conf& conf, bool decoder, bool compute_relative_attention_bias)
    : gelu(conf.activation == "gelu"), dropout(conf.training ? conf.dropout : 0.0) {
  if (conf.activation != "relu" && conf.activation != "gelu")
    throw UsageError("T5", "activation must be \"relu\" or \"gelu\", got \"" + conf.activation + "\"");
  // torchtext builds the decoder layer's self-attention with is_decoder=False too (bidirectional buckets)
  self_attn = register_module("self_attn", T5MultiheadAttention(conf, false, compute_relative_attention_bias));
  const auto d = conf.embedding_dim, ff = conf.ffn_dimension;
  linear1 = register_module("linear1", nn::Linear(torch::nn::LinearOptions(d, ff).bias(false)));
  linear2 = register_module("linear2", nn::Linear(torch::nn::LinearOptions(ff, d).bias(false)));
  norm1 = register_module("norm1", T5LayerNorm(d, conf.layer_norm_eps));
  norm2 = register_module("norm2", T5LayerNorm(d, conf.layer_norm_eps));
  if (decoder) {
    cross_attn = register_module("cross_attn", T5MultiheadAttention(conf, true, false));
    norm3 = register_module("norm3", T5LayerNorm(d, conf.layer_norm_eps));
  }
}

torch::Tensor T5LayerImpl::forward(const torch::Tensor& x, const torch::Tensor& attn_mask,
                                   const torch::Tensor& key_padding_mask, torch::Tensor& position_bias,
                                   const torch::Tensor& memory, const torch::Tensor& memory_key_padding_mask) {
  const bool train = is_training() && dropout > 0.0;
  auto drop = [&](const torch::Tensor& t) { return train ? torch::dropout(t, dropout, true) : t; };
  auto h = norm1(x);
  auto out = x + drop(self_attn->forward(h, h, h, key_padding_mask, attn_mask, position_bias));
  if (cross_attn) {
    torch::Tensor no_bias;  // cross-attention has no relative bias: zeros
    out = out + drop(cross_attn->forward(norm3(out), memory, memory, memory_key_padding_mask, {}, no_bias));
  }
  auto inner = linear1(norm2(out));
  inner = drop(gelu ? torch::gelu(inner) : torch::relu(inner));
  return out + drop(linear2(inner));
}

T5StackImpl::T5StackImpl(const T5Conf& conf, bool decoder) {
  layers = register_module("layers", torch::nn::ModuleList());
  const auto n = decoder ? conf.num_decoder_layers : conf.num_encoder_layers;
  for (std::int64_t i = 0; i < n; ++i) layers->push_back(T5Layer(conf, decoder, /*compute bias=*/i == 0));
}

torch::Tensor T5StackImpl::forward(const torch::Tensor& x, const torch::Tensor& attn_mask,
                                   const torch::Tensor& key_padding_mask, const torch::Tensor& memory,
                                   const torch::Tensor& memory_key_padding_mask) {
  torch::Tensor out = x, position_bias;
  for (const auto& layer : *layers)
    out = layer->as<T5LayerImpl>()->forward(out, attn_mask, key_padding_mask, position_bias, memory,
                                            memory_key_padding_mask);
  return out;
}

}  // namespace text

T5ModelImpl::T5ModelImpl(const T5Conf& conf, std::shared_ptr<TextHeadImpl> head) : head(std::move(head)), conf(conf) {
  token_embeddings =
      register_module("token_embeddings", text::Embedding(conf.vocab_size, conf.embedding_dim, conf.padding_idx));
  encoder = register_module("encoder", text::T5Stack(conf, false));
  norm1 = register_module("norm1", text::T5LayerNorm(conf.embedding_dim));  // eps 1e-6, as torchtext
  if (!conf.encoder_only) {
    decoder = register_module("decoder", text::T5Stack(conf, true));
    norm2 = register_module("norm2", text::T5LayerNorm(conf.embedding_dim));
  }
  if (conf.linear_head)
    lm_head = register_module(
        "lm_head", nn::Linear(torch::nn::LinearOptions(conf.embedding_dim, conf.vocab_size).bias(false)));
  if (this->head) {
    if (!conf.encoder_only) throw UsageError("head", "goes over the encoder's features: set encoder_only");
    register_module("head", this->head);
  }
}

namespace {
torch::Tensor dropped(const torch::Tensor& x, const T5Conf& conf, bool training) {
  return training && conf.training && conf.dropout > 0 ? torch::dropout(x, conf.dropout, true) : x;
}
}  // namespace

torch::Tensor T5ModelImpl::encode(const torch::Tensor& encoder_tokens) {
  auto embedded = dropped(token_embeddings(encoder_tokens), conf, is_training());
  auto out = encoder->forward(embedded, {}, encoder_tokens.eq(conf.padding_idx));
  return dropped(norm1(out), conf, is_training());
}

torch::Tensor T5ModelImpl::decode(const torch::Tensor& decoder_tokens, const torch::Tensor& encoder_output,
                                  const torch::Tensor& encoder_padding_mask) {
  if (!decoder) throw UsageError("T5", "an encoder-only model has no decoder");
  const auto t = decoder_tokens.size(1);
  auto causal = torch::triu(torch::ones({t, t}, torch::kFloat64), 1).to(torch::kBool);
  auto padding = decoder_tokens.eq(conf.padding_idx);
  padding.select(1, 0).fill_(false);  // the start token is padding_idx, and is not padding
  auto embedded = dropped(token_embeddings(decoder_tokens), conf, is_training());
  auto out = decoder->forward(embedded, causal, padding, encoder_output, encoder_padding_mask);
  out = dropped(norm2(out), conf, is_training());
  if (lm_head) out = lm_head(out * std::pow(static_cast<double>(conf.embedding_dim), -0.5));
  return out;
}

T5Output T5ModelImpl::forward(const torch::Tensor& encoder_tokens, const torch::Tensor& decoder_tokens) {
  T5Output out;
  out.encoder_output = encode(encoder_tokens);
  if (head) out.head_output = head->forward(out.encoder_output);
  if (conf.encoder_only) return out;
  const torch::Tensor start = torch::full({encoder_tokens.size(0), 1}, conf.padding_idx, torch::kLong);
  out.decoder_output = decode(decoder_tokens.defined() ? decoder_tokens : start, out.encoder_output,
                              encoder_tokens.eq(conf.padding_idx));
  return out;
}

torch::Tensor T5ModelImpl::generate(const torch::Tensor& encoder_tokens, std::int64_t max_length, std::int64_t eos_idx) {
  if (!lm_head) throw UsageError("T5", "generation needs the language-model head (linear_head; GENERATION weights)");
  if (max_length < 0) throw UsageError("max_length", "must not be negative, got " + std::to_string(max_length));
  check_tokens(encoder_tokens);
  const auto tokens = encoder_tokens.to(torch::kLong);
  const auto encoder_output = encode(tokens);
  const auto encoder_padding_mask = tokens.eq(conf.padding_idx);
  auto decoded = torch::full({tokens.size(0), 1}, conf.padding_idx, torch::kLong);
  auto incomplete = torch::ones({tokens.size(0)}, torch::kLong);
  for (std::int64_t step = 0; step < max_length; ++step) {
    auto logits = decode(decoded, encoder_output, encoder_padding_mask);
    auto next = std::get<1>(torch::topk(torch::log_softmax(logits.select(1, -1), -1), 1));  // [B, 1]
    decoded = torch::cat({decoded, next * incomplete.unsqueeze(1)}, 1);
    incomplete = incomplete - decoded.select(1, -1).eq(eos_idx).to(torch::kLong);
    if (incomplete.eq(0).all().item<bool>()) break;
  }
  return decoded;
}

void T5ModelImpl::check_tokens(const torch::Tensor& tokens, const std::string& what) const {
  text::check_token_ids(tokens, what, conf.vocab_size);
  if (tokens.size(1) == 0) throw UsageError(what, "no tokens (T is 0)");
}

TensorDict T5ModelImpl::run(const TensorDict& inputs) {
  if (!inputs.contains("input")) throw UsageError("input", "no tensor named 'input' (token ids [B, T], int64)");
  check_tokens(inputs.at("input"));
  const auto tokens = inputs.at("input").to(torch::kLong);
  torch::Tensor decoder_tokens;
  if (inputs.contains("decoder_input")) {
    if (conf.encoder_only)
      throw UsageError("decoder_input", "an encoder-only T5 (encoder_only) takes no decoder input");
    check_tokens(inputs.at("decoder_input"), "decoder_input");
    decoder_tokens = inputs.at("decoder_input").to(torch::kLong);
    if (decoder_tokens.size(0) != tokens.size(0))
      throw UsageError("decoder_input", "batch of " + std::to_string(decoder_tokens.size(0)) +
                                            " rows, but 'input' has " + std::to_string(tokens.size(0)));
  }
  T5Output out = forward(tokens, decoder_tokens);
  if (head) return head->outputs(out.encoder_output);
  TensorDict result;
  if (conf.encoder_only) {
    result.insert("output", out.encoder_output);
  } else {
    result.insert("output", out.decoder_output);
    result.insert("encoder_output", out.encoder_output);
  }
  return result;
}

TensorDict T5ModelImpl::example_inputs(std::int64_t batch, std::int64_t tokens) {
  TensorDict out;
  out.insert("input", torch::randint(2, 20, {batch, tokens}, torch::kLong));  // valid for any vocabulary of 20+
  return out;
}

namespace {

// The weights' (or the DEFAULT weights') T5Conf with the caller's options: without weights any option
// applies; with weights one that contradicts their config is an error (dropout and training aside,
// which change no weight).
T5Conf resolve_conf(const T5Options& o, const WeightsRecord& config_source, bool with_weights, const char* builder) {
  const text::ConfigSource c(config_source, with_weights, builder);
  T5Conf conf;
  conf.encoder_only = c.pick(o.encoder_only, "encoder_only");
  conf.linear_head = c.pick(o.linear_head, "linear_head");
  conf.embedding_dim = c.pick(o.embedding_dim, "embedding_dim");
  conf.qkv_dim = c.pick(o.qkv_dim, "qkv_dim");
  conf.num_attention_heads = c.pick(o.num_attention_heads, "num_attention_heads");
  conf.num_encoder_layers = c.pick(o.num_encoder_layers, "num_encoder_layers");
  conf.num_decoder_layers = c.pick(o.num_decoder_layers, "num_decoder_layers");
  conf.ffn_dimension = c.pick(o.ffn_dimension, "ffn_dimension");
  conf.dropout = c.free(o.dropout, "dropout");
  conf.activation = c.pick(o.activation, "activation");
  conf.layer_norm_eps = c.pick(o.layer_norm_eps, "layer_norm_eps");
  conf.relative_attention_num_buckets = c.pick(o.relative_attention_num_buckets, "relative_attention_num_buckets");
  conf.relative_attention_max_distance = c.pick(o.relative_attention_max_distance, "relative_attention_max_distance");
  conf.padding_idx = c.pick(o.padding_idx, "padding_idx");
  conf.max_seq_len = c.pick(o.max_seq_len, "max_seq_len");
  conf.vocab_size = c.pick(o.vocab_size, "vocab_size");
  conf.training = c.free(o.training, "training");
  const std::string& subject = c.subject();
  if (conf.padding_idx < 0 || conf.padding_idx >= conf.vocab_size)
    throw UsageError(subject, "padding_idx " + std::to_string(conf.padding_idx) + " is outside the vocabulary");
  const std::pair<std::int64_t, const char*> sizes[] = {
      {conf.embedding_dim, "embedding_dim"}, {conf.qkv_dim, "qkv_dim"}, {conf.num_attention_heads, "num_attention_heads"},
      {conf.ffn_dimension, "ffn_dimension"}, {conf.relative_attention_max_distance, "relative_attention_max_distance"}};
  for (const auto& [value, name] : sizes)
    if (value <= 0) throw UsageError(subject, std::string(name) + " must be positive, got " + std::to_string(value));
  if (conf.relative_attention_num_buckets < 4)  // half the buckets (bidirectional), half of those exact
    throw UsageError(subject, "relative_attention_num_buckets must be at least 4, got " +
                                  std::to_string(conf.relative_attention_num_buckets));
  return conf;
}

template <class W>
T5Model make_t5(const std::optional<W>& weights, const T5Options& options, const char* builder) {
  const WeightsRecord& source = weights ? weights->record() : W::DEFAULT.record();
  const T5Conf conf = resolve_conf(options, source, weights.has_value(), builder);
  auto tied = std::make_shared<std::weak_ptr<text::EmbeddingImpl>>();  // the masked-LM head's projection
  std::shared_ptr<TextHeadImpl> head = text::make_head(options.head, builder, conf.embedding_dim, conf.vocab_size, tied);
  T5Model model(conf, head);
  *tied = model->token_embeddings.ptr();
  if (!architecture_only()) {
    if (weights) {
      model->load_report = load_weights(*model, *weights, text::load_options_with_head(head != nullptr));
    } else {
      nn::reset_parameters(*model);
      nn::for_each<text::T5MultiheadAttentionImpl>(*model, [](text::T5MultiheadAttentionImpl& a) { a.reset_parameters(); });
    }
    if (head) head->reset_parameters();
  }
  if (options.freeze_model)  // T5's own weights (torchtext's freeze_model); a head stays trainable
    for (auto& p : model->named_parameters())
      if (p.key().rfind("head.", 0) != 0) p.value().set_requires_grad(false);
  return model;
}

}  // namespace

T5Model t5_small(std::optional<T5_Small_Weights> w, T5Options o) { return make_t5(w, o, "t5_small"); }
T5Model t5_base(std::optional<T5_Base_Weights> w, T5Options o) { return make_t5(w, o, "t5_base"); }
T5Model t5_large(std::optional<T5_Large_Weights> w, T5Options o) { return make_t5(w, o, "t5_large"); }
T5Model t5_3b(std::optional<T5_3B_Weights> w, T5Options o) { return make_t5(w, o, "t5_3b"); }
T5Model t5_11b(std::optional<T5_11B_Weights> w, T5Options o) { return make_t5(w, o, "t5_11b"); }

MZ_REGISTER_MODEL(t5_small);
MZ_REGISTER_MODEL(t5_base);
MZ_REGISTER_MODEL(t5_large);
MZ_REGISTER_MODEL(t5_3b);
MZ_REGISTER_MODEL(t5_11b);

}  // namespace mz
