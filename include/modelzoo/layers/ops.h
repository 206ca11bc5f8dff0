// Blocks shared by several families (torchvision.ops.misc and models._utils): Conv-Norm-Act,
// Squeeze-and-Excitation, channel rounding and channel shuffle, MLP, and the transformers' attention.
// Written once, here; the families (MobileNet, MNASNet, ShuffleNet, EfficientNet, RegNet, ConvNeXt,
// LRASPP, ViT, Swin, MaxViT, RoBERTa, ...) configure them.
// Parameters live in mz::nn layers (allocated, not initialised: builders init or load them).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <torch/arg.h>
#include <torch/expanding_array.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/container/sequential.h>

#include "modelzoo/layers/nn.h"

namespace mz::ops {

// torchvision.models._utils._make_divisible: rounds `v` to the nearest multiple of `divisor`
// (at least `min_value`, default `divisor`) without going down by more than 10%.
std::int64_t make_divisible(double v, std::int64_t divisor, std::optional<std::int64_t> min_value = {});

// torchvision.models.shufflenetv2.channel_shuffle: (N, g*c, H, W) -> interleave the g groups.
torch::Tensor channel_shuffle(const torch::Tensor& x, std::int64_t groups);

// Parameter-free activations, by the name of their torch.nn class.
enum class Act { ReLU, ReLU6, Hardswish, Hardsigmoid, SiLU, Sigmoid, GELU, Tanh };
// In place (into x, which is returned) where torchvision's module has inplace=True.
torch::Tensor activate(Act act, const torch::Tensor& x, bool inplace = false);
const char* act_name(Act act);  // "ReLU", "Hardswish", ...
// True when `x` is the only handle to its memory (no other tensor or view shares it), so that an in-place op on it
// cannot change a value anything else holds: a chain step's input that mz::feature_extractor also returns is shared.
bool unshared(const torch::Tensor& x);

// act(norm(conv(x)) + residual), the sum and the activation in place in the fresh output: ResNet's blocks
// and Conv2dNormActivation. Once mz::optimize_for_inference has folded the norm (null: none) into a
// convolution that keeps oneDNN's layout, one oneDNN call (Conv2dImpl::fused). residual may be undefined.
torch::Tensor conv_norm_act(nn::Conv2dImpl& conv, nn::BatchNorm2dImpl* norm, const torch::Tensor& x,
                            std::optional<Act> act, const torch::Tensor& residual = {});

// An activation as a module, for places where torchvision has one as a child (a Sequential's
// index, e.g. MobileNetV3's classifier.1 = Hardswish). No parameters, no state-dict entries.
class ActivationImpl : public torch::nn::Module {
 public:
  explicit ActivationImpl(Act act, bool inplace = false) : act(act), inplace(inplace) {}
  torch::Tensor forward(const torch::Tensor& x) { return activate(act, x, inplace); }
  void pretty_print(std::ostream& stream) const override { stream << act_name(act) << "()"; }
  Act act;
  bool inplace;
};
TORCH_MODULE(Activation);

// torchvision's norm_layer argument: a factory (num_features) -> norm module; empty = no norm.
using NormLayer = std::function<torch::nn::AnyModule(std::int64_t num_features)>;
// nn.BatchNorm2d with the given eps and momentum (partial(nn.BatchNorm2d, eps=..., momentum=...)).
NormLayer batch_norm2d(double eps = 1e-5, double momentum = 0.1);
// torchvision.ops.FrozenBatchNorm2d (mz::nn::FrozenBatchNorm2d) with the given eps.
NormLayer frozen_batch_norm2d(double eps = 1e-5);

// A torch::nn::Sequential with a plain forward(Tensor), so that it can be nested inside another
// Sequential (LibTorch's own cannot: its forward is a template), as Python's nn.Sequential can.
// Children are "0", "1", ... like any Sequential, so feature extraction traverses it by index.
class SequentialBlockImpl : public torch::nn::SequentialImpl {
 public:
  using torch::nn::SequentialImpl::SequentialImpl;
  // The Sequential's, but a Linear followed by an Activation runs as one (nn::LinearImpl::activated).
  torch::Tensor forward(torch::Tensor x);
};
TORCH_MODULE(SequentialBlock);

// Arguments of torchvision.ops.misc.Conv2dNormActivation (conv_layer is always Conv2d). Required
// ones go to the constructor, the rest are chained.
struct Conv2dNormActivationOptions {
  Conv2dNormActivationOptions(std::int64_t in_channels, std::int64_t out_channels,
                              torch::ExpandingArray<2> kernel_size = 3)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  TORCH_ARG(std::int64_t, in_channels);
  TORCH_ARG(std::int64_t, out_channels);
  TORCH_ARG(torch::ExpandingArray<2>, kernel_size);
  TORCH_ARG(torch::ExpandingArray<2>, stride) = 1;
  TORCH_ARG(std::optional<torch::ExpandingArray<2>>, padding);  // default (kernel_size - 1) / 2 * dilation
  TORCH_ARG(std::int64_t, groups) = 1;
  TORCH_ARG(NormLayer, norm_layer) = batch_norm2d();          // nullptr: no norm
  TORCH_ARG(std::optional<Act>, activation_layer) = Act::ReLU;  // std::nullopt: no activation
  TORCH_ARG(torch::ExpandingArray<2>, dilation) = 1;
  TORCH_ARG(std::optional<bool>, bias);  // default: bias only without a norm
  TORCH_ARG(bool, inplace) = true;       // the activation overwrites the convolution's (or norm's) output
};

// torchvision.ops.misc.Conv2dNormActivation: a Sequential of "0" Conv2d, then "1" norm and
// "2" activation when present (the activation takes index "1" when there is no norm).
class Conv2dNormActivationImpl : public SequentialBlockImpl {
 public:
  explicit Conv2dNormActivationImpl(Conv2dNormActivationOptions options);
  // The Sequential's, through conv_norm_act while the children are those made here.
  torch::Tensor forward(torch::Tensor x);
  void pretty_print(std::ostream& stream) const override { stream << "Conv2dNormActivation"; }
  Conv2dNormActivationOptions options;
};
TORCH_MODULE(Conv2dNormActivation);

// Arguments of torchvision.ops.misc.SqueezeExcitation (`delta` and `sigma` of the paper).
struct SqueezeExcitationOptions {
  SqueezeExcitationOptions(std::int64_t input_channels, std::int64_t squeeze_channels)
      : input_channels_(input_channels), squeeze_channels_(squeeze_channels) {}
  TORCH_ARG(std::int64_t, input_channels);
  TORCH_ARG(std::int64_t, squeeze_channels);
  TORCH_ARG(Act, activation) = Act::ReLU;
  TORCH_ARG(Act, scale_activation) = Act::Sigmoid;
};

// torchvision.ops.misc.SqueezeExcitation: x * sigma(fc2(delta(fc1(avgpool(x))))), fc1/fc2 being
// 1x1 convolutions with bias (state-dict names fc1.*, fc2.*).
class SqueezeExcitationImpl : public torch::nn::Module {
 public:
  explicit SqueezeExcitationImpl(SqueezeExcitationOptions options);
  torch::Tensor forward(const torch::Tensor& x);
  void pretty_print(std::ostream& stream) const override { stream << "SqueezeExcitation"; }
  SqueezeExcitationOptions options;
  nn::Conv2d fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(SqueezeExcitation);

// The BasicConv2d of GoogLeNet and Inception v3: conv (no bias) -> BatchNorm (eps 0.001) -> ReLU, with torchvision's names `conv` and `bn`.
class BasicConv2dImpl : public torch::nn::Module {
 public:
  explicit BasicConv2dImpl(torch::nn::Conv2dOptions options);
  BasicConv2dImpl(std::int64_t in, std::int64_t out, std::int64_t kernel_size, std::int64_t stride = 1,
                  std::int64_t padding = 0)
      : BasicConv2dImpl(torch::nn::Conv2dOptions(in, out, kernel_size).stride(stride).padding(padding)) {}
  torch::Tensor forward(torch::Tensor x);
  nn::Conv2d conv{nullptr};
  nn::BatchNorm2d bn{nullptr};
};
TORCH_MODULE(BasicConv2d);

// The residual connection of inverted-residual blocks (MobileNetV2/V3, MNASNet; EfficientNet adds
// stochastic depth to its branch and has its own):
// block(x) + x when the block keeps the shape (stride 1, same channels), else block(x). The sum is
// made in block(x)'s fresh output, as torchvision's `result += input`.
inline torch::Tensor residual(bool use_res_connect, const torch::Tensor& x, torch::Tensor out) {
  return use_res_connect ? out.add_(x) : out;
}

// torchvision.ops.StochasticDepth: in training, drops the residual branch per sample ("row") or
// for the whole batch ("batch") with probability p, scaling survivors by 1/(1-p); identity in eval.
torch::Tensor stochastic_depth(const torch::Tensor& x, double p, const std::string& mode, bool training);
class StochasticDepthImpl : public torch::nn::Module {
 public:
  StochasticDepthImpl(double p, std::string mode) : p(p), mode(std::move(mode)) {}
  torch::Tensor forward(const torch::Tensor& x) { return stochastic_depth(x, p, mode, is_training()); }
  void pretty_print(std::ostream& stream) const override {
    stream << "StochasticDepth(p=" << p << ", mode=" << mode << ")";
  }
  double p;
  std::string mode;
};
TORCH_MODULE(StochasticDepth);

// torchvision.ops.misc.Permute: x.permute(dims), as a module (a Sequential child).
class PermuteImpl : public torch::nn::Module {
 public:
  explicit PermuteImpl(std::vector<std::int64_t> dims) : dims(std::move(dims)) {}
  torch::Tensor forward(const torch::Tensor& x) { return x.permute(dims); }
  void pretty_print(std::ostream& stream) const override { stream << "Permute(" << dims << ")"; }
  std::vector<std::int64_t> dims;
};
TORCH_MODULE(Permute);

// torchvision.models.convnext.LayerNorm2d: LayerNorm over the channels of an NCHW tensor
// (state-dict names weight, bias, as nn.LayerNorm).
class LayerNorm2dImpl : public nn::LayerNormImpl {
 public:
  explicit LayerNorm2dImpl(std::int64_t channels, double eps = 1e-6)
      : nn::LayerNormImpl(torch::nn::LayerNormOptions({channels}).eps(eps)) {}
  torch::Tensor forward(const torch::Tensor& x) {
    return nn::LayerNormImpl::forward(x.permute({0, 2, 3, 1})).permute({0, 3, 1, 2});
  }
};
TORCH_MODULE(LayerNorm2d);

// Arguments of torchvision.ops.MLP.
struct MLPOptions {
  MLPOptions(std::int64_t in_channels, std::vector<std::int64_t> hidden_channels)
      : in_channels_(in_channels), hidden_channels_(std::move(hidden_channels)) {}
  TORCH_ARG(std::int64_t, in_channels);
  TORCH_ARG(std::vector<std::int64_t>, hidden_channels);
  TORCH_ARG(NormLayer, norm_layer) = nullptr;  // applied after every hidden Linear but the last
  TORCH_ARG(Act, activation_layer) = Act::ReLU;
  TORCH_ARG(bool, bias) = true;
  TORCH_ARG(double, dropout) = 0.0;
};
// torchvision.ops.MLP: a Sequential of [Linear, norm?, activation, Dropout] per hidden layer but
// the last, then Linear and Dropout; child indices (and state-dict names) as in Python.
class MLPImpl : public SequentialBlockImpl {
 public:
  explicit MLPImpl(MLPOptions options);
  void pretty_print(std::ostream& stream) const override { stream << "MLP"; }
  MLPOptions options;
};
TORCH_MODULE(MLP);

// The attention product of the transformer families (ViT, Swin, MaxViT, RoBERTa): softmax(scale · q @ k^T + bias) @ v
// over the last two dimensions (q, k, v: [..., N, head_dim]; bias, if defined, broadcasts to [..., N, N]). Swin V2
// normalises q and k first. Dropout on the attention weights applies only when training. Where no gradient is
// wanted and no dropout applies, it runs through oneDNN (onednn::attention: the scale applied to the product, the
// result laid out as [..., N, heads, head_dim] so that joining the heads is free); otherwise step by step, with q
// multiplied by scale first.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& bias = {}, double dropout = 0.0, bool training = false,
                        double scale = 1.0);

// torch.nn.MultiheadAttention(embed_dim, num_heads, dropout, batch_first=True) used for self-attention, without
// the attention weights: ViT's encoder blocks, RoBERTa's layers. State dict: in_proj_weight, in_proj_bias,
// out_proj.*. Step by step, with F.multi_head_attention_forward's arithmetic: the input projection, ops::attention
// (scores scaled by 1/sqrt(head_dim), padded keys at -inf, dropout on the attention weights when training), the
// output projection. In inference, the projections and the attention product run through oneDNN: 0.55 of LibTorch's
// fused kernel's time (PyTorch's fast path) on ViT-B at batch 1, which it runs instead only where LibTorch has no
// oneDNN (in inference, without a padding mask).
class SelfAttentionImpl : public torch::nn::Module, public nn::Adaptable, public nn::PackableLinear {
 public:  // Adaptable: in_proj_weight
  // Throws UsageError unless num_heads divides embed_dim.
  SelfAttentionImpl(std::int64_t embed_dim, std::int64_t num_heads, double dropout = 0.0);
  // x [B, T, D]; the keys where key_padding_mask (bool [B, T], true = pad) is true are ignored.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& key_padding_mask = {});
  void reset_parameters();  // MultiheadAttention._reset_parameters, after out_proj's default init
  std::vector<std::pair<torch::Tensor, nn::PackedWeight*>> linear_weights() override {
    return {{in_proj_weight, &in_proj_packed}};
  }
  std::int64_t embed_dim, num_heads;
  double dropout;
  torch::Tensor in_proj_weight, in_proj_bias;
  nn::Linear out_proj{nullptr};
  nn::PackedWeight in_proj_packed;  // set by mz::optimize_for_inference
};
TORCH_MODULE(SelfAttention);

// The relative position index of windowed attention (Swin, MaxViT): (Wh*Ww)^2 indices into a
// (2Wh-1)(2Ww-1) table of biases.
torch::Tensor relative_position_index(std::int64_t wh, std::int64_t ww);

}  // namespace mz::ops
