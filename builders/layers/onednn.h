// Tensors in oneDNN's blocked layout (mkldnn tensors: the outputs of convolutions that mz::optimize_for_inference
// leaves in that layout, see nn::Conv2dImpl::blocked), and the operations on them that LibTorch 1.13 has no kernel
// for, run through ideep (the oneDNN wrapper LibTorch itself is built on).
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include <torch/torch.h>

#include "modelzoo/layers/ops.h"

namespace ideep {
class tensor;
}

namespace mz::onednn {

// x as an ordinary tensor / as an mkldnn tensor (x itself if it already is one). Also for inference tensors used
// outside InferenceMode, which LibTorch's own conversions assert against.
torch::Tensor dense(const torch::Tensor& x);
torch::Tensor blocked(const torch::Tensor& x);

// act(x) for a float mkldnn x, as an mkldnn tensor (x itself, overwritten, if inplace); an undefined tensor for
// Hardsigmoid, which oneDNN 2.6 lacks.
torch::Tensor activate(ops::Act act, const torch::Tensor& x, bool inplace);

// a * b for a float mkldnn a and a float b (either kind) whose size-1 dimensions broadcast to a's shape.
torch::Tensor multiply(const torch::Tensor& a, const torch::Tensor& b);

// A convolution on a weight reordered once into oneDNN's layout. For inputs in oneDNN's layout, its call
// operator fuses an activation and a residual sum in as post-ops, and makes the oneDNN primitive once per
// input layout (and kind of fusion), not at every call as torch::mkldnn_convolution does (it keeps the last
// 32). Safe to call from several threads at once.
class Convolution {
 public:
  // weight: [O, I / groups, kH, kW] float, copied.
  Convolution(const torch::Tensor& weight, const torch::nn::Conv2dOptions& options);
  ~Convolution();
  // act(conv(x) + bias + residual) as an mkldnn tensor, for a float 4-d x of either kind. bias ([O] float) and
  // residual (of the output's shape, either kind) may be undefined, act empty. An undefined tensor when oneDNN
  // cannot fuse them (Hardsigmoid).
  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& bias, std::optional<ops::Act> act = {},
                           const torch::Tensor& residual = {}) const;
  // conv(x) + bias for an ordinary float 4-d x, as an ordinary tensor: channels-last if x or the weight given to the
  // constructor was, contiguous otherwise.
  torch::Tensor dense(const torch::Tensor& x, const torch::Tensor& bias) const;

 private:
  struct Plan;
  // The plan for input x (an ideep view of either kind); made on first use, with Winograd's algorithm where it
  // measures faster (3x3 convolutions of stride 1).
  std::shared_ptr<const Plan> plan(const ideep::tensor& x, bool bias, std::optional<ops::Act> act,
                                   const torch::Tensor& residual) const;
  void check(const torch::Tensor& x, const torch::Tensor& bias) const;
  torch::Tensor weight_;  // reordered (an mkldnn tensor)
  std::int64_t out_channels_;
  std::vector<std::int64_t> kernel_, stride_, padding_, dilation_;
  std::int64_t groups_;
  bool channels_last_;  // the weight given was
  mutable std::mutex mutex_;
  mutable std::vector<std::shared_ptr<const Plan>> plans_;  // the most recent last
};

// A linear map, x @ weight^T + bias, on a weight reordered once into the layout oneDNN's matmul wants. For float
// inputs of any leading shape in the ordinary layout, with the result in the ordinary layout. oneDNN's matmul uses
// every vector instruction the CPU has, where a BLAS may not: Debian's OpenBLAS 0.3.21 runs its AVX2 (Haswell)
// kernels on AVX-512 AMD CPUs, at half the speed. It makes the oneDNN primitive once per number of rows (it keeps the
// last 32). Safe to call from several threads at once. (amx::Linear is the bfloat16 split for AMX CPUs.)
class Linear {
 public:
  // weight: [out_features, in_features] float. Not copied if contiguous: the first call reorders it, so it must not
  // change before then (nn::PackedWeight makes sure: it calls only while the weight's version is the one packed).
  explicit Linear(const torch::Tensor& weight);
  ~Linear();
  // bias: [out_features] float, or undefined; act applied to the result, in oneDNN's pass where it has it.
  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& bias,
                           std::optional<ops::Act> act = std::nullopt) const;

 private:
  struct Plan;
  std::shared_ptr<const Plan> plan(std::int64_t rows, bool bias, std::optional<ops::Act> act) const;
  std::int64_t out_features_, in_features_;
  mutable std::mutex mutex_;
  mutable std::vector<std::shared_ptr<const Plan>> plans_;  // the most recent last
  mutable torch::Tensor weight_;  // until the first plan holds it
};

// The output of a packed linear map (Linear here, amx::Linear) for x, empty, once the arguments are checked: x an
// ordinary float tensor whose last dimension is in_features, bias [out_features] float or undefined (`who` names the
// map in the error).
torch::Tensor packed_linear_output(const char* who, const torch::Tensor& x, const torch::Tensor& bias,
                                   std::int64_t in_features, std::int64_t out_features);

// act(x @ weight^T + bias) through oneDNN's matmul on the weight as it is, for inference: x a contiguous float tensor
// of any leading shape, weight a contiguous [out, in] float matrix, bias [out] float or undefined, act (in the
// matmul's pass where oneDNN has it) or none; no autograd. oneDNN keeps the primitive in its own cache (looked up in
// about 2 us). On an AVX-512 Xeon it took 0.75-0.95 of OpenBLAS's time on ConvNeXt's, ViT's and T5's shapes (1 and 2
// threads), about half on single rows, the same on the largest.
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                     std::optional<ops::Act> act = std::nullopt);

// Whether linear(x, weight, bias) takes these tensors (and oneDNN is there): otherwise use torch::linear.
bool linear_takes(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);

// softmax(scale · q @ k^T + bias) @ v for inference (no autograd), the attention product of ops::attention: q
// [..., N, D], k [..., M, D] and v [..., M, Dv] float tensors with the same leading dimensions, in any strides (views
// into a projection's output, say); bias undefined or a float tensor that broadcasts to [..., N, M]. Both products
// run through oneDNN's matmul on the tensors' own strides (no copies; scale in the first one's pass) and the softmax
// through oneDNN's, in place. The result has q's shape [..., H, N, Dv] with its memory laid out as [..., N, H, Dv],
// so that joining the heads (transpose(-3, -2), then reshape) is free. An undefined tensor where oneDNN has only its
// reference kernel for these strides: use the steps of ops::attention then. On a 2-core AVX-512 Xeon, on ViT-B's
// shapes: half of LibTorch's time at batch 1, 0.37 of it at batch 8.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& bias, double scale);

// Whether attention(q, k, v, bias, scale) takes these tensors (and oneDNN is there): otherwise use the steps.
bool attention_takes(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& bias);

// Lets every other operator take mkldnn tensors: they receive them converted to ordinary tensors, and one that
// would write into an mkldnn tensor is refused (its result would be lost). Registered once, for the MkldnnCPU
// dispatch key, which has no fallback of its own in LibTorch (such an operator fails), so nothing changes for
// code that never meets an mkldnn tensor.
void accept_blocked_inputs();

}  // namespace mz::onednn
