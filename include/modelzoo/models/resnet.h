// ResNet, ResNeXt and Wide ResNet (torchvision.models.resnet).
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

// Python keyword arguments of torchvision's resnet builders. norm_layer (C++ only, not in JSON options)
// must make an nn::BatchNorm2d or nn::FrozenBatchNorm2d (ops::frozen_batch_norm2d(), as detection uses).
struct ResNetOptions {
  std::optional<std::int64_t> num_classes;  // default 1000, or len(categories) with weights
  bool zero_init_residual = false;
  std::optional<std::int64_t> groups;           // default 1 (fixed by the resnext builders)
  std::optional<std::int64_t> width_per_group;  // default 64 (fixed by resnext and wide_resnet)
  std::vector<bool> replace_stride_with_dilation;  // empty or 3 entries
  ops::NormLayer norm_layer;                       // empty: nn.BatchNorm2d
};
MZ_OPTIONS(ResNetOptions, num_classes, zero_init_residual, groups, width_per_group, replace_stride_with_dilation)

class BasicBlockImpl : public torch::nn::Module {
 public:
  static constexpr std::int64_t expansion = 1;
  BasicBlockImpl(std::int64_t inplanes, std::int64_t planes, std::int64_t stride, torch::nn::Sequential downsample,
                 std::int64_t groups, std::int64_t base_width, std::int64_t dilation, const ops::NormLayer& norm = {});
  torch::Tensor forward(torch::Tensor x);
  nn::Conv2d conv1{nullptr}, conv2{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  torch::nn::Sequential downsample{nullptr};
};
TORCH_MODULE(BasicBlock);

class BottleneckImpl : public torch::nn::Module {
 public:
  static constexpr std::int64_t expansion = 4;
  BottleneckImpl(std::int64_t inplanes, std::int64_t planes, std::int64_t stride, torch::nn::Sequential downsample,
                 std::int64_t groups, std::int64_t base_width, std::int64_t dilation, const ops::NormLayer& norm = {});
  torch::Tensor forward(torch::Tensor x);
  nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  nn::BatchNorm2d bn1{nullptr}, bn2{nullptr}, bn3{nullptr};
  torch::nn::Sequential downsample{nullptr};
};
TORCH_MODULE(Bottleneck);

enum class ResNetBlock { Basic, Bottleneck };

class ResNetImpl : public torch::nn::Module, public Chain {
 public:
  // Parameters are left uninitialised; the builders initialise or load them.
  ResNetImpl(ResNetBlock block, std::vector<std::int64_t> layers, const ResNetOptions& options);
  torch::Tensor forward(torch::Tensor x) { return run_steps(std::move(x)); }
  std::vector<Step> steps() override;
  std::int64_t inplanes() const { return inplanes_; }  // channels of layer4's output
  nn::Conv2d conv1{nullptr};
  nn::BatchNorm2d bn1{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};
  nn::Linear fc{nullptr};

 private:
  torch::nn::Sequential make_layer(ResNetBlock block, std::int64_t planes, std::int64_t blocks, std::int64_t stride,
                                   bool dilate);
  std::int64_t inplanes_ = 64, dilation_ = 1, groups_, base_width_;
  ops::NormLayer norm_;
};
TORCH_MODULE(ResNet);

// The weights enums (ResNet18_Weights, ResNet34_Weights, ...) are generated into <modelzoo/weights_enums/classification.h>
// from the records in weights/records/resnet.cpp.

ResNet resnet18(std::optional<ResNet18_Weights> weights = {}, ResNetOptions options = {});
ResNet resnet34(std::optional<ResNet34_Weights> weights = {}, ResNetOptions options = {});
ResNet resnet50(std::optional<ResNet50_Weights> weights = {}, ResNetOptions options = {});
ResNet resnet101(std::optional<ResNet101_Weights> weights = {}, ResNetOptions options = {});
ResNet resnet152(std::optional<ResNet152_Weights> weights = {}, ResNetOptions options = {});
ResNet resnext50_32x4d(std::optional<ResNeXt50_32X4D_Weights> weights = {}, ResNetOptions options = {});
ResNet resnext101_32x8d(std::optional<ResNeXt101_32X8D_Weights> weights = {}, ResNetOptions options = {});
ResNet resnext101_64x4d(std::optional<ResNeXt101_64X4D_Weights> weights = {}, ResNetOptions options = {});
ResNet wide_resnet50_2(std::optional<Wide_ResNet50_2_Weights> weights = {}, ResNetOptions options = {});
ResNet wide_resnet101_2(std::optional<Wide_ResNet101_2_Weights> weights = {}, ResNetOptions options = {});

}  // namespace mz
