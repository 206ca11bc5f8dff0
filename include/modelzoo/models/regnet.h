// RegNet X and Y (torchvision.models.regnet): stage widths derived from the block-parameter rules.
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

// Python keyword arguments of the regnet builders that reach RegNet (stem_type, block_type,
// norm_layer and activation are callables, not exposed).
struct RegNetOptions {
  std::optional<std::int64_t> num_classes;  // default 1000, or len(categories) with weights
  std::int64_t stem_width = 32;
};
MZ_OPTIONS(RegNetOptions, num_classes, stem_width)

namespace regnet {

// torchvision's BlockParams: per-stage depths, widths, group widths, bottleneck multipliers and
// strides, plus the SE ratio (none for RegNet X).
struct BlockParams {
  std::vector<std::int64_t> depths, widths, group_widths;
  std::vector<double> bottleneck_multipliers;
  std::vector<std::int64_t> strides;
  std::optional<double> se_ratio;

  // BlockParams.from_init_params: quantised linear widths (in log space, multiples of 8) split
  // into stages of equal width, then widths adjusted to be compatible with the group widths.
  // Computed with the same float32 tensor arithmetic as torchvision, so the rounding agrees.
  static BlockParams from_init_params(std::int64_t depth, std::int64_t w_0, double w_a, double w_m,
                                      std::int64_t group_width, double bottleneck_multiplier = 1.0,
                                      std::optional<double> se_ratio = {});
};

// BottleneckTransform: a Sequential with children "a" (1x1), "b" (3x3 grouped, strided),
// "se" (SqueezeExcitation, RegNet Y only) and "c" (1x1, no activation).
class BottleneckTransformImpl : public ops::SequentialBlockImpl {
 public:
  BottleneckTransformImpl(std::int64_t width_in, std::int64_t width_out, std::int64_t stride,
                          const ops::NormLayer& norm_layer, std::int64_t group_width, double bottleneck_multiplier,
                          std::optional<double> se_ratio);
  void pretty_print(std::ostream& stream) const override { stream << "BottleneckTransform"; }
};
TORCH_MODULE(BottleneckTransform);

// ResBottleneckBlock: relu(proj(x) + f(x)), proj (1x1 Conv-BN) only when the shape changes.
class ResBottleneckBlockImpl : public torch::nn::Module {
 public:
  ResBottleneckBlockImpl(std::int64_t width_in, std::int64_t width_out, std::int64_t stride,
                         const ops::NormLayer& norm_layer, std::int64_t group_width, double bottleneck_multiplier,
                         std::optional<double> se_ratio);
  torch::Tensor forward(const torch::Tensor& x);
  ops::Conv2dNormActivation proj{nullptr};
  BottleneckTransform f{nullptr};
  ops::Activation activation{nullptr};
};
TORCH_MODULE(ResBottleneckBlock);

// AnyStage: a Sequential of `depth` blocks named "block<stage_index>-<i>".
class AnyStageImpl : public ops::SequentialBlockImpl {
 public:
  AnyStageImpl(std::int64_t width_in, std::int64_t width_out, std::int64_t stride, std::int64_t depth,
               const ops::NormLayer& norm_layer, std::int64_t group_width, double bottleneck_multiplier,
               std::optional<double> se_ratio, std::int64_t stage_index);
  void pretty_print(std::ostream& stream) const override { stream << "AnyStage"; }
};
TORCH_MODULE(AnyStage);

}  // namespace regnet

// stem (3x3 stride 2 Conv-BN-ReLU), trunk_output (stages "block1".."blockN"), avgpool, fc.
class RegNetImpl : public torch::nn::Module, public Chain {
 public:
  // Parameters are left uninitialised; the builders initialise or load them.
  RegNetImpl(const regnet::BlockParams& block_params, const RegNetOptions& options);
  torch::Tensor forward(torch::Tensor x) { return run_steps(std::move(x)); }
  std::vector<Step> steps() override;
  ops::Conv2dNormActivation stem{nullptr};
  torch::nn::Sequential trunk_output{nullptr};
  nn::Linear fc{nullptr};
};
TORCH_MODULE(RegNet);

// The weights enums (RegNet_Y_400MF_Weights, RegNet_Y_800MF_Weights, ...) are generated into <modelzoo/weights_enums/classification.h>
// from the records in weights/records/regnet.cpp.

RegNet regnet_y_400mf(std::optional<RegNet_Y_400MF_Weights> weights = {}, RegNetOptions options = {});
RegNet regnet_y_800mf(std::optional<RegNet_Y_800MF_Weights> weights = {}, RegNetOptions options = {});
RegNet regnet_y_1_6gf(std::optional<RegNet_Y_1_6GF_Weights> weights = {}, RegNetOptions options = {});
RegNet regnet_y_3_2gf(std::optional<RegNet_Y_3_2GF_Weights> weights = {}, RegNetOptions options = {});
RegNet regnet_y_8gf(std::optional<RegNet_Y_8GF_Weights> weights = {}, RegNetOptions options = {});
RegNet regnet_y_16gf(std::optional<RegNet_Y_16GF_Weights> weights = {}, RegNetOptions options = {});
RegNet regnet_y_32gf(std::optional<RegNet_Y_32GF_Weights> weights = {}, RegNetOptions options = {});
RegNet regnet_y_128gf(std::optional<RegNet_Y_128GF_Weights> weights = {}, RegNetOptions options = {});
RegNet regnet_x_400mf(std::optional<RegNet_X_400MF_Weights> weights = {}, RegNetOptions options = {});
RegNet regnet_x_800mf(std::optional<RegNet_X_800MF_Weights> weights = {}, RegNetOptions options = {});
RegNet regnet_x_1_6gf(std::optional<RegNet_X_1_6GF_Weights> weights = {}, RegNetOptions options = {});
RegNet regnet_x_3_2gf(std::optional<RegNet_X_3_2GF_Weights> weights = {}, RegNetOptions options = {});
RegNet regnet_x_8gf(std::optional<RegNet_X_8GF_Weights> weights = {}, RegNetOptions options = {});
RegNet regnet_x_16gf(std::optional<RegNet_X_16GF_Weights> weights = {}, RegNetOptions options = {});
RegNet regnet_x_32gf(std::optional<RegNet_X_32GF_Weights> weights = {}, RegNetOptions options = {});

}  // namespace mz
