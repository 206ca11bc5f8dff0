// VGG 11/13/16/19, with and without BatchNorm (torchvision.models.vgg).
#pragma once

#include <optional>
#include <vector>

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/pooling.h>

#include "modelzoo/layers/chain.h"
#include "modelzoo/layers/nn.h"
#include "modelzoo/options.h"
#include "modelzoo/weights_enums/classification.h"

namespace mz {

// Python keyword arguments of torchvision's vgg builders.
struct VGGOptions {
  std::optional<std::int64_t> num_classes;  // default 1000, or len(categories) with weights that have them
  bool init_weights = true;                 // ignored with weights (nothing is initialised then)
  double dropout = 0.5;
};
MZ_OPTIONS(VGGOptions, num_classes, init_weights, dropout)

class VGGImpl : public torch::nn::Module, public Chain {
 public:
  // `cfg` lists the conv widths of `features`, 0 standing for a max-pool ("M" in torchvision).
  // Parameters are left uninitialised; the builders initialise or load them.
  VGGImpl(const std::vector<std::int64_t>& cfg, bool batch_norm, const VGGOptions& options);
  torch::Tensor forward(torch::Tensor x) { return run_steps(std::move(x)); }
  std::vector<Step> steps() override;
  torch::nn::Sequential features{nullptr};
  torch::nn::AdaptiveAvgPool2d avgpool{nullptr};
  torch::nn::Sequential classifier{nullptr};
};
TORCH_MODULE(VGG);

// The weights enums (VGG11_Weights, VGG11_BN_Weights, ...) are generated into <modelzoo/weights_enums/classification.h>
// from the records in weights/records/vgg.cpp.
// VGG16_Weights::IMAGENET1K_FEATURES: only `features` holds trained values (the classifier is NaN); no categories.

VGG vgg11(std::optional<VGG11_Weights> weights = {}, VGGOptions options = {});
VGG vgg11_bn(std::optional<VGG11_BN_Weights> weights = {}, VGGOptions options = {});
VGG vgg13(std::optional<VGG13_Weights> weights = {}, VGGOptions options = {});
VGG vgg13_bn(std::optional<VGG13_BN_Weights> weights = {}, VGGOptions options = {});
VGG vgg16(std::optional<VGG16_Weights> weights = {}, VGGOptions options = {});
VGG vgg16_bn(std::optional<VGG16_BN_Weights> weights = {}, VGGOptions options = {});
VGG vgg19(std::optional<VGG19_Weights> weights = {}, VGGOptions options = {});
VGG vgg19_bn(std::optional<VGG19_BN_Weights> weights = {}, VGGOptions options = {});

}  // namespace mz
