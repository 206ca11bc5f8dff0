// The detection operators of torchvision.ops that inference needs, with torchvision 0.14.1's exact
// arithmetic (nms and roi_align give the same bits as torchvision's CPU kernels, ties included):
//   auto keep = mz::ops::batched_nms(boxes, scores, labels, 0.5);
//   auto pooled = mz::ops::roi_align(features, {boxes_img0, boxes_img1}, {7, 7}, 0.25, 2);
// Boxes are (x1, y1, x2, y2) float tensors [N, 4]. Malformed arguments throw mz::UsageError naming the
// argument.
#pragma once

#include <array>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

namespace mz::ops {

// Greedy non-maximum suppression: indices (int64) of the kept boxes, by decreasing score; a box is
// dropped when its IoU with a kept, higher-scoring box is > iou_threshold.
torch::Tensor nms(const torch::Tensor& boxes, const torch::Tensor& scores, double iou_threshold);

// nms within each category of `idxs` ([N] integers), as torchvision.ops.batched_nms: on CPU, more than
// 4000 box coordinates (boxes.numel() > 4000) take the per-category path, otherwise the coordinate
// offset path. Both are exposed because their tie orders can differ.
torch::Tensor batched_nms(const torch::Tensor& boxes, const torch::Tensor& scores, const torch::Tensor& idxs,
                          double iou_threshold);
torch::Tensor batched_nms_coordinate_trick(const torch::Tensor& boxes, const torch::Tensor& scores,
                                           const torch::Tensor& idxs, double iou_threshold);
torch::Tensor batched_nms_vanilla(const torch::Tensor& boxes, const torch::Tensor& scores,
                                  const torch::Tensor& idxs, double iou_threshold);

// RoIAlign of `input` [N, C, H, W] over `rois` [K, 5] (batch index, x1, y1, x2, y2) or over one box
// tensor [K_i, 4] per image: [K, C, output_size[0], output_size[1]]. sampling_ratio <= 0 samples
// ceil(roi size / output size) points per bin; aligned shifts boxes by -0.5 pixel.
torch::Tensor roi_align(const torch::Tensor& input, const torch::Tensor& rois, std::array<int64_t, 2> output_size,
                        double spatial_scale = 1.0, int64_t sampling_ratio = -1, bool aligned = false);
torch::Tensor roi_align(const torch::Tensor& input, const std::vector<torch::Tensor>& boxes,
                        std::array<int64_t, 2> output_size, double spatial_scale = 1.0, int64_t sampling_ratio = -1,
                        bool aligned = false);
// [K, 5] rois from one [K_i, 4] box tensor per image (the first column is the image's index).
torch::Tensor convert_boxes_to_roi_format(const std::vector<torch::Tensor>& boxes);

// (x2 - x1) * (y2 - y1), in float32/float64 (int32/int64 for integer boxes).
torch::Tensor box_area(const torch::Tensor& boxes);
// [N, M] intersection over union of every pair.
torch::Tensor box_iou(const torch::Tensor& boxes1, const torch::Tensor& boxes2);
// Boxes [..., 4] clamped to an image of `size` = {height, width}.
torch::Tensor clip_boxes_to_image(const torch::Tensor& boxes, std::pair<int64_t, int64_t> size);
// Indices of the boxes whose width and height are both >= min_size.
torch::Tensor remove_small_boxes(const torch::Tensor& boxes, double min_size);
// Between "xyxy", "xywh" and "cxcywh".
torch::Tensor box_convert(const torch::Tensor& boxes, const std::string& in_fmt, const std::string& out_fmt);

}  // namespace mz::ops
