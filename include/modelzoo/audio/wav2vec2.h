// wav2vec 2.0 and HuBERT speech encoders (torchaudio.models.wav2vec2, torchaudio 0.13.1).
//
//   auto model = mz::wav2vec2_base(mz::Wav2Vec2Base_Weights::WAV2VEC2_ASR_BASE_960H);
//   auto [emissions, lengths] = model->forward(waveforms, lengths);        // [B, T', 29], [B]
//   auto [layers, lengths2] = model->extract_features(waveforms, lengths, 4);  // 4 x [B, T', 768]
//
// One generic model, Wav2Vec2Model(feature_extractor, encoder, aux), built by wav2vec2_model() from
// torchaudio's keyword arguments; the presets (wav2vec2_base, ..., hubert_xlarge) only choose them.
// State-dict keys equal torchaudio's (the positional convolution keeps weight norm's weight_g/weight_v).
#pragma once

#include <array>
#include <optional>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>

#include "modelzoo/checkpoint.h"
#include "modelzoo/layers/nn.h"
#include "modelzoo/options.h"
#include "modelzoo/tensor_dict.h"
#include "modelzoo/weights_enums/audio.h"

namespace mz {

// torchaudio.models.wav2vec2_model's keyword arguments (defaults: wav2vec2_base's configuration),
// plus num_layers, which is not a builder argument: `run` (mz forward) then also returns the first
// num_layers transformer layers' outputs as layer.0 ... layer.<k-1>.
struct Wav2Vec2ModelOptions {
  std::string extractor_mode = "group_norm";  // or "layer_norm"
  std::vector<std::array<std::int64_t, 3>> extractor_conv_layer_config;  // (channels, kernel, stride); empty: default
  bool extractor_conv_bias = false;
  std::int64_t encoder_embed_dim = 768;
  double encoder_projection_dropout = 0.1;
  std::int64_t encoder_pos_conv_kernel = 128;
  std::int64_t encoder_pos_conv_groups = 16;
  std::int64_t encoder_num_layers = 12;
  std::int64_t encoder_num_heads = 12;
  double encoder_attention_dropout = 0.1;
  std::int64_t encoder_ff_interm_features = 3072;
  double encoder_ff_interm_dropout = 0.0;
  double encoder_dropout = 0.1;
  bool encoder_layer_norm_first = false;
  double encoder_layer_drop = 0.05;
  std::optional<std::int64_t> aux_num_out;
  std::optional<std::int64_t> num_layers;
};
MZ_OPTIONS(Wav2Vec2ModelOptions, extractor_mode, extractor_conv_layer_config, extractor_conv_bias, encoder_embed_dim,
           encoder_projection_dropout, encoder_pos_conv_kernel, encoder_pos_conv_groups, encoder_num_layers,
           encoder_num_heads, encoder_attention_dropout, encoder_ff_interm_features, encoder_ff_interm_dropout,
           encoder_dropout, encoder_layer_norm_first, encoder_layer_drop, aux_num_out, num_layers)

// The presets' keyword arguments (unset: the preset's default, or the weights' bundle values), plus num_layers.
// With ASR weights, aux_num_out is the bundle's label count; another value is an error (build without weights
// and load with LoadOptions::skip = {"aux.*"} to fine-tune a new head).
struct Wav2Vec2Options {
  std::optional<double> encoder_projection_dropout;
  std::optional<double> encoder_attention_dropout;
  std::optional<double> encoder_ff_interm_dropout;
  std::optional<double> encoder_dropout;
  std::optional<double> encoder_layer_drop;
  std::optional<std::int64_t> aux_num_out;
  std::optional<std::int64_t> num_layers;
};
MZ_OPTIONS(Wav2Vec2Options, encoder_projection_dropout, encoder_attention_dropout, encoder_ff_interm_dropout,
           encoder_dropout, encoder_layer_drop, aux_num_out, num_layers)

namespace audio {

// Conv1d whose parameters start uninitialised (PyTorch's default init on reset_parameters).
class Conv1dImpl : public torch::nn::Module, public nn::Resettable {
 public:
  Conv1dImpl(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride, bool bias);
  torch::Tensor forward(const torch::Tensor& x);
  void reset_parameters() override;
  std::int64_t stride;
  torch::Tensor weight, bias;
};
TORCH_MODULE(Conv1d);

class GroupNormImpl : public torch::nn::Module, public nn::Resettable {
 public:
  GroupNormImpl(std::int64_t num_groups, std::int64_t num_channels);
  torch::Tensor forward(const torch::Tensor& x);
  void reset_parameters() override;
  std::int64_t num_groups;
  torch::Tensor weight, bias;
};
TORCH_MODULE(GroupNorm);

// conv -> (GroupNorm | LayerNorm over channels | nothing) -> GELU; lengths floor((L - k) / s) + 1, at least 0.
class ConvLayerBlockImpl : public torch::nn::Module {
 public:
  ConvLayerBlockImpl(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride, bool bias,
                     const std::string& norm);  // norm: "group_norm", "layer_norm" or ""
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor output_lengths(const torch::Tensor& lengths) const;
  std::int64_t kernel_size, stride;
  Conv1d conv{nullptr};
  GroupNorm group_norm{nullptr};     // registered as "layer_norm", as torchaudio names it
  nn::LayerNorm layer_norm{nullptr};
};
TORCH_MODULE(ConvLayerBlock);

// Waveforms [B, T] -> features [B, T', C] and their valid lengths.
class ConvFeatureExtractorImpl : public torch::nn::Module {
 public:
  ConvFeatureExtractorImpl(const std::string& mode, const std::vector<std::array<std::int64_t, 3>>& config, bool bias);
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& waveforms, const torch::Tensor& lengths = {});
  std::int64_t output_length(std::int64_t samples) const;  // frames for `samples` input samples (0 if too short)
  torch::nn::ModuleList conv_layers{nullptr};
};
TORCH_MODULE(ConvFeatureExtractor);

// weight_norm(Conv1d(D, D, k, padding=k//2, groups), dim=2) -> drop the last frame for even k -> GELU.
class ConvolutionalPositionalEmbeddingImpl : public torch::nn::Module, public nn::Resettable {
 public:
  ConvolutionalPositionalEmbeddingImpl(std::int64_t embed_dim, std::int64_t kernel_size, std::int64_t groups);
  torch::Tensor forward(const torch::Tensor& x);  // [B, T, D] -> [B, T, D]
  void reset_parameters() override;
  std::int64_t embed_dim, kernel_size, groups;
  torch::Tensor weight_g, weight_v, bias;  // state-dict keys conv.weight_g, conv.weight_v, conv.bias
};
TORCH_MODULE(ConvolutionalPositionalEmbedding);

class SelfAttentionImpl : public torch::nn::Module {
 public:
  SelfAttentionImpl(std::int64_t embed_dim, std::int64_t num_heads, double dropout);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& attention_mask = {});
  std::int64_t embed_dim, num_heads, head_dim;
  double dropout;
  nn::Linear k_proj{nullptr}, v_proj{nullptr}, q_proj{nullptr}, out_proj{nullptr};
};
TORCH_MODULE(SelfAttention);

