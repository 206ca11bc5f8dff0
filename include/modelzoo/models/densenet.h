// DenseNet-BC 121/161/169/201 (torchvision.models.densenet).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <torch/nn/modules/container/sequential.h>

#include "modelzoo/layers/chain.h"
#include "modelzoo/layers/nn.h"
#include "modelzoo/options.h"
#include "modelzoo/weights_enums/classification.h"

namespace mz {

// Python keyword arguments of torchvision's densenet builders (growth_rate, block_config and
// num_init_features are fixed by each builder).
struct DenseNetOptions {
  std::optional<std::int64_t> num_classes;  // default 1000, or len(categories) with weights
  std::int64_t bn_size = 4;
  double drop_rate = 0;
  // Accepted for compatibility; has no effect: LibTorch's C++ API has no activation checkpointing,
  // and torchvision's results do not depend on it.
  bool memory_efficient = false;
};
MZ_OPTIONS(DenseNetOptions, num_classes, bn_size, drop_rate, memory_efficient)

// Old checkpoints (torchvision's released files among them) name the layers "norm.1", "conv.2", ...:
// a load renames them to "norm1", "conv2", ..., as torchvision's DenseNet loader does.
class DenseLayerImpl : public torch::nn::Module, public CheckpointAdapter {
 public:
  DenseLayerImpl(std::int64_t num_input_features, std::int64_t growth_rate, std::int64_t bn_size, double drop_rate);
  // x: the concatenation of every earlier feature map of the block.
  torch::Tensor forward(torch::Tensor x);
  void adapt_checkpoint(IncomingState& state, const std::string& prefix) override;
  nn::BatchNorm2d norm1{nullptr}, norm2{nullptr};
  nn::Conv2d conv1{nullptr}, conv2{nullptr};
  double drop_rate;
};
TORCH_MODULE(DenseLayer);

class DenseBlockImpl : public torch::nn::Module {
 public:
  DenseBlockImpl(std::int64_t num_layers, std::int64_t num_input_features, std::int64_t bn_size,
                 std::int64_t growth_rate, double drop_rate);
  torch::Tensor forward(torch::Tensor x);
  std::vector<DenseLayer> layers;  // denselayer1, denselayer2, ...
};
TORCH_MODULE(DenseBlock);

class TransitionImpl : public torch::nn::Module, public Chain {
 public:
  TransitionImpl(std::int64_t num_input_features, std::int64_t num_output_features);
  torch::Tensor forward(torch::Tensor x) { return run_steps(std::move(x)); }
  std::vector<Step> steps() override;
  nn::BatchNorm2d norm{nullptr};
  nn::Conv2d conv{nullptr};
};
TORCH_MODULE(Transition);

class DenseNetImpl : public torch::nn::Module, public Chain {
 public:
  // Parameters are left uninitialised; the builders initialise or load them.
  DenseNetImpl(std::int64_t growth_rate, const std::vector<std::int64_t>& block_config,
               std::int64_t num_init_features, const DenseNetOptions& options);
  torch::Tensor forward(torch::Tensor x) { return run_steps(std::move(x)); }
  std::vector<Step> steps() override;
  torch::nn::Sequential features{nullptr};  // conv0, norm0, relu0, pool0, denseblock1, transition1, ..., norm5
  nn::Linear classifier{nullptr};
};
TORCH_MODULE(DenseNet);

// The weights enums (DenseNet121_Weights, DenseNet161_Weights, ...) are generated into <modelzoo/weights_enums/classification.h>
// from the records in weights/records/densenet.cpp.

DenseNet densenet121(std::optional<DenseNet121_Weights> weights = {}, DenseNetOptions options = {});
DenseNet densenet161(std::optional<DenseNet161_Weights> weights = {}, DenseNetOptions options = {});
DenseNet densenet169(std::optional<DenseNet169_Weights> weights = {}, DenseNetOptions options = {});
DenseNet densenet201(std::optional<DenseNet201_Weights> weights = {}, DenseNetOptions options = {});

}  // namespace mz
