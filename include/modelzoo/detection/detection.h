// What every detector shares at its edges: the per-image result, and the conversions between named
// tensors (mz::Model::run, `mz forward`) and a detector's list of images and list of detections.
#pragma once

#include <vector>

#include <torch/types.h>

#include "modelzoo/tensor_dict.h"

namespace mz {

// One image's detections, as torchvision's detectors return them in eval mode. `masks` ([N, 1, H, W]
// probabilities), `keypoints` ([N, K, 3]) and `keypoints_scores` ([N, K]) are undefined tensors for
// models that do not predict them.
struct Detection {
  torch::Tensor boxes;   // [N, 4] float, (x1, y1, x2, y2) in the input image's pixels
  torch::Tensor labels;  // [N] int64
  torch::Tensor scores;  // [N] float
  torch::Tensor masks;
  torch::Tensor keypoints;
  torch::Tensor keypoints_scores;
};

// The images of named inputs: "input" [N, 3, H, W] (N images of one size), or "input.0", "input.1", ...
// ([3, H_i, W_i] each; consecutive from 0). Throws mz::UsageError naming the tensor for an image that
// is not a 3 x H x W floating-point tensor, for an empty list, or for both spellings at once.
std::vector<torch::Tensor> images_from_inputs(const TensorDict& inputs);

// Named outputs: "boxes.<i>", "labels.<i>", "scores.<i>", and "masks.<i>", "keypoints.<i>",
// "keypoints_scores.<i>" where defined, image by image.
TensorDict detections_to_dict(const std::vector<Detection>& detections);

}  // namespace mz
