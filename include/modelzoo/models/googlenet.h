// GoogLeNet, Inception v1 (torchvision.models.googlenet).
#pragma once

#include <optional>

#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/pooling.h>

#include "modelzoo/layers/chain.h"
#include "modelzoo/layers/nn.h"
#include "modelzoo/layers/ops.h"
#include "modelzoo/options.h"
#include "modelzoo/weights_enums/classification.h"

namespace mz {

// Python keyword arguments of torchvision's GoogLeNet (blocks is not exposed).
struct GoogLeNetOptions {
  std::optional<std::int64_t> num_classes;  // default 1000, or len(categories) with weights
  // Default true without weights. With weights the aux heads are built and loaded, then dropped
  // unless aux_logits is true (false is an error, as in torchvision).
  std::optional<bool> aux_logits;
  std::optional<bool> transform_input;  // default false; true with weights unless given
  std::optional<bool> init_weights;     // default true (torchvision warns); must not be true with weights
  double dropout = 0.2;
  double dropout_aux = 0.7;
};
MZ_OPTIONS(GoogLeNetOptions, num_classes, aux_logits, transform_input, init_weights, dropout, dropout_aux)

// GoogLeNet's Inception block: four branches concatenated.
class InceptionImpl : public torch::nn::Module {
 public:
  InceptionImpl(std::int64_t in_channels, std::int64_t ch1x1, std::int64_t ch3x3red, std::int64_t ch3x3,
                std::int64_t ch5x5red, std::int64_t ch5x5, std::int64_t pool_proj);
  torch::Tensor forward(torch::Tensor x);
  ops::BasicConv2d branch1{nullptr};
  torch::nn::Sequential branch2{nullptr}, branch3{nullptr}, branch4{nullptr};
};
TORCH_MODULE(Inception);

// GoogLeNet's auxiliary classifier (aux1, aux2).
class InceptionAuxImpl : public torch::nn::Module {
 public:
  InceptionAuxImpl(std::int64_t in_channels, std::int64_t num_classes, double dropout);
  torch::Tensor forward(torch::Tensor x);
  ops::BasicConv2d conv{nullptr};
  nn::Linear fc1{nullptr}, fc2{nullptr};
  torch::nn::Dropout dropout{nullptr};
};
TORCH_MODULE(InceptionAux);

// torchvision's GoogLeNetOutputs; the aux logits are defined only in training mode with aux heads.
struct GoogLeNetOutputs {
  torch::Tensor logits, aux_logits2, aux_logits1;
};

class GoogLeNetImpl : public torch::nn::Module, public Chain {
 public:
  // Parameters are left uninitialised; the builder initialises or loads them.
  explicit GoogLeNetImpl(const GoogLeNetOptions& options);
  // The logits (what torchvision returns in eval mode, or without aux heads).
  torch::Tensor forward(torch::Tensor x) { return run_steps(std::move(x)); }
  // The logits and, in training mode with aux heads, the aux heads' logits (torchvision's training output).
  GoogLeNetOutputs forward_outputs(torch::Tensor x);
  std::vector<Step> steps() override;
  // Removes aux1 and aux2 (as the builder does after loading weights unless aux_logits was asked for).
  void drop_aux();
  bool aux_logits() const { return !aux1.is_empty(); }
  bool transform_input;
  ops::BasicConv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  torch::nn::MaxPool2d maxpool1{nullptr}, maxpool2{nullptr}, maxpool3{nullptr}, maxpool4{nullptr};
  Inception inception3a{nullptr}, inception3b{nullptr}, inception4a{nullptr}, inception4b{nullptr},
      inception4c{nullptr}, inception4d{nullptr}, inception4e{nullptr}, inception5a{nullptr}, inception5b{nullptr};
  InceptionAux aux1{nullptr}, aux2{nullptr};  // null without aux heads
  torch::nn::AdaptiveAvgPool2d avgpool{nullptr};
  torch::nn::Dropout dropout{nullptr};
  nn::Linear fc{nullptr};
};
TORCH_MODULE(GoogLeNet);

// The weights enums (GoogLeNet_Weights) are generated into <modelzoo/weights_enums/classification.h>
// from the records in weights/records/googlenet.cpp.

GoogLeNet googlenet(std::optional<GoogLeNet_Weights> weights = {}, GoogLeNetOptions options = {});

}  // namespace mz
