// wav2vec 2.0 / HuBERT: components -> model -> builders, as in torchaudio.models.wav2vec2 (components.py, model.py).
#include "modelzoo/audio/wav2vec2.h"

#include <algorithm>
#include <cmath>

#include "builders/common.h"
#include "builders/layers/init.h"
#include "registry/register.h"
#include "weights/json_number.h"

namespace mz {
namespace audio {
namespace {

torch::Tensor dropout(const torch::Tensor& x, double p, bool training) {
  return training && p > 0 ? torch::dropout(x, p, true) : x;
}

}  // namespace

Conv1dImpl::Conv1dImpl(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride_, bool with_bias)
    : stride(stride_) {
  weight = register_parameter("weight", torch::empty({out, in, kernel}));
  if (with_bias) bias = register_parameter("bias", torch::empty({out}));
}

torch::Tensor Conv1dImpl::forward(const torch::Tensor& x) { return torch::conv1d(x, weight, bias, stride); }

void Conv1dImpl::reset_parameters() { nn::init::reset_affine(weight, bias); }

GroupNormImpl::GroupNormImpl(std::int64_t groups, std::int64_t channels) : num_groups(groups) {
  weight = register_parameter("weight", torch::empty({channels}));
  bias = register_parameter("bias", torch::empty({channels}));
}

torch::Tensor GroupNormImpl::forward(const torch::Tensor& x) {
  return torch::group_norm(x, num_groups, weight, bias, 1e-5);
}

void GroupNormImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  weight.fill_(1);
  bias.zero_();
}

ConvLayerBlockImpl::ConvLayerBlockImpl(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride_,
                                       bool bias, const std::string& norm)
    : kernel_size(kernel), stride(stride_) {
  conv = register_module("conv", Conv1d(in, out, kernel, stride, bias));
  if (norm == "group_norm") group_norm = register_module("layer_norm", GroupNorm(out, out));
  if (norm == "layer_norm") layer_norm = register_module("layer_norm", nn::LayerNorm(torch::nn::LayerNormOptions({out})));
}

torch::Tensor ConvLayerBlockImpl::forward(const torch::Tensor& input) {
  torch::Tensor x = conv(input);
  if (group_norm) x = group_norm(x);
  if (layer_norm) x = layer_norm(x.transpose(-2, -1)).transpose(-2, -1);
  return torch::gelu(x);
}

torch::Tensor ConvLayerBlockImpl::output_lengths(const torch::Tensor& lengths) const {
  return torch::clamp_min(torch::div(lengths - kernel_size, stride, "floor") + 1, 0);
}

ConvFeatureExtractorImpl::ConvFeatureExtractorImpl(const std::string& mode,
                                                   const std::vector<std::array<std::int64_t, 3>>& config, bool bias) {
  if (mode != "group_norm" && mode != "layer_norm")
    throw UsageError("extractor_mode", "must be \"group_norm\" or \"layer_norm\", got \"" + mode + "\"");
  if (config.empty()) throw UsageError("extractor_conv_layer_config", "needs at least one layer");
  conv_layers = register_module("conv_layers", torch::nn::ModuleList());
  std::int64_t in = 1;
  for (std::size_t i = 0; i < config.size(); ++i) {
    const auto [out, kernel, stride] = config[i];
    if (out < 1 || kernel < 1 || stride < 1)
      throw UsageError("extractor_conv_layer_config", "layer " + std::to_string(i) + " needs positive sizes");
    const std::string norm = mode == "layer_norm" ? mode : (i == 0 ? "group_norm" : "");
    conv_layers->push_back(ConvLayerBlock(in, out, kernel, stride, bias, norm));
    in = out;
  }
}

std::pair<torch::Tensor, torch::Tensor> ConvFeatureExtractorImpl::forward(const torch::Tensor& waveforms,
                                                                          const torch::Tensor& lengths) {
  TORCH_CHECK(waveforms.dim() == 2, "Expected the input Tensor to be 2D (batch, time), but received ",
              waveforms.sizes());
  torch::Tensor x = waveforms.unsqueeze(1), length = lengths;
  for (const auto& layer : *conv_layers) {
    auto& block = *layer->as<ConvLayerBlockImpl>();
    x = block.forward(x);
    if (length.defined()) length = block.output_lengths(length);
  }
  return {x.transpose(1, 2), length};
}

std::int64_t ConvFeatureExtractorImpl::output_length(std::int64_t samples) const {
  for (const auto& layer : *conv_layers) {
    const auto& block = *layer->as<ConvLayerBlockImpl>();
    if (samples < block.kernel_size) return 0;
    samples = (samples - block.kernel_size) / block.stride + 1;
  }
  return samples;
}

ConvolutionalPositionalEmbeddingImpl::ConvolutionalPositionalEmbeddingImpl(std::int64_t dim, std::int64_t kernel,
                                                                           std::int64_t groups_)
    : embed_dim(dim), kernel_size(kernel), groups(groups_) {
  if (groups < 1 || dim % groups != 0)
    throw UsageError("encoder_pos_conv_groups", "must divide encoder_embed_dim (" + std::to_string(dim) + ")");
  auto conv = register_module("conv", std::make_shared<torch::nn::Module>("WeightNormConv1d"));
  weight_g = conv->register_parameter("weight_g", torch::empty({1, 1, kernel}));
  weight_v = conv->register_parameter("weight_v", torch::empty({dim, dim / groups, kernel}));
  bias = conv->register_parameter("bias", torch::empty({dim}));
}

torch::Tensor ConvolutionalPositionalEmbeddingImpl::forward(const torch::Tensor& input) {
  const torch::Tensor weight = torch::_weight_norm(weight_v, weight_g, 2);
  torch::Tensor x = torch::conv1d(input.transpose(-2, -1), weight, bias, 1, kernel_size / 2, 1, groups);
  if (kernel_size % 2 == 0) x = x.narrow(-1, 0, x.size(-1) - 1);
  return torch::gelu(x).transpose(-2, -1);
}

// Conv1d's default init of the weight, then weight_norm's split into direction and magnitude (dim 2).
void ConvolutionalPositionalEmbeddingImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  torch::Tensor weight = torch::empty_like(weight_v);
  nn::init::reset_affine(weight, bias);
  weight_v.copy_(weight);
  weight_g.copy_(torch::norm_except_dim(weight, 2, 2));
}

