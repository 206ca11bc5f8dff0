// Inference-only speed-ups for any model, checked against the model's own outputs:
//   auto model = mz::resnet50(mz::ResNet50_Weights::DEFAULT);
//   model->eval();
//   mz::optimize_for_inference(model, torch::rand({1, 3, 224, 224}));   // then model->forward(x) as before
//
// What it does (each measured on this project's benchmark, scripts/bench_infer.sh):
// - folds every BatchNorm2d (and frozen norm) into the convolution that feeds it, found by tracing
//   one forward pass on the example, so the norm costs nothing (a pair whose folding changes the outputs,
//   because the convolution's output also feeds another branch, is left unfolded);
// - stores convolution weights channels-last, so oneDNN runs the convolutions without layout reorders;
// - reorders convolution weights once into oneDNN's blocked layout (instead of at every call), where
//   that is faster: the example is timed each way (median of 3 after a warm-up) and the fastest kept.
//   On its own it pays off for large dense convolutions (ResNets), not for depthwise ones; the copy
//   costs the convolution weights' memory once more. A prepacked 3x3 convolution of stride 1 runs
//   Winograd's algorithm (oneDNN's F(4x4, 3x3), as accurate here as the direct one) on the inputs
//   where it measured faster at their first call (1.6-1.8x on detection-sized maps);
// - then keeps the convolutions' outputs in oneDNN's blocked layout too (mkldnn tensors), so that ReLU,
//   residual additions, pooling and the next convolution read them without converting them back and forth,
//   as TorchScript's frozen graphs do: mz's activations and squeeze-and-excitation scaling run on them
//   through oneDNN, and Linear turns them back into ordinary tensors. Where a folded norm's convolution is
//   followed by an activation, or a residual sum then an activation (Conv2dNormActivation, ResNet's blocks:
//   ops::conv_norm_act), oneDNN applies them in the convolution's own pass (post-ops), which TorchScript
//   does not. Any other operator with no kernel for them receives them converted (a fallback for the
//   MkldnnCPU key, registered by the first prepacking),
//   one that would write into one is refused, and a few fail. Kept only where the example runs, its
//   outputs come out as ordinary tensors equal to before, and it is faster (ResNets, MobileNetV3; not
//   detectors, whose heads reshape with view). A later input whose forward takes another path
//   through the model could still meet an operator that fails: pass blocked_layout = false for models
//   whose control flow depends on the input's values;
// - runs the linear maps (Linear layers, ViT's and RoBERTa's attention input projections, Swin's window
//   attention projections, T5's query, key and value maps, the masked-LM head's tied projection) through
//   oneDNN's matmul on weights packed once into its layout (nn::PackedWeight), each where that is faster,
//   timed alone on an input of the shape it had in the example (with its weight out of the core's cache, as in
//   the model's forward, where other layers run in between): oneDNN uses every vector instruction the CPU
//   has, where the BLAS LibTorch calls may not (Debian's OpenBLAS 0.3.21 runs its AVX2 kernels on AVX-512
//   AMD CPUs: half the speed). The copies cost the linear weights' memory once more. On CPUs with bfloat16 matrix
//   units (Intel AMX), each map is also timed split into bfloat16 parts (bf16x3: x_hi·w_hi + x_hi·w_lo + x_lo·w_hi,
//   accumulated in float in AMX's tiles by modelzoo's own kernel, amx::Linear), and kept so where faster: on ViT's
//   and ConvNeXt's maps 1.7-2.5x oneDNN's float speed (1.1x with 96 inputs), at about 3e-6 relative error per map
//   instead of float's 3e-7 (the parts take the same memory as a float copy). The split maps stay split only if the
//   example's outputs stay within the tolerance and the whole forward runs faster that way than with them in float.
//   Pass bf16x3 = false for float products throughout. A Linear followed by an activation in a Sequential block
//   (ViT's, Swin's and MaxViT's MLPs, ConvNeXt's blocks) applies it in the matmul's pass (a oneDNN post-op; on a
//   split map, right after it), with or without optimising;
// - turns autograd off for every parameter.
// The model is changed in place and is for eval use only: training it afterwards, or saving its
// state dict as a checkpoint of the original architecture, is wrong. The example's outputs before and
// after must agree within `tolerance` (relative to the largest output magnitude); otherwise the model
// is restored and mz::Error is thrown. For a detector, the outputs compared are its dense ones, before
// NMS (Model::dense; in the general form, pass a function that calls the detector's dense()): which
// boxes NMS keeps can change with the last digit of a score, and on random weights it does.
#pragma once

#include <cstdint>
#include <functional>

#include <torch/nn/module.h>
#include <torch/types.h>

#include "modelzoo/registry.h"
#include "modelzoo/tensor_dict.h"

namespace mz {

struct OptimizeOptions {
  bool fold_norms = true;
  bool channels_last = true;
  bool prepack = true;  // when oneDNN is available and it measures faster on the example (below)
  bool blocked_layout = true;  // with prepack: activations in oneDNN's layout too, where faster (below)
  bool bf16x3 = true;  // with prepack, on CPUs with bfloat16 matrix units: split linear maps, where faster (below)
  double tolerance = 1e-4;
};

struct OptimizeReport {
  std::int64_t folded = 0;          // norms folded into convolutions
  std::int64_t channels_last = 0;   // convolution weights stored channels-last
  std::int64_t prepacked = 0;       // convolutions running on weights reordered once for oneDNN (0 if slower)
  std::int64_t blocked = 0;         // of those, convolutions whose outputs stay in oneDNN's layout (0 if slower)
  std::int64_t packed_linear = 0;   // linear maps running on weights packed for oneDNN's matmul (0 if slower)
  std::int64_t bf16x3_linear = 0;   // of those, maps split into bfloat16 parts for the CPU's matrix units
  double max_relative_error = 0;    // on the example, after against before
};

// The general form: `run_example` runs the model on an example input and returns its outputs.
OptimizeReport optimize_for_inference(torch::nn::Module& model, const std::function<TensorDict()>& run_example,
                                      const OptimizeOptions& options = {});

// A registry model, on example inputs (named as Model::run takes them); compares Model::dense where it exists.
OptimizeReport optimize_for_inference(Model& model, const TensorDict& example_inputs,
                                      const OptimizeOptions& options = {});

// A module holder whose forward takes one tensor (and returns a tensor or a TensorDict).
template <class Holder>
OptimizeReport optimize_for_inference(Holder& model, const torch::Tensor& example, const OptimizeOptions& options = {}) {
  return optimize_for_inference(*model.ptr(), [&] {
    auto out = model->forward(example);
    if constexpr (std::is_same_v<decltype(out), torch::Tensor>) {
      TensorDict d;
      d.insert("output", out);
      return d;
    } else {
      return TensorDict(out);
    }
  }, options);
}

// Makes glibc's malloc keep freed memory for reuse rather than give it back to the kernel: blocks under 32 MiB
// (M_MMAP_THRESHOLD, glibc's maximum) come from the heap, and the heap keeps up to 1 GiB free (M_TRIM_THRESHOLD).
// Each forward then reuses the previous one's pages instead of faulting in fresh zeroed ones: RetinaNet at
// 800 px went from 144k to 31k page faults per forward, and 10-15% faster. Freed memory stays with the
// process. Does nothing and returns false when GLIBC_TUNABLES sets any malloc tunable (the user's choice
// wins) or the C library is not glibc. The mz command calls it at start; keeping_freed_memory() says whether
// it took effect (mz doctor).
bool keep_freed_memory();
bool keeping_freed_memory();

}  // namespace mz