class FeedForwardImpl : public torch::nn::Module {
 public:
  FeedForwardImpl(std::int64_t io, std::int64_t intermediate, double intermediate_dropout, double output_dropout);
  torch::Tensor forward(const torch::Tensor& x);
  double intermediate_dropout, output_dropout;
  nn::Linear intermediate_dense{nullptr}, output_dense{nullptr};
};
TORCH_MODULE(FeedForward);

class EncoderLayerImpl : public torch::nn::Module {
 public:
  EncoderLayerImpl(SelfAttention attention, double dropout, bool layer_norm_first, FeedForward feed_forward);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& attention_mask = {});
  double dropout;
  bool layer_norm_first;
  SelfAttention attention{nullptr};
  nn::LayerNorm layer_norm{nullptr};
  FeedForward feed_forward{nullptr};
  nn::LayerNorm final_layer_norm{nullptr};
};
TORCH_MODULE(EncoderLayer);

class TransformerImpl : public torch::nn::Module {
 public:
  // layer_norm_first as torchaudio's Transformer has it: the negation of encoder_layer_norm_first.
  TransformerImpl(ConvolutionalPositionalEmbedding pos_conv_embed, double dropout, torch::nn::ModuleList layers,
                  bool layer_norm_first, double layer_drop);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& attention_mask = {});
  std::vector<torch::Tensor> get_intermediate_outputs(const torch::Tensor& x, const torch::Tensor& attention_mask,
                                                      std::optional<std::int64_t> num_layers);
  double dropout;
  bool layer_norm_first;
  double layer_drop;
  ConvolutionalPositionalEmbedding pos_conv_embed{nullptr};
  nn::LayerNorm layer_norm{nullptr};
  torch::nn::ModuleList layers{nullptr};

 private:
  torch::Tensor preprocess(const torch::Tensor& x);
};
TORCH_MODULE(Transformer);

