// Tensors in oneDNN's blocked layout (mkldnn tensors: the outputs of convolutions that mz::optimize_for_inference
// leaves in that layout, see nn::Conv2dImpl::blocked), and the operations on them that LibTorch 1.13 has no kernel
// for, run through ideep (the oneDNN wrapper LibTorch itself is built on).
#pragma once

#include <torch/torch.h>

#include "modelzoo/layers/ops.h"

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

// Lets every other operator take mkldnn tensors: they receive them converted to ordinary tensors, and one that
// would write into an mkldnn tensor is refused (its result would be lost). Registered once, for the MkldnnCPU
// dispatch key, which has no fallback of its own in LibTorch (such an operator fails), so nothing changes for
// code that never meets an mkldnn tensor.
void accept_blocked_inputs();

}  // namespace mz::onednn
