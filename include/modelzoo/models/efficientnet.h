// EfficientNet B0-B7 and EfficientNetV2 S/M/L (torchvision.models.efficientnet).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/modules/container/sequential.h>

#include "modelzoo/layers/chain.h"
#include "modelzoo/layers/nn.h"
#include "modelzoo/layers/ops.h"
#include "modelzoo/options.h"
#include "modelzoo/weights_enums/classification.h"

namespace mz {

// Python keyword arguments of the efficientnet builders that reach EfficientNet: dropout,
// last_channel and norm_layer are fixed by each builder (passing them is a TypeError in Python).
struct EfficientNetOptions {
  std::optional<std::int64_t> num_classes;  // default 1000, or len(categories) with weights
  double stochastic_depth_prob = 0.2;       // the last block's; earlier blocks get a linear fraction
};
MZ_OPTIONS(EfficientNetOptions, num_classes, stochastic_depth_prob)

namespace efficientnet {

// _MBConvConfig: one row of Table 1 of the EfficientNet paper (MBConv, channels and depth already
// scaled by width_mult / depth_mult) or of Table 4 of the EfficientNetV2 paper (MBConv or FusedMBConv).
struct MBConvConfig {
  double expand_ratio;
  std::int64_t kernel, stride, input_channels, out_channels, num_layers;
  bool fused;  // FusedMBConv (EfficientNetV2's early stages) rather than MBConv
  static std::int64_t adjust_channels(std::int64_t channels, double width_mult,
                                      std::optional<std::int64_t> min_value = {});
  static std::int64_t adjust_depth(std::int64_t num_layers, double depth_mult);
};
// MBConvConfig(expand_ratio, kernel, stride, input_channels, out_channels, num_layers, width_mult, depth_mult).
MBConvConfig mbconv(double expand_ratio, std::int64_t kernel, std::int64_t stride, std::int64_t input_channels,
                    std::int64_t out_channels, std::int64_t num_layers, double width_mult = 1.0,
                    double depth_mult = 1.0);
// FusedMBConvConfig(expand_ratio, kernel, stride, input_channels, out_channels, num_layers): no scaling.
MBConvConfig fused_mbconv(double expand_ratio, std::int64_t kernel, std::int64_t stride, std::int64_t input_channels,
                          std::int64_t out_channels, std::int64_t num_layers);

// What MBConv and FusedMBConv share: the layers of `block` (each subclass fills it) and, with a
// residual connection, the block's output passing StochasticDepth("row") before the addition.
class MBConvBaseImpl : public torch::nn::Module {
 public:
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Sequential block{nullptr};
  ops::StochasticDepth stochastic_depth{nullptr};
  bool use_res_connect = false;
  std::int64_t out_channels = 0;

 protected:
  MBConvBaseImpl(const MBConvConfig& cnf, double stochastic_depth_prob);
};

// Expand 1x1 (when channels grow) -> depthwise -> SqueezeExcitation (SiLU) -> linear 1x1 projection.
class MBConvImpl : public MBConvBaseImpl {
 public:
  MBConvImpl(const MBConvConfig& cnf, double stochastic_depth_prob, const ops::NormLayer& norm_layer);
};
TORCH_MODULE(MBConv);

// Fused expand (kxk conv) -> linear 1x1 projection, or a single kxk conv when nothing expands.
class FusedMBConvImpl : public MBConvBaseImpl {
 public:
  FusedMBConvImpl(const MBConvConfig& cnf, double stochastic_depth_prob, const ops::NormLayer& norm_layer);
};
TORCH_MODULE(FusedMBConv);

// _efficientnet_conf: the block table and last_channel (none for B0-B7: 4x the last block's
// channels) of "efficientnet_b*" (scaled by width_mult, depth_mult) or "efficientnet_v2_{s,m,l}".
std::pair<std::vector<MBConvConfig>, std::optional<std::int64_t>> config(const std::string& arch,
                                                                         double width_mult = 1.0,
                                                                         double depth_mult = 1.0);

}  // namespace efficientnet

// features: stem Conv2dNormActivation (stride 2, SiLU), one Sequential stage of MBConv /
// FusedMBConv blocks per config row, last 1x1 Conv2dNormActivation; classifier: Dropout, Linear.
class EfficientNetImpl : public torch::nn::Module, public Chain {
 public:
  // Parameters are left uninitialised; the builders initialise or load them.
  EfficientNetImpl(const std::vector<efficientnet::MBConvConfig>& inverted_residual_setting, double dropout,
                   const EfficientNetOptions& options, const ops::NormLayer& norm_layer,
                   std::optional<std::int64_t> last_channel = {});
  torch::Tensor forward(torch::Tensor x) { return run_steps(std::move(x)); }
  std::vector<Step> steps() override;
  torch::nn::Sequential features{nullptr}, classifier{nullptr};
};
TORCH_MODULE(EfficientNet);

// The weights enums (EfficientNet_B0_Weights, EfficientNet_B1_Weights, ...) are generated into <modelzoo/weights_enums/classification.h>
// from the records in weights/records/efficientnet.cpp.

EfficientNet efficientnet_b0(std::optional<EfficientNet_B0_Weights> weights = {}, EfficientNetOptions options = {});
EfficientNet efficientnet_b1(std::optional<EfficientNet_B1_Weights> weights = {}, EfficientNetOptions options = {});
EfficientNet efficientnet_b2(std::optional<EfficientNet_B2_Weights> weights = {}, EfficientNetOptions options = {});
EfficientNet efficientnet_b3(std::optional<EfficientNet_B3_Weights> weights = {}, EfficientNetOptions options = {});
EfficientNet efficientnet_b4(std::optional<EfficientNet_B4_Weights> weights = {}, EfficientNetOptions options = {});
EfficientNet efficientnet_b5(std::optional<EfficientNet_B5_Weights> weights = {}, EfficientNetOptions options = {});
EfficientNet efficientnet_b6(std::optional<EfficientNet_B6_Weights> weights = {}, EfficientNetOptions options = {});
EfficientNet efficientnet_b7(std::optional<EfficientNet_B7_Weights> weights = {}, EfficientNetOptions options = {});
EfficientNet efficientnet_v2_s(std::optional<EfficientNet_V2_S_Weights> weights = {},
                               EfficientNetOptions options = {});
EfficientNet efficientnet_v2_m(std::optional<EfficientNet_V2_M_Weights> weights = {},
                               EfficientNetOptions options = {});
EfficientNet efficientnet_v2_l(std::optional<EfficientNet_V2_L_Weights> weights = {},
                               EfficientNetOptions options = {});

}  // namespace mz
