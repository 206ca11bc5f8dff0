// Linear maps on Intel AMX's bfloat16 matrix units at close to float's accuracy (bf16x3), for
// mz::optimize_for_inference (nn::PackedWeight): each float operand is split into bfloat16 parts, a high one and the
// rounding remainder, and x·w is x_hi·w_hi + x_hi·w_lo + x_lo·w_hi, the three products accumulated in float in the
// tiles. What it drops (x_lo·w_lo, and the remainders' own rounding) is about 2^-17 of each term: about 3e-6 relative
// per map against float64, where float gives 3e-7.
//
// One kernel does the three products per 32x32 block of the output, with the block's accumulators in four tiles, so
// the output is written once, and walks all the rows for each 32 columns of the weight while those stay in the
// core's cache. oneDNN 2.6's matmul, run three times, rereads the weight from memory for each 32 rows: on a 2-core
// AMX Xeon, with weights out of the cache as in a model's forward, this kernel took 0.4-0.7 of that time on ViT-B's
// and ConvNeXt's shapes, and 0.4-0.6 of oneDNN's float matmul (0.9 of both with ConvNeXt's 96 inputs).
//
// With many inputs (over 1,024) and rows, the rows' and the columns' parts would not fit the cache together: the
// inputs are then taken in blocks of up to 1,024, each chunk of rows split block by block as the kernel comes to
// it (no split of the whole x is written), and the sums kept in float between blocks. Faster R-CNN's box head
// (1000 x 12,544 -> 1024) takes 73-78 ms there, against 160 ms in float at 1 thread; unblocked it took 157.
//
// The matrix units are a core's: where the 2 vCPUs are one core's two hyper-threads (that Xeon's VM), the kernel at 2
// threads takes as long as at 1, where float's matmul takes half, so its lead is smaller at 2 threads (0.75-0.9 of
// float's time with the weights in the cache, against 0.4-0.5 at 1 thread). optimize_for_inference times both.
#pragma once

#include <cstdint>
#include <optional>

#include <torch/torch.h>

#include "modelzoo/layers/ops.h"

namespace mz::amx {

// Whether the CPU has AMX's bfloat16 units and Linux lets this process use them (asked once, as oneDNN does).
bool available();

// The split of a contiguous float matrix x [rows, in]: [2, rows, in] bfloat16, x_hi = bf16(x) then
// x_lo = bf16(x - x_hi), rounded to nearest even. With AVX-512's bfloat16 conversion where the CPU has it (which
// flushes denormal floats, below 1.2e-38, to zero), unless `portable`.
torch::Tensor split_bf16x3(const torch::Tensor& x, bool portable = false);

// x @ weight^T + bias as above, on a weight split and laid out once for the tiles (it takes the float weight's
// memory). Only where available(). Safe to call from several threads at once.
class Linear {
 public:
  // weight: [out_features, in_features] float, copied.
  explicit Linear(const torch::Tensor& weight);
  // x: float, any leading shape, last dimension in_features; bias: [out_features] float or undefined; act applied to
  // each output block as the kernel writes it (ReLU; GELU, whose erf is Abramowitz and Stegun's, to 1.5e-7) or to
  // the whole output after (the others).
  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& bias,
                           std::optional<ops::Act> act = std::nullopt) const;

 private:
  std::int64_t out_features_, in_features_;
  torch::Tensor tiles_;  // [2 (hi, lo), out / 16, in / 32, 16, 16, 2] bfloat16, both rounded up, zero-padded
};

}  // namespace mz::amx
