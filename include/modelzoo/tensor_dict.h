// mz::TensorDict: named tensors in order, the one such type of the library: a checkpoint's contents
// (read_checkpoint, save_safetensors), a model's named outputs (mz::Model::forward) and feature
// maps by layer name (feature_extractor, segmentation heads). It is LibTorch's OrderedDict, so
// named_parameters() results convert, and lookups by key work:
//   for (const auto& item : mz::read_checkpoint("r18.pth")) std::cout << item.key() << item.value().sizes();
//   torch::Tensor logits = model.forward(x).at("output");
#pragma once

#include <string>

#include <torch/ordered_dict.h>
#include <torch/types.h>

namespace mz {

class TensorDict : public torch::OrderedDict<std::string, torch::Tensor> {
 public:
  using torch::OrderedDict<std::string, torch::Tensor>::OrderedDict;
  TensorDict(torch::OrderedDict<std::string, torch::Tensor> other)  // NOLINT: implicit on purpose
      : torch::OrderedDict<std::string, torch::Tensor>(std::move(other)) {}
  // The tensor named `key`; throws (c10::Error naming the key) when there is none.
  torch::Tensor& at(const std::string& key) { return (*this)[key]; }
  const torch::Tensor& at(const std::string& key) const { return (*this)[key]; }
};

}  // namespace mz
