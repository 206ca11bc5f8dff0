// Heads over speech encoders: masked mean pooling, utterance classification, the weighted-layer probe.
#include "modelzoo/audio/heads.h"

namespace mz {

torch::Tensor masked_mean(const torch::Tensor& features, const torch::Tensor& lengths) {
  if (features.dim() != 3) throw UsageError("features", "must be [batch, frames, dim], got " + c10::str(features.sizes()));
  if (!lengths.defined()) return features.mean(1);
  if (lengths.dim() != 1 || lengths.size(0) != features.size(0))
    throw UsageError("lengths", "must be [" + std::to_string(features.size(0)) + "], got " + c10::str(lengths.sizes()));
  const torch::Tensor valid =
      (torch::arange(features.size(1), lengths.options()).unsqueeze(0) < lengths.unsqueeze(1)).to(features.dtype());
  const torch::Tensor count = valid.sum(1, true).clamp_min(1);
  return (features * valid.unsqueeze(-1)).sum(1) / count;
}

UtteranceClassificationHeadImpl::UtteranceClassificationHeadImpl(std::int64_t in_features, std::int64_t num_classes) {
  projection = register_module("projection", nn::Linear(in_features, num_classes));
  projection->reset_parameters();
}

torch::Tensor UtteranceClassificationHeadImpl::forward(const torch::Tensor& features, const torch::Tensor& lengths) {
  return projection(masked_mean(features, lengths));
}

WeightedLayerSumImpl::WeightedLayerSumImpl(std::int64_t num_layers) {
  if (num_layers < 1) throw UsageError("WeightedLayerSum", "needs at least one layer");
  weights = register_parameter("weights", torch::zeros({num_layers}));
}

torch::Tensor WeightedLayerSumImpl::forward(const std::vector<torch::Tensor>& layers) {
  if (static_cast<std::int64_t>(layers.size()) != weights.size(0))
    throw UsageError("WeightedLayerSum", "expects " + std::to_string(weights.size(0)) + " layers, got " +
                                             std::to_string(layers.size()));
  const torch::Tensor w = torch::softmax(weights, 0);
  return (torch::stack(layers, 0) * w.view({-1, 1, 1, 1})).sum(0);
}

SpeechClassifierImpl::SpeechClassifierImpl(Wav2Vec2Model encoder_, std::int64_t num_classes,
                                           std::optional<std::int64_t> probe_layers_)
    : probe_layers(probe_layers_) {
  encoder = register_module("encoder", encoder_);
  const std::int64_t total = static_cast<std::int64_t>(encoder->encoder->transformer->layers->size());
  if (probe_layers && !(0 < *probe_layers && *probe_layers <= total))
    throw UsageError("probe_layers", "must be between [1, " + std::to_string(total) + "]");
  if (probe_layers) layer_sum = register_module("layer_sum", WeightedLayerSum(*probe_layers));
  const std::int64_t dim = probe_layers || !encoder->aux ? encoder->encoder->transformer->pos_conv_embed->embed_dim
                                                         : encoder->aux->options.out_features();
  head = register_module("head", UtteranceClassificationHead(dim, num_classes));
}

torch::Tensor SpeechClassifierImpl::forward(const torch::Tensor& waveforms, const torch::Tensor& lengths) {
  if (probe_layers) {
    auto [layers, out_lengths] = encoder->extract_features(waveforms, lengths, probe_layers);
    return head(layer_sum(layers), out_lengths);
  }
  auto [features, out_lengths] = encoder(waveforms, lengths);
  return head(features, out_lengths);
}

}  // namespace mz
