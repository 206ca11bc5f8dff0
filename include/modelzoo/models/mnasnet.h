// MNASNet B1 (torchvision.models.mnasnet), depth multipliers 0.5, 0.75, 1.0 and 1.3.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <torch/nn/modules/container/sequential.h>

#include "modelzoo/layers/chain.h"
#include "modelzoo/checkpoint.h"
#include "modelzoo/layers/nn.h"
#include "modelzoo/layers/ops.h"
#include "modelzoo/options.h"
#include "modelzoo/weights_enums/classification.h"

namespace mz {

// Python keyword arguments of the mnasnet builders (alpha is fixed by each builder).
struct MNASNetOptions {
  std::optional<std::int64_t> num_classes;  // default 1000, or len(categories) with weights
  double dropout = 0.2;
};
MZ_OPTIONS(MNASNetOptions, num_classes, dropout)

namespace mnasnet {

// Paper's 0.9997 TensorFlow momentum, as PyTorch momentum.
inline constexpr double kBnMomentum = 1 - 0.9997;

// _InvertedResidual: pointwise -> depthwise -> linear pointwise, in `layers` (Conv2d, BatchNorm2d,
// ReLU, Conv2d, BatchNorm2d, ReLU, Conv2d, BatchNorm2d).
class InvertedResidualImpl : public torch::nn::Module {
 public:
  InvertedResidualImpl(std::int64_t in_ch, std::int64_t out_ch, std::int64_t kernel_size, std::int64_t stride,
                       std::int64_t expansion_factor, double bn_momentum = 0.1);
  torch::Tensor forward(const torch::Tensor& x) { return ops::residual(apply_residual, x, layers->forward(x)); }
  torch::nn::Sequential layers{nullptr};
  bool apply_residual;
};
TORCH_MODULE(InvertedResidual);

// _get_depths: the 8 stage widths for a depth multiplier, rounded up to multiples of 8.
std::vector<std::int64_t> depths(double alpha);

}  // namespace mnasnet

// layers: stem (0..7), six stacks of inverted residuals (8..13), final 1x1 to 1280 (14..16).
// Version-1 checkpoints (saved before torchvision 0.5 with alpha != 1) have a stem fixed at 32/16
// channels: a load switches the stem to that layout first, as torchvision's _load_from_state_dict
// does. Our readers do not keep the pickle's per-module `_metadata` versions, so a v1 checkpoint is
// recognised by its stem shapes.
class MNASNetImpl : public torch::nn::Module, public Chain, public CheckpointAdapter {
 public:
  // Parameters are left uninitialised; the builders initialise or load them.
  MNASNetImpl(double alpha, const MNASNetOptions& options);
  torch::Tensor forward(torch::Tensor x) { return run_steps(std::move(x)); }
  std::vector<Step> steps() override;
  // Replaces the stem (layers 0..8) by the fixed-width stem of version-1 checkpoints, as
  // torchvision's _load_from_state_dict does for version 1 with alpha != 1 (a no-op for 1.0).
  void use_v1_stem();
  void adapt_checkpoint(IncomingState& state, const std::string& prefix) override;
  torch::nn::Sequential layers{nullptr}, classifier{nullptr};
  double alpha;
  int version = 2;  // torchvision's MNASNet._version; 1 after use_v1_stem()
};
TORCH_MODULE(MNASNet);

// The weights enums (MNASNet0_5_Weights, MNASNet0_75_Weights, ...) are generated into <modelzoo/weights_enums/classification.h>
// from the records in weights/records/mnasnet.cpp.

MNASNet mnasnet0_5(std::optional<MNASNet0_5_Weights> weights = {}, MNASNetOptions options = {});
MNASNet mnasnet0_75(std::optional<MNASNet0_75_Weights> weights = {}, MNASNetOptions options = {});
MNASNet mnasnet1_0(std::optional<MNASNet1_0_Weights> weights = {}, MNASNetOptions options = {});
MNASNet mnasnet1_3(std::optional<MNASNet1_3_Weights> weights = {}, MNASNetOptions options = {});

}  // namespace mz
