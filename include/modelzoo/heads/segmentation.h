// Semantic segmentation heads over any backbone (torchvision.models.segmentation's FCNHead,
// DeepLabHead/ASPP, LR-ASPP and the models that join them to a feature extractor). Outputs are
// upsampled to the input size and returned as an ordered map: "out", plus "aux" when an auxiliary
// classifier is present.
//
//   auto backbone = mz::feature_extractor(mz::mobilenet_v3_large(), {{"features.16", "out"}});
//   auto model = mz::DeepLabV3(backbone, mz::DeepLabHead(960, 5));
#pragma once

#include <vector>

#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/pooling.h>

#include "modelzoo/heads/compose.h"
#include "modelzoo/layers/ops.h"

namespace mz {

// torchvision's FCNHead: 3x3 conv to in/4 channels, BN, ReLU, Dropout(0.1), 1x1 conv.
class FCNHeadImpl : public ops::SequentialBlockImpl {
 public:
  FCNHeadImpl(std::int64_t in_channels, std::int64_t channels);
};
TORCH_MODULE(FCNHead);

// Atrous spatial pyramid pooling: a 1x1 branch, one 3x3 branch per rate, image pooling; projected.
class ASPPImpl : public torch::nn::Module {
 public:
  ASPPImpl(std::int64_t in_channels, std::vector<std::int64_t> atrous_rates, std::int64_t out_channels = 256);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::ModuleList convs{nullptr};
  ops::SequentialBlock project{nullptr};
};
TORCH_MODULE(ASPP);

// torchvision's DeepLabHead: ASPP, 3x3 conv, BN, ReLU, 1x1 conv to num_classes.
class DeepLabHeadImpl : public ops::SequentialBlockImpl {
 public:
  DeepLabHeadImpl(std::int64_t in_channels, std::int64_t num_classes,
                  std::vector<std::int64_t> atrous_rates = {12, 24, 36});
};
TORCH_MODULE(DeepLabHead);

// Backbone features {"out"[, "aux"]} -> classifier (+ aux_classifier), each upsampled to the input.
// Heads are any module holders with forward(Tensor) -> Tensor (or an AnyModule); aux may be nullptr.
class SegmentationModelImpl : public torch::nn::Module {
 public:
  template <class Head, class AuxHead = std::nullptr_t>
  SegmentationModelImpl(FeatureExtractor backbone, Head classifier, AuxHead aux_classifier = nullptr) {
    init(std::move(backbone), any(std::move(classifier)), any(std::move(aux_classifier)));
  }
  TensorDict forward(const torch::Tensor& x);
  FeatureExtractor backbone{nullptr};
  torch::nn::AnyModule classifier, aux_classifier;

 private:
  void init(FeatureExtractor backbone, torch::nn::AnyModule classifier, torch::nn::AnyModule aux_classifier);
  static torch::nn::AnyModule any(torch::nn::AnyModule m) { return m; }
  static torch::nn::AnyModule any(std::nullptr_t) { return {}; }
  template <class Holder>
  static torch::nn::AnyModule any(Holder h) {
    return torch::nn::AnyModule(std::move(h));
  }
};

class FCNImpl : public SegmentationModelImpl {
 public:
  using SegmentationModelImpl::SegmentationModelImpl;
};
TORCH_MODULE(FCN);

class DeepLabV3Impl : public SegmentationModelImpl {
 public:
  using SegmentationModelImpl::SegmentationModelImpl;
};
TORCH_MODULE(DeepLabV3);

// Lite R-ASPP head over "low" and "high" features.
class LRASPPHeadImpl : public torch::nn::Module {
 public:
  LRASPPHeadImpl(std::int64_t low_channels, std::int64_t high_channels, std::int64_t num_classes,
                 std::int64_t inter_channels);
  torch::Tensor forward(const torch::Tensor& low, const torch::Tensor& high);
  ops::SequentialBlock cbr{nullptr}, scale{nullptr};
  nn::Conv2d low_classifier{nullptr}, high_classifier{nullptr};
};
TORCH_MODULE(LRASPPHead);

// The backbone must return {"low", "high"}.
class LRASPPImpl : public torch::nn::Module {
 public:
  LRASPPImpl(FeatureExtractor backbone, std::int64_t low_channels, std::int64_t high_channels,
             std::int64_t num_classes, std::int64_t inter_channels = 128);
  TensorDict forward(const torch::Tensor& x);
  FeatureExtractor backbone{nullptr};
  LRASPPHead classifier{nullptr};
};
TORCH_MODULE(LRASPP);

}  // namespace mz
