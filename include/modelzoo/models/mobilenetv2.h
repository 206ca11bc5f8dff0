// MobileNetV2 (torchvision.models.mobilenetv2).
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

// Python keyword arguments of MobileNetV2 (block and norm_layer are not exposed).
struct MobileNetV2Options {
  std::optional<std::int64_t> num_classes;  // default 1000, or len(categories) with weights
  double width_mult = 1.0;
  std::vector<std::vector<std::int64_t>> inverted_residual_setting;  // rows of t, c, n, s; empty = the paper's
  std::int64_t round_nearest = 8;
  double dropout = 0.2;
};
MZ_OPTIONS(MobileNetV2Options, num_classes, width_mult, inverted_residual_setting, round_nearest, dropout)

namespace mobilenetv2 {

// Expand (1x1, unless expand_ratio is 1) -> depthwise 3x3 -> linear 1x1 projection, all in `conv`
// (children: Conv2dNormActivation..., then the projection's Conv2d and BatchNorm2d).
class InvertedResidualImpl : public torch::nn::Module {
 public:
  InvertedResidualImpl(std::int64_t inp, std::int64_t oup, std::int64_t stride, std::int64_t expand_ratio);
  torch::Tensor forward(const torch::Tensor& x) { return ops::residual(use_res_connect, x, conv->forward(x)); }
  torch::nn::Sequential conv{nullptr};
  bool use_res_connect;
  std::int64_t out_channels;
};
TORCH_MODULE(InvertedResidual);

}  // namespace mobilenetv2

class MobileNetV2Impl : public torch::nn::Module, public Chain {
 public:
  // Parameters are left uninitialised; the builder initialises or loads them.
  explicit MobileNetV2Impl(const MobileNetV2Options& options);
  torch::Tensor forward(torch::Tensor x) { return run_steps(std::move(x)); }
  std::vector<Step> steps() override;
  torch::nn::Sequential features{nullptr}, classifier{nullptr};
  std::int64_t last_channel;
};
TORCH_MODULE(MobileNetV2);

// The weights enums (MobileNet_V2_Weights) are generated into <modelzoo/weights_enums/classification.h>
// from the records in weights/records/mobilenetv2.cpp.

MobileNetV2 mobilenet_v2(std::optional<MobileNet_V2_Weights> weights = {}, MobileNetV2Options options = {});

}  // namespace mz
