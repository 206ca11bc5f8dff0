// Detection backbones (torchvision.ops.feature_pyramid_network and models.detection.backbone_utils):
// the feature pyramid, a backbone with FPN over any classifier, the ResNet and MobileNet extractors
// with torchvision's trainable-layer freezing, and mz::Backbone, what a detector's constructor takes.
//
//   auto fpn = mz::resnet_fpn_backbone("resnet50", {}, mz::ops::frozen_batch_norm2d(), 3);
//   auto maps = fpn->forward(images);   // {"0", "1", "2", "3", "pool"}, 256 channels each
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>

#include "modelzoo/checkpoint.h"
#include "modelzoo/heads/compose.h"
#include "modelzoo/layers/nn.h"
#include "modelzoo/layers/ops.h"
#include "modelzoo/tensor_dict.h"
#include "modelzoo/weights.h"

namespace mz {

// torchvision.ops.feature_pyramid_network.ExtraFPNBlock: adds levels after the FPN's own (results and
// names grow in place); `x` are the FPN's inputs.
class ExtraFPNBlockImpl : public torch::nn::Module {
 public:
  virtual void forward(std::vector<torch::Tensor>& results, const std::vector<torch::Tensor>& x,
                       std::vector<std::string>& names) = 0;
};

// LastLevelMaxPool: "pool" = max_pool2d(last result, kernel 1, stride 2). No parameters.
class LastLevelMaxPoolImpl : public ExtraFPNBlockImpl {
 public:
  void forward(std::vector<torch::Tensor>& results, const std::vector<torch::Tensor>& x,
               std::vector<std::string>& names) override;
};
TORCH_MODULE(LastLevelMaxPool);

// LastLevelP6P7 (RetinaNet): "p6" = p6(P5, or C5 when in_channels != out_channels), "p7" = p7(relu(p6)).
class LastLevelP6P7Impl : public ExtraFPNBlockImpl {
 public:
  LastLevelP6P7Impl(std::int64_t in_channels, std::int64_t out_channels);
  void forward(std::vector<torch::Tensor>& results, const std::vector<torch::Tensor>& x,
               std::vector<std::string>& names) override;
  nn::Conv2d p6{nullptr}, p7{nullptr};
  bool use_P5;
};
TORCH_MODULE(LastLevelP6P7);

// An optional extra block: any holder of an ExtraFPNBlockImpl (LastLevelMaxPool(), LastLevelP6P7(...)).
struct ExtraFPNBlock {
  ExtraFPNBlock() = default;
  ExtraFPNBlock(std::nullptr_t) {}  // NOLINT: no extra block
  ExtraFPNBlock(std::shared_ptr<ExtraFPNBlockImpl> p) : impl(std::move(p)) {}  // NOLINT
  template <class H, class = std::enable_if_t<std::is_base_of_v<ExtraFPNBlockImpl, typename H::ContainedType>>>
  ExtraFPNBlock(const H& holder) : impl(holder.ptr()) {}  // NOLINT
  std::shared_ptr<ExtraFPNBlockImpl> impl;
};

// torchvision.ops.FeaturePyramidNetwork: inner_blocks.<i> (1x1) and layer_blocks.<i> (3x3), each a
// Conv2dNormActivation without activation (norm_layer empty: conv with bias), top-down nearest
// upsampling, then the extra block. Convolutions are initialised as torchvision does
// (kaiming_uniform_(a=1), bias 0). Loads pre-version-2 checkpoints ("inner_blocks.0.weight").
class FeaturePyramidNetworkImpl : public torch::nn::Module, public CheckpointAdapter {
 public:
  FeaturePyramidNetworkImpl(const std::vector<std::int64_t>& in_channels_list, std::int64_t out_channels,
                            ExtraFPNBlock extra_blocks = {}, ops::NormLayer norm_layer = nullptr);
  // Maps in order, highest resolution first; the output keeps their names, then the extra block's.
  TensorDict forward(const TensorDict& x);
  void adapt_checkpoint(IncomingState& state, const std::string& prefix) override;
  torch::nn::ModuleList inner_blocks{nullptr}, layer_blocks{nullptr};
  std::shared_ptr<ExtraFPNBlockImpl> extra_blocks;
};
TORCH_MODULE(FeaturePyramidNetwork);

// torchvision's BackboneWithFPN: body = the model's layers up to the last returned one (mz::FeatureExtractor,
// torchvision's IntermediateLayerGetter), then fpn. Its maps all have out_channels channels.
// extra_blocks defaults to LastLevelMaxPool.
class BackboneWithFPNImpl : public torch::nn::Module {
 public:
  BackboneWithFPNImpl(std::shared_ptr<torch::nn::Module> backbone,
                      std::vector<std::pair<std::string, std::string>> return_layers,
                      const std::vector<std::int64_t>& in_channels_list, std::int64_t out_channels,
                      ExtraFPNBlock extra_blocks = {}, ops::NormLayer norm_layer = nullptr);
  TensorDict forward(const torch::Tensor& x) { return fpn->forward(body->forward(x)); }
  FeatureExtractor body{nullptr};
  FeaturePyramidNetwork fpn{nullptr};
  std::int64_t out_channels;
};
TORCH_MODULE(BackboneWithFPN);

// What a detector takes as its backbone: any module holder whose forward(x) gives one Tensor (a
// torch::nn::Sequential such as mobilenet_v2()->features; it becomes {"0": map}) or a TensorDict
// (mz::FeatureExtractor, mz::BackboneWithFPN). out_channels is known for BackboneWithFPN and
// mobilenet_backbone's results; detectors probe it otherwise (or take it from their options).
struct Backbone {
  template <class H, class = decltype(std::declval<H&>()->forward(std::declval<const torch::Tensor&>()))>
  Backbone(H holder) : module(holder.ptr()) {  // NOLINT: any backbone converts
    using Out = decltype(holder->forward(std::declval<const torch::Tensor&>()));
    auto impl = holder.ptr();
    if constexpr (std::is_same_v<std::decay_t<Out>, torch::Tensor>) {
      forward = [impl](const torch::Tensor& x) {
        TensorDict out;
        out.insert("0", impl->forward(x));
        return out;
      };
    } else {
      forward = [impl](const torch::Tensor& x) { return TensorDict(impl->forward(x)); };
    }
    if constexpr (std::is_same_v<typename H::ContainedType, BackboneWithFPNImpl>) out_channels = impl->out_channels;
  }
  // The channels every map has: out_channels, else probed with one forward of a zero 224 x 224 image in eval mode.
  // No maps, or maps that disagree, are a UsageError naming `model`.
  std::int64_t channels(const char* model) const;
  std::shared_ptr<torch::nn::Module> module;
  std::function<TensorDict(const torch::Tensor&)> forward;
  std::optional<std::int64_t> out_channels;
};

// torchvision's _validate_trainable_layers: without pretrained weights (is_trained false) every layer
// trains (max_value); otherwise `given`, default_value, checked to lie in [0, max_value].
std::int64_t validate_trainable_layers(bool is_trained, std::optional<std::int64_t> given, std::int64_t max_value,
                                       std::int64_t default_value);

// torchvision's _resnet_fpn_extractor over a built ResNet: freezes all but the last trainable_layers
// stages (layer4 ... conv1, plus bn1 at 5), returns layer<k> for k in returned_layers (default
// 1..4) under "0", "1", ..., through an FPN of 256 channels (extra_blocks default LastLevelMaxPool).
class ResNetImpl;
BackboneWithFPN resnet_fpn_extractor(std::shared_ptr<ResNetImpl> backbone, std::int64_t trainable_layers,
                                     std::vector<std::int64_t> returned_layers = {}, ExtraFPNBlock extra_blocks = {},
                                     ops::NormLayer norm_layer = nullptr);
// torchvision's resnet_fpn_backbone: builds `backbone_name` ("resnet50", ...) with `weights` (a full
// weights name, or none) and norm_layer (default FrozenBatchNorm2d), then resnet_fpn_extractor.
BackboneWithFPN resnet_fpn_backbone(const std::string& backbone_name, const std::optional<Weights>& weights,
                                    ops::NormLayer norm_layer = ops::frozen_batch_norm2d(),
                                    std::int64_t trainable_layers = 3, std::vector<std::int64_t> returned_layers = {},
                                    ExtraFPNBlock extra_blocks = {});

// torchvision's _mobilenet_extractor over MobileNetV3 features: stages start at index 0, at every
// block with is_cn, and at the last layer; the first stages are frozen. With fpn: the last two stages
// (or returned_layers) through a 256-channel FPN; without: features then a 1x1 conv to 256 channels.
class MobileNetV3Impl;
Backbone mobilenet_extractor(std::shared_ptr<MobileNetV3Impl> backbone, bool fpn, std::int64_t trainable_layers,
                             std::vector<std::int64_t> returned_layers = {}, ExtraFPNBlock extra_blocks = {},
                             ops::NormLayer norm_layer = nullptr);
// torchvision's mobilenet_backbone ("mobilenet_v3_large" or "mobilenet_v3_small").
Backbone mobilenet_backbone(const std::string& backbone_name, const std::optional<Weights>& weights, bool fpn,
                            ops::NormLayer norm_layer = ops::frozen_batch_norm2d(), std::int64_t trainable_layers = 2,
                            std::vector<std::int64_t> returned_layers = {}, ExtraFPNBlock extra_blocks = {});

// torchvision.models.detection._utils.overwrite_eps: sets eps of every FrozenBatchNorm2d in `model`.
void overwrite_eps(torch::nn::Module& model, double eps);

}  // namespace mz
