// Composition: intermediate features of any model by layer name, and heads over any backbone.
//
//   auto backbone = mz::feature_extractor(mz::resnet50(), {{"layer3", "aux"}, {"layer4", "out"}});
//   auto features = backbone->forward(x);        // ordered {"aux": ..., "out": ...}
//   backbone->channels();                        // {{"aux", 1024}, {"out", 2048}}
//   auto model = mz::ImageClassifier(backbone, 10);
//   mz::freeze(*model, {"backbone.*"});
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/dropout.h>
#include <torch/ordered_dict.h>

#include "modelzoo/layers/chain.h"
#include "modelzoo/layers/nn.h"
#include "modelzoo/tensor_dict.h"

namespace mz {

// Runs a model up to the last requested layer and returns the requested intermediate outputs, in
// request order. Layers are named as state-dict names spell them, nested ones included
// ("features.16", "layer2.1"); a model must implement mz::Chain (every builder's model does) or be
// a torch::nn::Sequential. Layers after the last requested one are neither run nor kept: the
// extractor registers the model's top-level children up to that point under their own names, so
// its state dict is the model's, truncated (torchvision's IntermediateLayerGetter).
class FeatureExtractorImpl : public torch::nn::Module {
 public:
  FeatureExtractorImpl(std::shared_ptr<torch::nn::Module> model,
                       std::vector<std::pair<std::string, std::string>> return_nodes);
  TensorDict forward(const torch::Tensor& x);
  // Channels of each returned map, found by a forward pass on a zero image of side `size` (cached).
  std::vector<std::pair<std::string, std::int64_t>> channels(std::int64_t size = 224);
  std::int64_t channels(const std::string& output_name, std::int64_t size = 224);
  // Every layer name this model can return, in execution order.
  static std::vector<std::string> layer_names(torch::nn::Module& model);

  struct Node;

 private:
  std::shared_ptr<torch::nn::Module> model_;
  std::vector<std::pair<std::string, std::string>> return_nodes_;
  std::shared_ptr<Node> tree_;
  std::vector<std::pair<std::string, std::int64_t>> channels_;
};
TORCH_MODULE(FeatureExtractor);

template <class Holder>
FeatureExtractor feature_extractor(const Holder& model, std::vector<std::pair<std::string, std::string>> return_nodes) {
  return FeatureExtractor(model.ptr(), std::move(return_nodes));
}
inline FeatureExtractor feature_extractor(std::shared_ptr<torch::nn::Module> model,
                                          std::vector<std::pair<std::string, std::string>> return_nodes) {
  return FeatureExtractor(std::move(model), std::move(return_nodes));
}

// Global average pooling, dropout and a linear layer over the last feature map of any backbone.
// State-dict names: backbone.*, fc.weight, fc.bias.
class ImageClassifierImpl : public torch::nn::Module {
 public:
  ImageClassifierImpl(FeatureExtractor backbone, std::int64_t num_classes, double dropout = 0.0);
  torch::Tensor forward(const torch::Tensor& x);
  FeatureExtractor backbone{nullptr};
  torch::nn::Dropout dropout{nullptr};
  nn::Linear fc{nullptr};
};
TORCH_MODULE(ImageClassifier);

// Sets requires_grad = false on every parameter whose name matches one of the fnmatch globs
// ("backbone.*", "layer[12].*"). Returns the frozen names; a glob matching nothing is an error.
std::vector<std::string> freeze(torch::nn::Module& module, const std::vector<std::string>& globs);
// The inverse of freeze.
std::vector<std::string> unfreeze(torch::nn::Module& module, const std::vector<std::string>& globs);

}  // namespace mz
