// Inception v3 (torchvision.models.inception).
#pragma once

#include <optional>

#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/pooling.h>

#include "modelzoo/layers/chain.h"
#include "modelzoo/layers/ops.h"
#include "modelzoo/layers/nn.h"
#include "modelzoo/options.h"
#include "modelzoo/weights_enums/classification.h"

namespace mz {

// Python keyword arguments of torchvision's Inception3 (inception_blocks is not exposed).
struct Inception3Options {
  std::optional<std::int64_t> num_classes;  // default 1000, or len(categories) with weights
  // Default true. With weights the aux head is built and loaded, and kept unless aux_logits is
  // false, which torchvision (and so modelzoo) rejects with weights: it is always kept then.
  std::optional<bool> aux_logits;
  std::optional<bool> transform_input;  // default false; true with weights unless given
  std::optional<bool> init_weights;     // default true (torchvision warns); must not be true with weights
  double dropout = 0.5;
};
MZ_OPTIONS(Inception3Options, num_classes, aux_logits, transform_input, init_weights, dropout)

class InceptionAImpl : public torch::nn::Module {
 public:
  InceptionAImpl(std::int64_t in_channels, std::int64_t pool_features);
  torch::Tensor forward(torch::Tensor x);
  ops::BasicConv2d branch1x1{nullptr}, branch5x5_1{nullptr}, branch5x5_2{nullptr}, branch3x3dbl_1{nullptr},
      branch3x3dbl_2{nullptr}, branch3x3dbl_3{nullptr}, branch_pool{nullptr};
};
TORCH_MODULE(InceptionA);

class InceptionBImpl : public torch::nn::Module {
 public:
  explicit InceptionBImpl(std::int64_t in_channels);
  torch::Tensor forward(torch::Tensor x);
  ops::BasicConv2d branch3x3{nullptr}, branch3x3dbl_1{nullptr}, branch3x3dbl_2{nullptr}, branch3x3dbl_3{nullptr};
};
TORCH_MODULE(InceptionB);

class InceptionCImpl : public torch::nn::Module {
 public:
  InceptionCImpl(std::int64_t in_channels, std::int64_t channels_7x7);
  torch::Tensor forward(torch::Tensor x);
  ops::BasicConv2d branch1x1{nullptr}, branch7x7_1{nullptr}, branch7x7_2{nullptr}, branch7x7_3{nullptr},
      branch7x7dbl_1{nullptr}, branch7x7dbl_2{nullptr}, branch7x7dbl_3{nullptr}, branch7x7dbl_4{nullptr},
      branch7x7dbl_5{nullptr}, branch_pool{nullptr};
};
TORCH_MODULE(InceptionC);

class InceptionDImpl : public torch::nn::Module {
 public:
  explicit InceptionDImpl(std::int64_t in_channels);
  torch::Tensor forward(torch::Tensor x);
  ops::BasicConv2d branch3x3_1{nullptr}, branch3x3_2{nullptr}, branch7x7x3_1{nullptr}, branch7x7x3_2{nullptr},
      branch7x7x3_3{nullptr}, branch7x7x3_4{nullptr};
};
TORCH_MODULE(InceptionD);

class InceptionEImpl : public torch::nn::Module {
 public:
  explicit InceptionEImpl(std::int64_t in_channels);
  torch::Tensor forward(torch::Tensor x);
  ops::BasicConv2d branch1x1{nullptr}, branch3x3_1{nullptr}, branch3x3_2a{nullptr}, branch3x3_2b{nullptr},
      branch3x3dbl_1{nullptr}, branch3x3dbl_2{nullptr}, branch3x3dbl_3a{nullptr}, branch3x3dbl_3b{nullptr},
      branch_pool{nullptr};
};
TORCH_MODULE(InceptionE);

// Inception v3's auxiliary classifier (`AuxLogits`; torchvision's inception.InceptionAux).
class Inception3AuxImpl : public torch::nn::Module {
 public:
  Inception3AuxImpl(std::int64_t in_channels, std::int64_t num_classes);
  torch::Tensor forward(torch::Tensor x);
  ops::BasicConv2d conv0{nullptr}, conv1{nullptr};
  nn::Linear fc{nullptr};
};
TORCH_MODULE(Inception3Aux);

// torchvision's InceptionOutputs; aux_logits is defined only in training mode with the aux head.
struct InceptionOutputs {
  torch::Tensor logits, aux_logits;
};

class Inception3Impl : public torch::nn::Module, public Chain {
 public:
  // Parameters are left uninitialised; the builder initialises or loads them.
  explicit Inception3Impl(const Inception3Options& options);
  // The logits (what torchvision returns in eval mode, or without the aux head).
  torch::Tensor forward(torch::Tensor x) { return run_steps(std::move(x)); }
  // The logits and, in training mode with the aux head, its logits (torchvision's training output).
  InceptionOutputs forward_outputs(torch::Tensor x);
  std::vector<Step> steps() override;
  // Removes AuxLogits.
  void drop_aux();
  bool aux_logits() const { return !AuxLogits.is_empty(); }
  bool transform_input;
  ops::BasicConv2d Conv2d_1a_3x3{nullptr}, Conv2d_2a_3x3{nullptr}, Conv2d_2b_3x3{nullptr}, Conv2d_3b_1x1{nullptr},
      Conv2d_4a_3x3{nullptr};
  torch::nn::MaxPool2d maxpool1{nullptr}, maxpool2{nullptr};
  InceptionA Mixed_5b{nullptr}, Mixed_5c{nullptr}, Mixed_5d{nullptr};
  InceptionB Mixed_6a{nullptr};
  InceptionC Mixed_6b{nullptr}, Mixed_6c{nullptr}, Mixed_6d{nullptr}, Mixed_6e{nullptr};
  Inception3Aux AuxLogits{nullptr};  // null without the aux head
  InceptionD Mixed_7a{nullptr};
  InceptionE Mixed_7b{nullptr}, Mixed_7c{nullptr};
  torch::nn::AdaptiveAvgPool2d avgpool{nullptr};
  torch::nn::Dropout dropout{nullptr};
  nn::Linear fc{nullptr};
};
TORCH_MODULE(Inception3);

// The weights enums (Inception_V3_Weights) are generated into <modelzoo/weights_enums/classification.h>
// from the records in weights/records/inception.cpp.

Inception3 inception_v3(std::optional<Inception_V3_Weights> weights = {}, Inception3Options options = {});

}  // namespace mz
