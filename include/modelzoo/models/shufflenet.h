// ShuffleNetV2 (torchvision.models.shufflenetv2), widths x0.5, x1.0, x1.5 and x2.0.
#pragma once

#include <optional>
#include <vector>

#include <torch/nn/modules/container/sequential.h>

#include "modelzoo/layers/chain.h"
#include "modelzoo/layers/nn.h"
#include "modelzoo/layers/ops.h"
#include "modelzoo/options.h"
#include "modelzoo/weights_enums/classification.h"

namespace mz {

// Python keyword arguments of the shufflenet_v2 builders (the stage layout is fixed by each builder).
struct ShuffleNetV2Options {
  std::optional<std::int64_t> num_classes;  // default 1000, or len(categories) with weights
};
MZ_OPTIONS(ShuffleNetV2Options, num_classes)

namespace shufflenetv2 {

// Stride 1: split channels in half, transform one half (branch2), concatenate, shuffle.
// Stride > 1: both branches see the whole input (branch1 downsamples it), concatenate, shuffle.
class InvertedResidualImpl : public torch::nn::Module {
 public:
  InvertedResidualImpl(std::int64_t inp, std::int64_t oup, std::int64_t stride);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Sequential branch1{nullptr}, branch2{nullptr};  // branch1 is empty (unregistered) at stride 1
  std::int64_t stride;
};
TORCH_MODULE(InvertedResidual);

}  // namespace shufflenetv2

class ShuffleNetV2Impl : public torch::nn::Module, public Chain {
 public:
  // Parameters are left uninitialised; the builders initialise or load them.
  ShuffleNetV2Impl(std::vector<std::int64_t> stages_repeats, std::vector<std::int64_t> stages_out_channels,
                   const ShuffleNetV2Options& options);
  torch::Tensor forward(torch::Tensor x) { return run_steps(std::move(x)); }
  std::vector<Step> steps() override;
  torch::nn::Sequential conv1{nullptr}, stage2{nullptr}, stage3{nullptr}, stage4{nullptr}, conv5{nullptr};
  nn::Linear fc{nullptr};
};
TORCH_MODULE(ShuffleNetV2);

// The weights enums (ShuffleNet_V2_X0_5_Weights, ShuffleNet_V2_X1_0_Weights, ...) are generated into <modelzoo/weights_enums/classification.h>
// from the records in weights/records/shufflenet.cpp.

ShuffleNetV2 shufflenet_v2_x0_5(std::optional<ShuffleNet_V2_X0_5_Weights> weights = {},
                                ShuffleNetV2Options options = {});
ShuffleNetV2 shufflenet_v2_x1_0(std::optional<ShuffleNet_V2_X1_0_Weights> weights = {},
                                ShuffleNetV2Options options = {});
ShuffleNetV2 shufflenet_v2_x1_5(std::optional<ShuffleNet_V2_X1_5_Weights> weights = {},
                                ShuffleNetV2Options options = {});
ShuffleNetV2 shufflenet_v2_x2_0(std::optional<ShuffleNet_V2_X2_0_Weights> weights = {},
                                ShuffleNetV2Options options = {});

}  // namespace mz
