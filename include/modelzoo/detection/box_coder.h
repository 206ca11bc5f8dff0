// The box codings of torchvision's detectors (torchvision/models/detection/_utils.py), with the same
// arithmetic: BoxCoder (R-CNN, RetinaNet, SSD) and BoxLinearCoder (FCOS).
//   mz::BoxCoder coder({10., 10., 5., 5.});
//   torch::Tensor boxes = coder.decode(deltas, {proposals_img0, proposals_img1});   // [K, C, 4]
#pragma once

#include <array>
#include <cmath>
#include <vector>

#include <torch/types.h>

namespace mz {

// Deltas (dx, dy, dw, dh) of boxes relative to reference boxes, scaled by `weights` (wx, wy, ww, wh);
// dw and dh are clamped to bbox_xform_clip before exp() when decoding.
class BoxCoder {
 public:
  explicit BoxCoder(std::array<double, 4> weights, double bbox_xform_clip = std::log(1000.0 / 16));

  // Per image: the deltas that turn proposals[i] into reference_boxes[i].
  std::vector<torch::Tensor> encode(const std::vector<torch::Tensor>& reference_boxes,
                                    const std::vector<torch::Tensor>& proposals) const;
  torch::Tensor encode_single(const torch::Tensor& reference_boxes, const torch::Tensor& proposals) const;
  // rel_codes [K, 4C] (or [K * C, 4]) over the concatenated `boxes` [K, 4] -> [K, C, 4].
  torch::Tensor decode(const torch::Tensor& rel_codes, const std::vector<torch::Tensor>& boxes) const;
  // rel_codes [K, 4C] over boxes [K, 4] -> [K, 4C].
  torch::Tensor decode_single(const torch::Tensor& rel_codes, const torch::Tensor& boxes) const;

  const std::array<double, 4>& weights() const { return weights_; }
  double bbox_xform_clip() const { return bbox_xform_clip_; }

 private:
  std::array<double, 4> weights_;
  double bbox_xform_clip_;
};

// FCOS: distances (left, top, right, bottom) from a reference box's centre to the box's edges,
// divided by the reference box's width/height when normalize_by_size.
class BoxLinearCoder {
 public:
  explicit BoxLinearCoder(bool normalize_by_size = true) : normalize_by_size_(normalize_by_size) {}

  // [..., 4] -> [..., 4]
  torch::Tensor encode(const torch::Tensor& reference_boxes, const torch::Tensor& proposals) const;
  torch::Tensor decode(const torch::Tensor& rel_codes, const torch::Tensor& boxes) const;

  bool normalize_by_size() const { return normalize_by_size_; }

 private:
  bool normalize_by_size_;
};

}  // namespace mz