class FeatureProjectionImpl : public torch::nn::Module {
 public:
  FeatureProjectionImpl(std::int64_t in, std::int64_t out, double dropout);
  torch::Tensor forward(const torch::Tensor& x);
  double dropout;
  nn::LayerNorm layer_norm{nullptr};
  nn::Linear projection{nullptr};
};
TORCH_MODULE(FeatureProjection);

// Features [B, T', C] (+ lengths) -> [B, T', D]; padded frames are zeroed and masked out of attention (-10000).
class EncoderImpl : public torch::nn::Module {
 public:
  EncoderImpl(FeatureProjection feature_projection, Transformer transformer);
  torch::Tensor forward(const torch::Tensor& features, const torch::Tensor& lengths = {});
  std::vector<torch::Tensor> extract_features(const torch::Tensor& features, const torch::Tensor& lengths = {},
                                              std::optional<std::int64_t> num_layers = {});
  FeatureProjection feature_projection{nullptr};
  Transformer transformer{nullptr};

 private:
  std::pair<torch::Tensor, torch::Tensor> preprocess(const torch::Tensor& features, const torch::Tensor& lengths);
};
TORCH_MODULE(Encoder);

}  // namespace audio

// torchaudio's Wav2Vec2Model: feature_extractor -> encoder -> optional aux (a linear head, e.g. CTC).
// Lengths are int64 [B] valid sample counts, or undefined for "all valid" (then the returned lengths
// are undefined too, as torchaudio returns None).
class Wav2Vec2ModelImpl : public torch::nn::Module, public CheckpointAdapter {
 public:
  Wav2Vec2ModelImpl(audio::ConvFeatureExtractor feature_extractor, audio::Encoder encoder, nn::Linear aux = nullptr);
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& waveforms, const torch::Tensor& lengths = {});
  std::pair<std::vector<torch::Tensor>, torch::Tensor> extract_features(const torch::Tensor& waveforms,
                                                                        const torch::Tensor& lengths = {},
                                                                        std::optional<std::int64_t> num_layers = {});
  // Named inputs (mz forward): float "input" [B, T], optional int64 "lengths" [B]. Outputs "output", "lengths"
  // (valid frames; all frames when no lengths were given) and, with num_layers set, "layer.0" ...
  TensorDict run(const TensorDict& inputs);
  // mz bench: `batch` random waveforms of `size` milliseconds at 16 kHz.
  static TensorDict example_inputs(std::int64_t batch, std::int64_t size);

  // Released ASR checkpoints carry fairseq's special rows in aux; a load drops these rows (torchaudio's
  // _remove_aux_axis) when aux.weight has exactly aux_num_out + rows.size() rows. Set by the builders from
  // the weights' bundle; (1, 2, 3) by default.
  void adapt_checkpoint(IncomingState& state, const std::string& prefix) override;
  std::vector<std::int64_t> remove_aux_axis = {1, 2, 3};
  std::optional<std::int64_t> num_layers;  // run()'s layer outputs

  audio::ConvFeatureExtractor feature_extractor{nullptr};
  audio::Encoder encoder{nullptr};
  nn::Linear aux{nullptr};
};
TORCH_MODULE(Wav2Vec2Model);

// torchaudio.models.wav2vec2_model: the generic builder (random init; no weights of its own: load a checkpoint
// in torchaudio's layout with mz::load_checkpoint).
Wav2Vec2Model wav2vec2_model(const Wav2Vec2ModelOptions& options = {});

// The weights enums (Wav2Vec2Base_Weights, ...; values named as torchaudio.pipelines' bundles) are generated into
// <modelzoo/weights_enums/audio.h> from weights/records/wav2vec2.cpp.
Wav2Vec2Model wav2vec2_base(std::optional<Wav2Vec2Base_Weights> weights = {}, Wav2Vec2Options options = {});
Wav2Vec2Model wav2vec2_large(std::optional<Wav2Vec2Large_Weights> weights = {}, Wav2Vec2Options options = {});
Wav2Vec2Model wav2vec2_large_lv60k(std::optional<Wav2Vec2LargeLV60K_Weights> weights = {},
                                   Wav2Vec2Options options = {});
Wav2Vec2Model hubert_base(std::optional<HuBERTBase_Weights> weights = {}, Wav2Vec2Options options = {});
Wav2Vec2Model hubert_large(std::optional<HuBERTLarge_Weights> weights = {}, Wav2Vec2Options options = {});
Wav2Vec2Model hubert_xlarge(std::optional<HuBERTXLarge_Weights> weights = {}, Wav2Vec2Options options = {});

}  // namespace mz
