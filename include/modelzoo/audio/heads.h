// Heads over speech encoders. The heads take encoder features [B, T, D] (and valid lengths), so they work over any
// speech encoder; SpeechClassifier puts one over a Wav2Vec2Model (wav2vec 2.0 or HuBERT) without model surgery.
// (The CTC head is the model's own `aux` linear layer: wav2vec2_base({}, {.aux_num_out = n}).)
//
//   auto encoder = mz::hubert_base(mz::HuBERTBase_Weights::HUBERT_BASE);
//   auto clf = mz::SpeechClassifier(encoder, /*num_classes=*/10);                 // masked mean pooling + linear
//   auto probe = mz::SpeechClassifier(encoder, 10, /*probe_layers=*/12);         // softmax-weighted layers 1..12
//   torch::Tensor logits = clf->forward(waveforms, lengths);                      // [B, 10]
//   mz::freeze(*clf, {"encoder.*"});
#pragma once

#include <optional>
#include <vector>

#include "modelzoo/audio/wav2vec2.h"

namespace mz {

// The mean over each utterance's valid frames (all frames when lengths is undefined): [B, T, D] -> [B, D].
torch::Tensor masked_mean(const torch::Tensor& features, const torch::Tensor& lengths = {});

// Utterance classification: masked mean pooling, then a linear layer. State-dict keys projection.{weight,bias}.
class UtteranceClassificationHeadImpl : public torch::nn::Module {
 public:
  UtteranceClassificationHeadImpl(std::int64_t in_features, std::int64_t num_classes);
  torch::Tensor forward(const torch::Tensor& features, const torch::Tensor& lengths = {});
  nn::Linear projection{nullptr};
};
TORCH_MODULE(UtteranceClassificationHead);

// The usual downstream probe's layer mix: softmax(weights) . layers, over k layers of extract_features
// (weights start equal). State-dict key: weights [k].
class WeightedLayerSumImpl : public torch::nn::Module {
 public:
  explicit WeightedLayerSumImpl(std::int64_t num_layers);
  torch::Tensor forward(const std::vector<torch::Tensor>& layers);
  torch::Tensor weights;
};
TORCH_MODULE(WeightedLayerSum);

// An encoder with an utterance-classification head, over the encoder's output (its aux, if any, included) or,
// with probe_layers = k, over the weighted sum of its first k layers. State-dict keys: encoder.*, layer_sum.weights
// (probe only), head.projection.*.
class SpeechClassifierImpl : public torch::nn::Module {
 public:
  SpeechClassifierImpl(Wav2Vec2Model encoder, std::int64_t num_classes, std::optional<std::int64_t> probe_layers = {});
  torch::Tensor forward(const torch::Tensor& waveforms, const torch::Tensor& lengths = {});
  Wav2Vec2Model encoder{nullptr};
  WeightedLayerSum layer_sum{nullptr};
  UtteranceClassificationHead head{nullptr};
  std::optional<std::int64_t> probe_layers;
};
TORCH_MODULE(SpeechClassifier);

}  // namespace mz
