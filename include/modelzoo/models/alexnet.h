// AlexNet (torchvision.models.alexnet).
#pragma once

#include <optional>

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/pooling.h>

#include "modelzoo/layers/chain.h"
#include "modelzoo/layers/nn.h"
#include "modelzoo/options.h"
#include "modelzoo/weights_enums/classification.h"

namespace mz {

// Python keyword arguments of torchvision's alexnet builder.
struct AlexNetOptions {
  std::optional<std::int64_t> num_classes;  // default 1000, or len(categories) with weights
  double dropout = 0.5;
};
MZ_OPTIONS(AlexNetOptions, num_classes, dropout)

class AlexNetImpl : public torch::nn::Module, public Chain {
 public:
  // Parameters are left uninitialised; the builder initialises or loads them.
  explicit AlexNetImpl(const AlexNetOptions& options);
  torch::Tensor forward(torch::Tensor x) { return run_steps(std::move(x)); }
  std::vector<Step> steps() override;
  torch::nn::Sequential features{nullptr};
  torch::nn::AdaptiveAvgPool2d avgpool{nullptr};
  torch::nn::Sequential classifier{nullptr};
};
TORCH_MODULE(AlexNet);

// The weights enums (AlexNet_Weights) are generated into <modelzoo/weights_enums/classification.h>
// from the records in weights/records/alexnet.cpp.

AlexNet alexnet(std::optional<AlexNet_Weights> weights = {}, AlexNetOptions options = {});

}  // namespace mz