SelfAttentionImpl::SelfAttentionImpl(std::int64_t dim, std::int64_t heads, double dropout_)
    : embed_dim(dim), num_heads(heads), head_dim(heads > 0 ? dim / heads : 0), dropout(dropout_) {
  if (heads < 1 || head_dim * heads != dim)
    throw UsageError("encoder_num_heads", "`embed_dim (" + std::to_string(dim) + ")` is not divisible by `num_heads (" +
                                              std::to_string(heads) + ")`");
  k_proj = register_module("k_proj", nn::Linear(dim, dim));
  v_proj = register_module("v_proj", nn::Linear(dim, dim));
  q_proj = register_module("q_proj", nn::Linear(dim, dim));
  out_proj = register_module("out_proj", nn::Linear(dim, dim));
}

// torchaudio's arithmetic, step for step: (scaling * q) @ k, + mask, minus the row maximum, softmax.
torch::Tensor SelfAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& attention_mask) {
  const std::int64_t batch = x.size(0), length = x.size(1);
  const std::vector<std::int64_t> shape = {batch, length, num_heads, head_dim};
  const torch::Tensor q = q_proj(x).view(shape).transpose(2, 1);
  const torch::Tensor k = k_proj(x).view(shape).permute({0, 2, 3, 1});
  const torch::Tensor v = v_proj(x).view(shape).transpose(2, 1);
  torch::Tensor weights = torch::matmul(q * std::pow(static_cast<double>(head_dim), -0.5), k);
  if (attention_mask.defined()) weights = weights + attention_mask;
  weights = weights - std::get<0>(weights.max(-1, true));
  weights = audio::dropout(torch::softmax(weights, -1), dropout, is_training());
  const torch::Tensor output = torch::matmul(weights, v).transpose(2, 1).reshape({batch, length, embed_dim});
  return out_proj(output);
}

FeedForwardImpl::FeedForwardImpl(std::int64_t io, std::int64_t intermediate, double intermediate_dropout_,
                                 double output_dropout_)
    : intermediate_dropout(intermediate_dropout_), output_dropout(output_dropout_) {
  intermediate_dense = register_module("intermediate_dense", nn::Linear(io, intermediate));
  output_dense = register_module("output_dense", nn::Linear(intermediate, io));
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) {
  torch::Tensor h = audio::dropout(torch::gelu(intermediate_dense(x)), intermediate_dropout, is_training());
  return audio::dropout(output_dense(h), output_dropout, is_training());
}

