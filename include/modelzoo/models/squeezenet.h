// SqueezeNet 1.0 and 1.1 (torchvision.models.squeezenet).
#pragma once

#include <optional>
#include <string>

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/container/sequential.h>

#include "modelzoo/layers/chain.h"
#include "modelzoo/layers/nn.h"
#include "modelzoo/options.h"
#include "modelzoo/weights_enums/classification.h"

namespace mz {

// Python keyword arguments of torchvision's squeezenet builders.
struct SqueezeNetOptions {
  std::optional<std::int64_t> num_classes;  // default 1000, or len(categories) with weights
  double dropout = 0.5;
};
MZ_OPTIONS(SqueezeNetOptions, num_classes, dropout)

class FireImpl : public torch::nn::Module {
 public:
  FireImpl(std::int64_t inplanes, std::int64_t squeeze_planes, std::int64_t expand1x1_planes,
           std::int64_t expand3x3_planes);
  torch::Tensor forward(torch::Tensor x);
  nn::Conv2d squeeze{nullptr}, expand1x1{nullptr}, expand3x3{nullptr};
  torch::nn::ReLU squeeze_activation{nullptr}, expand1x1_activation{nullptr}, expand3x3_activation{nullptr};
};
TORCH_MODULE(Fire);

class SqueezeNetImpl : public torch::nn::Module, public Chain {
 public:
  // version "1_0" or "1_1". Parameters are left uninitialised; the builders initialise or load them.
  SqueezeNetImpl(const std::string& version, const SqueezeNetOptions& options);
  torch::Tensor forward(torch::Tensor x) { return run_steps(std::move(x)); }
  std::vector<Step> steps() override;
  torch::nn::Sequential features{nullptr}, classifier{nullptr};
  nn::Conv2d final_conv{nullptr};  // classifier.1 (initialised differently from the other convs)
};
TORCH_MODULE(SqueezeNet);

// The weights enums (SqueezeNet1_0_Weights, SqueezeNet1_1_Weights) are generated into <modelzoo/weights_enums/classification.h>
// from the records in weights/records/squeezenet.cpp.

SqueezeNet squeezenet1_0(std::optional<SqueezeNet1_0_Weights> weights = {}, SqueezeNetOptions options = {});
SqueezeNet squeezenet1_1(std::optional<SqueezeNet1_1_Weights> weights = {}, SqueezeNetOptions options = {});

}  // namespace mz
