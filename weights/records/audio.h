// The record of one torchaudio wav2vec 2.0 / HuBERT bundle (weights/records/wav2vec2.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "weights/records.h"

namespace mz::data {

// full_name "Wav2Vec2Base_Weights.WAV2VEC2_BASE"; path under https://download.pytorch.org/torchaudio/models/;
// params: the bundle's `_params` as JSON. ASR bundles also give get_labels() (blank "-" first) and
// `_remove_aux_axis`. meta.extra: sample_rate (16000), params, and labels / remove_aux_axis for ASR bundles;
// transforms: the AudioResample preset (decode, mix down to mono, resample to sample_rate).
inline WeightsRecord bundle(const char* full_name, const char* path, std::int64_t num_params, const char* params,
                            const char* docs, const std::vector<std::string>& labels = {},
                            std::vector<std::int64_t> remove_aux_axis = {}) {
  WeightsRecord r;
  const std::string name = full_name;
  r.enum_name = name.substr(0, name.find('.'));
  r.value_name = name.substr(name.find('.') + 1);
  r.url = std::string("https://download.pytorch.org/torchaudio/models/") + path;
  r.meta.num_params = num_params;
  r.meta.docs = docs;
  r.meta.extra["sample_rate"] = 16000;
  r.meta.extra["params"] = nlohmann::json::parse(params);
  if (!labels.empty()) {
    r.meta.extra["labels"] = labels;
    r.meta.extra["remove_aux_axis"] = remove_aux_axis;
  }
  r.transforms.preset = "AudioResample";
  return r;
}

}  // namespace mz::data