EncoderLayerImpl::EncoderLayerImpl(SelfAttention attention_, double dropout_, bool layer_norm_first_,
                                   FeedForward feed_forward_)
    : dropout(dropout_), layer_norm_first(layer_norm_first_) {
  const std::int64_t dim = attention_->embed_dim;
  attention = register_module("attention", attention_);
  layer_norm = register_module("layer_norm", nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
  feed_forward = register_module("feed_forward", feed_forward_);
  final_layer_norm = register_module("final_layer_norm", nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
}

torch::Tensor EncoderLayerImpl::forward(const torch::Tensor& input, const torch::Tensor& attention_mask) {
  torch::Tensor x = layer_norm_first ? layer_norm(input) : input;
  x = input + audio::dropout(attention(x, attention_mask), dropout, is_training());
  if (layer_norm_first) return x + feed_forward(final_layer_norm(x));
  x = layer_norm(x);
  return final_layer_norm(x + feed_forward(x));
}

TransformerImpl::TransformerImpl(ConvolutionalPositionalEmbedding pos_conv_embed_, double dropout_,
                                 torch::nn::ModuleList layers_, bool layer_norm_first_, double layer_drop_)
    : dropout(dropout_), layer_norm_first(layer_norm_first_), layer_drop(layer_drop_) {
  const std::int64_t dim = pos_conv_embed_->embed_dim;
  pos_conv_embed = register_module("pos_conv_embed", pos_conv_embed_);
  layer_norm = register_module("layer_norm", nn::LayerNorm(torch::nn::LayerNormOptions({dim})));
  layers = register_module("layers", layers_);
}

torch::Tensor TransformerImpl::preprocess(const torch::Tensor& input) {
  torch::Tensor x = input + pos_conv_embed(input);
  if (layer_norm_first) x = layer_norm(x);
  return audio::dropout(x, dropout, is_training());
}

torch::Tensor TransformerImpl::forward(const torch::Tensor& input, const torch::Tensor& attention_mask) {
  torch::Tensor x = preprocess(input);
  for (const auto& layer : *layers)
    if (!(is_training() && torch::rand({1}).item<double>() <= layer_drop))
      x = layer->as<EncoderLayerImpl>()->forward(x, attention_mask);
  return layer_norm_first ? x : layer_norm(x);
}

std::vector<torch::Tensor> TransformerImpl::get_intermediate_outputs(const torch::Tensor& input,
                                                                     const torch::Tensor& attention_mask,
                                                                     std::optional<std::int64_t> num_layers) {
  const auto total = static_cast<std::int64_t>(layers->size());
  if (num_layers && !(0 < *num_layers && *num_layers <= total))
    throw UsageError("num_layers", "must be between [1, " + std::to_string(total) + "], got " +
                                       std::to_string(*num_layers));
  std::vector<torch::Tensor> out;
  torch::Tensor x = preprocess(input);
  for (const auto& layer : *layers) {
    x = layer->as<EncoderLayerImpl>()->forward(x, attention_mask);
    out.push_back(x);
    if (num_layers && static_cast<std::int64_t>(out.size()) >= *num_layers) break;
  }
  return out;
}

FeatureProjectionImpl::FeatureProjectionImpl(std::int64_t in, std::int64_t out, double dropout_) : dropout(dropout_) {
  layer_norm = register_module("layer_norm", nn::LayerNorm(torch::nn::LayerNormOptions({in})));
  projection = register_module("projection", nn::Linear(in, out));
}

torch::Tensor FeatureProjectionImpl::forward(const torch::Tensor& x) {
  return audio::dropout(projection(layer_norm(x)), dropout, is_training());
}

EncoderImpl::EncoderImpl(FeatureProjection feature_projection_, Transformer transformer_) {
  feature_projection = register_module("feature_projection", feature_projection_);
  transformer = register_module("transformer", transformer_);
}

std::pair<torch::Tensor, torch::Tensor> EncoderImpl::preprocess(const torch::Tensor& features,
                                                                const torch::Tensor& lengths) {
  torch::Tensor x = feature_projection(features);
  if (!lengths.defined()) return {x, {}};
  const std::int64_t max_len = x.size(1);
  const torch::Tensor padded = torch::arange(max_len, lengths.options()).unsqueeze(0) >= lengths.unsqueeze(1);
  x = x.masked_fill(padded.unsqueeze(-1), 0.0);
  return {x, padded.unsqueeze(1).unsqueeze(1).to(features.scalar_type()) * -10000.0};
}

torch::Tensor EncoderImpl::forward(const torch::Tensor& features, const torch::Tensor& lengths) {
  auto [x, mask] = preprocess(features, lengths);
  return transformer(x, mask);
}

std::vector<torch::Tensor> EncoderImpl::extract_features(const torch::Tensor& features, const torch::Tensor& lengths,
                                                         std::optional<std::int64_t> num_layers) {
  auto [x, mask] = preprocess(features, lengths);
  return transformer->get_intermediate_outputs(x, mask, num_layers);
}

}  // namespace audio

Wav2Vec2ModelImpl::Wav2Vec2ModelImpl(audio::ConvFeatureExtractor feature_extractor_, audio::Encoder encoder_,
                                     nn::Linear aux_) {
  feature_extractor = register_module("feature_extractor", feature_extractor_);
  encoder = register_module("encoder", encoder_);
  if (aux_) aux = register_module("aux", aux_);
}

std::pair<torch::Tensor, torch::Tensor> Wav2Vec2ModelImpl::forward(const torch::Tensor& waveforms,
                                                                   const torch::Tensor& lengths) {
  auto [x, out_lengths] = feature_extractor(waveforms, lengths);
  x = encoder(x, out_lengths);
  if (aux) x = aux(x);
  return {x, out_lengths};
}

std::pair<std::vector<torch::Tensor>, torch::Tensor> Wav2Vec2ModelImpl::extract_features(
    const torch::Tensor& waveforms, const torch::Tensor& lengths, std::optional<std::int64_t> layers) {
  auto [x, out_lengths] = feature_extractor(waveforms, lengths);
  return {encoder->extract_features(x, out_lengths, layers), out_lengths};
}

TensorDict Wav2Vec2ModelImpl::run(const TensorDict& inputs) {
  if (!inputs.contains("input")) throw UsageError("input", "no tensor named 'input' (waveforms [batch, samples])");
  const torch::Tensor& input = inputs.at("input");
  if (!input.is_floating_point() || input.dim() != 2)
    throw UsageError("input", "must be floating-point waveforms [batch, samples], got " +
                                  std::string(c10::toString(input.scalar_type())) + " of shape " +
                                  c10::str(input.sizes()));
  const std::int64_t samples = input.size(1);
  const std::int64_t frames = feature_extractor->output_length(samples);
  if (frames < 1)
    throw UsageError("input", std::to_string(samples) + " samples are too few for the feature extractor (no frame)");
  torch::Tensor lengths;
  if (inputs.contains("lengths")) {
    lengths = inputs.at("lengths");
    if (lengths.scalar_type() != torch::kInt64 || lengths.dim() != 1 || lengths.size(0) != input.size(0))
      throw UsageError("lengths", "must be int64 [" + std::to_string(input.size(0)) + "] (one per waveform), got " +
                                      std::string(c10::toString(lengths.scalar_type())) + " of shape " +
                                      c10::str(lengths.sizes()));
    if (lengths.numel() > 0 && (lengths.max().item<std::int64_t>() > samples || lengths.min().item<std::int64_t>() < 0))
      throw UsageError("lengths", "must be between 0 and the waveforms' " + std::to_string(samples) +
                                      " samples, got " + std::to_string(lengths.min().item<std::int64_t>()) + " to " +
                                      std::to_string(lengths.max().item<std::int64_t>()));
  }
  const torch::Tensor waveforms = input.to(torch::kFloat32);
  TensorDict out;
  auto [x, out_lengths] = forward(waveforms, lengths);
  out.insert("output", x);
  out.insert("lengths", out_lengths.defined() ? out_lengths : torch::full({input.size(0)}, frames, torch::kInt64));
  if (num_layers) {
    auto layers = extract_features(waveforms, lengths, num_layers).first;
    for (std::size_t i = 0; i < layers.size(); ++i) out.insert("layer." + std::to_string(i), layers[i]);
  }
  return out;
}

TensorDict Wav2Vec2ModelImpl::example_inputs(std::int64_t batch, std::int64_t size) {
  TensorDict out;
  out.insert("input", torch::randn({batch, size * 16}));
  return out;
}

void Wav2Vec2ModelImpl::adapt_checkpoint(IncomingState& state, const std::string& prefix) {
  if (!aux) return;
  const std::string w = prefix + "aux.weight", b = prefix + "aux.bias";
  if (!state.contains(w) || !state.contains(b)) return;
  const std::int64_t rows = aux->options.out_features();
  const auto shape = state.shape(w);
  if (shape.empty() || shape[0] != rows + static_cast<std::int64_t>(remove_aux_axis.size())) return;  // trimmed
  std::vector<std::int64_t> keep;
  for (std::int64_t i = 0; i < shape[0]; ++i)
    if (std::find(remove_aux_axis.begin(), remove_aux_axis.end(), i) == remove_aux_axis.end()) keep.push_back(i);
  const torch::Tensor index = torch::tensor(keep, torch::kInt64);
  state.set(w, state.read(w).index_select(0, index));
  state.set(b, state.read(b).index_select(0, index));
}

namespace {

const std::vector<std::array<std::int64_t, 3>> kDefaultConvConfig = {
    {512, 10, 5}, {512, 3, 2}, {512, 3, 2}, {512, 3, 2}, {512, 3, 2}, {512, 2, 2}, {512, 2, 2}};

Wav2Vec2Model make_model(const Wav2Vec2ModelOptions& o) {
  const auto& config = o.extractor_conv_layer_config.empty() ? kDefaultConvConfig : o.extractor_conv_layer_config;
  audio::ConvFeatureExtractor extractor(o.extractor_mode, config, o.extractor_conv_bias);
  torch::nn::ModuleList layers;
  for (std::int64_t i = 0; i < o.encoder_num_layers; ++i)
    layers->push_back(audio::EncoderLayer(
        audio::SelfAttention(o.encoder_embed_dim, o.encoder_num_heads, o.encoder_attention_dropout),
        o.encoder_dropout, o.encoder_layer_norm_first,
        audio::FeedForward(o.encoder_embed_dim, o.encoder_ff_interm_features, o.encoder_ff_interm_dropout,
                           o.encoder_dropout)));
  audio::Transformer transformer(
      audio::ConvolutionalPositionalEmbedding(o.encoder_embed_dim, o.encoder_pos_conv_kernel,
                                              o.encoder_pos_conv_groups),
      o.encoder_dropout, layers, !o.encoder_layer_norm_first, o.encoder_layer_drop);
  audio::Encoder encoder(audio::FeatureProjection(config.back()[0], o.encoder_embed_dim, o.encoder_projection_dropout),
                         transformer);
  nn::Linear aux{nullptr};
  if (o.aux_num_out) aux = nn::Linear(o.encoder_embed_dim, *o.aux_num_out);
  Wav2Vec2Model model(extractor, encoder, aux);
  model->num_layers = o.num_layers;
  return model;
}

// A preset: its architecture, the dropouts (the caller's, else the weights' bundle's, else the preset's) and
// aux_num_out (the weights' label count with ASR weights).
Wav2Vec2Model make_preset(Wav2Vec2ModelOptions arch, const std::optional<Weights>& weights, const Wav2Vec2Options& o) {
  if (weights) {
    const nlohmann::json& params = weights->meta().extra.at("params");
    arch.encoder_projection_dropout = params.at("encoder_projection_dropout");
    arch.encoder_attention_dropout = params.at("encoder_attention_dropout");
    arch.encoder_ff_interm_dropout = params.at("encoder_ff_interm_dropout");
    arch.encoder_dropout = params.at("encoder_dropout");
    arch.encoder_layer_drop = params.at("encoder_layer_drop");
    const nlohmann::json& aux = params.at("aux_num_out");
    if (!aux.is_null())
      arch.aux_num_out = detail::override_param<std::int64_t>(
          o.aux_num_out, detail::integer<std::int64_t>(aux, weights->name(), "aux_num_out"), "aux_num_out", weights->name());
    else if (o.aux_num_out)
      throw UsageError(weights->name(), "has no aux head; build without weights and load with skip {\"aux.*\"} to add one");
  } else {
    arch.aux_num_out = o.aux_num_out;
  }
  if (o.encoder_projection_dropout) arch.encoder_projection_dropout = *o.encoder_projection_dropout;
  if (o.encoder_attention_dropout) arch.encoder_attention_dropout = *o.encoder_attention_dropout;
  if (o.encoder_ff_interm_dropout) arch.encoder_ff_interm_dropout = *o.encoder_ff_interm_dropout;
  if (o.encoder_dropout) arch.encoder_dropout = *o.encoder_dropout;
  if (o.encoder_layer_drop) arch.encoder_layer_drop = *o.encoder_layer_drop;
  arch.num_layers = o.num_layers;
  Wav2Vec2Model model = make_model(arch);
  if (weights && weights->meta().extra.contains("remove_aux_axis"))
    model->remove_aux_axis = weights->meta().extra.at("remove_aux_axis").get<std::vector<std::int64_t>>();
  detail::load_or_init(*model, weights);
  return model;
}

// The presets' architectures and default dropouts (torchaudio/models/wav2vec2/model.py).
Wav2Vec2ModelOptions arch(const char* mode, bool conv_bias, std::int64_t dim, std::int64_t layers, std::int64_t heads,
                          std::int64_t ff, bool ln_first, std::array<double, 5> dropouts) {
  Wav2Vec2ModelOptions o;
  o.extractor_mode = mode;
  o.extractor_conv_bias = conv_bias;
  o.encoder_embed_dim = dim;
  o.encoder_num_layers = layers;
  o.encoder_num_heads = heads;
  o.encoder_ff_interm_features = ff;
  o.encoder_layer_norm_first = ln_first;
  o.encoder_projection_dropout = dropouts[0];
  o.encoder_attention_dropout = dropouts[1];
  o.encoder_ff_interm_dropout = dropouts[2];
  o.encoder_dropout = dropouts[3];
  o.encoder_layer_drop = dropouts[4];
  return o;
}

}  // namespace

Wav2Vec2Model wav2vec2_model(const Wav2Vec2ModelOptions& options) {
  Wav2Vec2Model model = make_model(options);
  detail::load_or_init(*model, std::nullopt);
  return model;
}

Wav2Vec2Model wav2vec2_base(std::optional<Wav2Vec2Base_Weights> w, Wav2Vec2Options o) {
  return make_preset(arch("group_norm", false, 768, 12, 12, 3072, false, {0.1, 0.1, 0.1, 0.1, 0.1}), w, o);
}
Wav2Vec2Model wav2vec2_large(std::optional<Wav2Vec2Large_Weights> w, Wav2Vec2Options o) {
  return make_preset(arch("group_norm", false, 1024, 24, 16, 4096, false, {0.1, 0.1, 0.1, 0.1, 0.1}), w, o);
}
Wav2Vec2Model wav2vec2_large_lv60k(std::optional<Wav2Vec2LargeLV60K_Weights> w, Wav2Vec2Options o) {
  return make_preset(arch("layer_norm", true, 1024, 24, 16, 4096, true, {0.1, 0.0, 0.1, 0.0, 0.1}), w, o);
}
Wav2Vec2Model hubert_base(std::optional<HuBERTBase_Weights> w, Wav2Vec2Options o) {
  return make_preset(arch("group_norm", false, 768, 12, 12, 3072, false, {0.1, 0.1, 0.0, 0.1, 0.05}), w, o);
}
Wav2Vec2Model hubert_large(std::optional<HuBERTLarge_Weights> w, Wav2Vec2Options o) {
  return make_preset(arch("layer_norm", false, 1024, 24, 16, 4096, true, {0.0, 0.0, 0.0, 0.0, 0.0}), w, o);
}
Wav2Vec2Model hubert_xlarge(std::optional<HuBERTXLarge_Weights> w, Wav2Vec2Options o) {
  return make_preset(arch("layer_norm", false, 1280, 48, 16, 5120, true, {0.0, 0.0, 0.0, 0.0, 0.0}), w, o);
}

MZ_REGISTER_MODEL(wav2vec2_base);
MZ_REGISTER_MODEL(wav2vec2_large);
MZ_REGISTER_MODEL(wav2vec2_large_lv60k);
MZ_REGISTER_MODEL(hubert_base);
MZ_REGISTER_MODEL(hubert_large);
MZ_REGISTER_MODEL(hubert_xlarge);

}  // namespace mz
