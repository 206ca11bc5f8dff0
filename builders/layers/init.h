// Initialisation helpers shared by the builders' own layers (not public API).
#pragma once

#include <torch/types.h>

namespace mz::nn::init {

// PyTorch's default for conv and linear layers: weight kaiming_uniform_(a=sqrt(5)), bias U(-1/sqrt(fan_in), ..).
void reset_affine(torch::Tensor& weight, torch::Tensor& bias);

}  // namespace mz::nn::init
