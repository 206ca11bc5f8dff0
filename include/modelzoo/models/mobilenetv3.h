// MobileNetV3 large and small (torchvision.models.mobilenetv3).
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

// Python keyword arguments of the mobilenet_v3 builders: MobileNetV3's (block is not exposed;
// norm_layer is C++ only, not in JSON options) and _mobilenet_v3_conf's (width_mult, reduced_tail, dilated).
struct MobileNetV3Options {
  std::optional<std::int64_t> num_classes;  // default 1000, or len(categories) with weights
  double dropout = 0.2;
  double width_mult = 1.0;
  bool reduced_tail = false;  // halves the channels of the last blocks (segmentation backbones)
  bool dilated = false;       // dilation 2 instead of stride 2 in the last stage (segmentation backbones)
  ops::NormLayer norm_layer;  // empty: BatchNorm2d(eps=0.001, momentum=0.01)
};
MZ_OPTIONS(MobileNetV3Options, num_classes, dropout, width_mult, reduced_tail, dilated)

namespace mobilenetv3 {

// One row of Tables 1 and 2 of the MobileNetV3 paper; channels already scaled by width_mult.
struct InvertedResidualConfig {
  InvertedResidualConfig(std::int64_t input_channels, std::int64_t kernel, std::int64_t expanded_channels,
                         std::int64_t out_channels, bool use_se, const char* activation, std::int64_t stride,
                         std::int64_t dilation, double width_mult);
  static std::int64_t adjust_channels(std::int64_t channels, double width_mult);
  std::int64_t input_channels, kernel, expanded_channels, out_channels;
  bool use_se, use_hs;  // use_hs: Hardswish ("HS") rather than ReLU ("RE")
  std::int64_t stride, dilation;
};

// Expand (1x1, when channels grow) -> depthwise -> SqueezeExcitation (optional) -> linear 1x1
// projection, each a child of `block` (Conv2dNormActivation / SqueezeExcitation).
class InvertedResidualImpl : public torch::nn::Module {
 public:
  InvertedResidualImpl(const InvertedResidualConfig& cnf, const ops::NormLayer& norm_layer);
  torch::Tensor forward(const torch::Tensor& x) { return ops::residual(use_res_connect, x, block->forward(x)); }
  torch::nn::Sequential block{nullptr};
  bool use_res_connect;
  std::int64_t out_channels;
  bool is_cn;  // torchvision's _is_cn: the block starts a stage (stride > 1); detection cuts features there
};
TORCH_MODULE(InvertedResidual);

// _mobilenet_v3_conf: the block table and last_channel of "mobilenet_v3_large" / "mobilenet_v3_small".
std::pair<std::vector<InvertedResidualConfig>, std::int64_t> config(const std::string& arch,
                                                                     const MobileNetV3Options& options);

}  // namespace mobilenetv3

// features: first Conv2dNormActivation, one InvertedResidual per config row, last
// Conv2dNormActivation (6x the last block's channels; features.16 of the large model).
class MobileNetV3Impl : public torch::nn::Module, public Chain {
 public:
  // Parameters are left uninitialised; the builders initialise or load them.
  MobileNetV3Impl(const std::vector<mobilenetv3::InvertedResidualConfig>& setting, std::int64_t last_channel,
                  const MobileNetV3Options& options);
  torch::Tensor forward(torch::Tensor x) { return run_steps(std::move(x)); }
  std::vector<Step> steps() override;
  torch::nn::Sequential features{nullptr}, classifier{nullptr};
};
TORCH_MODULE(MobileNetV3);

// The weights enums (MobileNet_V3_Large_Weights, MobileNet_V3_Small_Weights) are generated into <modelzoo/weights_enums/classification.h>
// from the records in weights/records/mobilenetv3.cpp.

MobileNetV3 mobilenet_v3_large(std::optional<MobileNet_V3_Large_Weights> weights = {},
                               MobileNetV3Options options = {});
MobileNetV3 mobilenet_v3_small(std::optional<MobileNet_V3_Small_Weights> weights = {},
                               MobileNetV3Options options = {});

}  // namespace mz
