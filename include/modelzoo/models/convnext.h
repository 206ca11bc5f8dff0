// ConvNeXt tiny, small, base and large (torchvision.models.convnext).
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

// Python keyword arguments of the convnext builders that reach ConvNeXt (block and norm_layer
// are callables, not exposed).
struct ConvNeXtOptions {
  std::optional<std::int64_t> num_classes;             // default 1000, or len(categories) with weights
  std::optional<double> stochastic_depth_prob;         // default per builder: 0.1, 0.4, 0.5, 0.5
  double layer_scale = 1e-6;                           // initial value of every CNBlock's layer_scale
};
MZ_OPTIONS(ConvNeXtOptions, num_classes, stochastic_depth_prob, layer_scale)

namespace convnext {

// CNBlockConfig: a stage of `num_layers` blocks at `input_channels`, followed by a downsampling
// layer to `out_channels` (none after the last stage).
struct CNBlockConfig {
  std::int64_t input_channels;
  std::optional<std::int64_t> out_channels;
  std::int64_t num_layers;
};

// CNBlock: x + StochasticDepth(layer_scale * block(x)), block = depthwise 7x7 conv, Permute to
// NHWC, LayerNorm (eps 1e-6), Linear 4x, GELU, Linear back, Permute to NCHW (indices 0..6).
class CNBlockImpl : public torch::nn::Module {
 public:
  CNBlockImpl(std::int64_t dim, double stochastic_depth_prob);
  torch::Tensor forward(const torch::Tensor& x);
  ops::SequentialBlock block{nullptr};
  torch::Tensor layer_scale;  // (dim, 1, 1), uninitialised until init or load
  ops::StochasticDepth stochastic_depth{nullptr};
};
TORCH_MODULE(CNBlock);

}  // namespace convnext

// features: stem (4x4 stride-4 conv + LayerNorm2d), then per stage a Sequential of CNBlocks and,
// between stages, a Sequential(LayerNorm2d, 2x2 stride-2 conv); classifier: LayerNorm2d,
// Flatten, Linear.
class ConvNeXtImpl : public torch::nn::Module, public Chain {
 public:
  // Parameters are left uninitialised; the builders initialise or load them.
  ConvNeXtImpl(const std::vector<convnext::CNBlockConfig>& block_setting, double stochastic_depth_prob,
               const ConvNeXtOptions& options);
  torch::Tensor forward(torch::Tensor x) { return run_steps(std::move(x)); }
  std::vector<Step> steps() override;
  torch::nn::Sequential features{nullptr}, classifier{nullptr};
};
TORCH_MODULE(ConvNeXt);

// The weights enums (ConvNeXt_Tiny_Weights, ConvNeXt_Small_Weights, ...) are generated into <modelzoo/weights_enums/classification.h>
// from the records in weights/records/convnext.cpp.

ConvNeXt convnext_tiny(std::optional<ConvNeXt_Tiny_Weights> weights = {}, ConvNeXtOptions options = {});
ConvNeXt convnext_small(std::optional<ConvNeXt_Small_Weights> weights = {}, ConvNeXtOptions options = {});
ConvNeXt convnext_base(std::optional<ConvNeXt_Base_Weights> weights = {}, ConvNeXtOptions options = {});
ConvNeXt convnext_large(std::optional<ConvNeXt_Large_Weights> weights = {}, ConvNeXtOptions options = {});

}  // namespace mz
