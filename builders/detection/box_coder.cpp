// torchvision 0.14.1's BoxCoder and BoxLinearCoder (models/detection/_utils.py:75-300), step for step.
#include "modelzoo/detection/box_coder.h"

#include <torch/torch.h>

#include "modelzoo/errors.h"

namespace mz {
namespace {

using torch::indexing::None;
using torch::indexing::Slice;

void check_last_dim(const torch::Tensor& t, int64_t multiple_of, const char* name) {
  if (!t.defined() || t.dim() < 1 || t.size(-1) % multiple_of != 0 || (multiple_of == 4 && t.size(-1) == 0))
    throw UsageError(name, "the last dimension must be a multiple of " + std::to_string(multiple_of) + ", got " +
                               (t.defined() ? c10::str(t.sizes()) : "undefined"));
}

torch::Tensor column(const torch::Tensor& t, int64_t i) { return t.select(-1, i); }

}  // namespace

BoxCoder::BoxCoder(std::array<double, 4> weights, double bbox_xform_clip)
    : weights_(weights), bbox_xform_clip_(bbox_xform_clip) {}

std::vector<torch::Tensor> BoxCoder::encode(const std::vector<torch::Tensor>& reference_boxes,
                                            const std::vector<torch::Tensor>& proposals) const {
  if (reference_boxes.empty() || reference_boxes.size() != proposals.size())
    throw UsageError("proposals", "encode needs one proposal tensor per reference box tensor, got " +
                                      std::to_string(proposals.size()) + " and " +
                                      std::to_string(reference_boxes.size()));
  std::vector<int64_t> per_image;
  for (const auto& b : reference_boxes) per_image.push_back(b.size(0));
  return encode_single(torch::cat(reference_boxes, 0), torch::cat(proposals, 0)).split_with_sizes(per_image, 0);
}

torch::Tensor BoxCoder::encode_single(const torch::Tensor& reference_boxes, const torch::Tensor& proposals) const {
  check_last_dim(reference_boxes, 4, "reference_boxes");
  check_last_dim(proposals, 4, "proposals");
  const torch::Tensor w = torch::tensor({weights_[0], weights_[1], weights_[2], weights_[3]}, reference_boxes.options());
  const auto col = [](const torch::Tensor& t, int64_t i) { return t.select(1, i).unsqueeze(1); };
  const torch::Tensor ex_widths = col(proposals, 2) - col(proposals, 0);
  const torch::Tensor ex_heights = col(proposals, 3) - col(proposals, 1);
  const torch::Tensor ex_ctr_x = col(proposals, 0) + 0.5 * ex_widths;
  const torch::Tensor ex_ctr_y = col(proposals, 1) + 0.5 * ex_heights;
  const torch::Tensor gt_widths = col(reference_boxes, 2) - col(reference_boxes, 0);
  const torch::Tensor gt_heights = col(reference_boxes, 3) - col(reference_boxes, 1);
  const torch::Tensor gt_ctr_x = col(reference_boxes, 0) + 0.5 * gt_widths;
  const torch::Tensor gt_ctr_y = col(reference_boxes, 1) + 0.5 * gt_heights;
  return torch::cat({w[0] * (gt_ctr_x - ex_ctr_x) / ex_widths, w[1] * (gt_ctr_y - ex_ctr_y) / ex_heights,
                     w[2] * torch::log(gt_widths / ex_widths), w[3] * torch::log(gt_heights / ex_heights)},
                    1);
}

torch::Tensor BoxCoder::decode(const torch::Tensor& rel_codes, const std::vector<torch::Tensor>& boxes) const {
  if (boxes.empty()) throw UsageError("boxes", "decode needs at least one box tensor");
  int64_t total = 0;
  for (const auto& b : boxes) total += b.size(0);
  const torch::Tensor concat = boxes.size() == 1 ? boxes[0] : torch::cat(boxes, 0);
  if (total == 0) return decode_single(rel_codes, concat);
  if (rel_codes.numel() % (4 * total) != 0)
    throw UsageError("rel_codes", "expected a multiple of 4 x " + std::to_string(total) + " values, got " +
                                      c10::str(rel_codes.sizes()));
  return decode_single(rel_codes.reshape({total, -1}), concat).reshape({total, -1, 4});
}

torch::Tensor BoxCoder::decode_single(const torch::Tensor& rel_codes, const torch::Tensor& reference) const {
  check_last_dim(rel_codes, 4, "rel_codes");
  check_last_dim(reference, 4, "boxes");
  if (rel_codes.dim() != 2 || reference.dim() != 2 || rel_codes.size(0) != reference.size(0))
    throw UsageError("rel_codes", "expected [K, 4C] codes for [K, 4] boxes, got " + c10::str(rel_codes.sizes()) +
                                      " and " + c10::str(reference.sizes()));
  const torch::Tensor boxes = reference.to(rel_codes.scalar_type());
  const torch::Tensor widths = boxes.select(1, 2) - boxes.select(1, 0);
  const torch::Tensor heights = boxes.select(1, 3) - boxes.select(1, 1);
  const torch::Tensor ctr_x = boxes.select(1, 0) + 0.5 * widths;
  const torch::Tensor ctr_y = boxes.select(1, 1) + 0.5 * heights;

  const auto every4 = [&](int64_t i) { return rel_codes.index({Slice(), Slice(i, None, 4)}); };
  const torch::Tensor dx = every4(0) / weights_[0], dy = every4(1) / weights_[1];
  // Keeps too large values out of exp().
  const torch::Tensor dw = torch::clamp(every4(2) / weights_[2], c10::nullopt, bbox_xform_clip_);
  const torch::Tensor dh = torch::clamp(every4(3) / weights_[3], c10::nullopt, bbox_xform_clip_);

  const torch::Tensor pred_ctr_x = dx * widths.unsqueeze(1) + ctr_x.unsqueeze(1);
  const torch::Tensor pred_ctr_y = dy * heights.unsqueeze(1) + ctr_y.unsqueeze(1);
  const torch::Tensor pred_w = torch::exp(dw) * widths.unsqueeze(1);
  const torch::Tensor pred_h = torch::exp(dh) * heights.unsqueeze(1);
  // Distance from the centre to the box's corners.
  const torch::Tensor half = torch::tensor(0.5, pred_w.options());
  const torch::Tensor c_to_c_h = half * pred_h, c_to_c_w = half * pred_w;
  return torch::stack({pred_ctr_x - c_to_c_w, pred_ctr_y - c_to_c_h, pred_ctr_x + c_to_c_w, pred_ctr_y + c_to_c_h}, 2)
      .flatten(1);
}

torch::Tensor BoxLinearCoder::encode(const torch::Tensor& reference_boxes, const torch::Tensor& proposals) const {
  check_last_dim(reference_boxes, 4, "reference_boxes");
  check_last_dim(proposals, 4, "proposals");
  const torch::Tensor ctr_x = 0.5 * (column(reference_boxes, 0) + column(reference_boxes, 2));
  const torch::Tensor ctr_y = 0.5 * (column(reference_boxes, 1) + column(reference_boxes, 3));
  torch::Tensor targets = torch::stack({ctr_x - column(proposals, 0), ctr_y - column(proposals, 1),
                                        column(proposals, 2) - ctr_x, column(proposals, 3) - ctr_y},
                                       -1);
  if (normalize_by_size_) {
    const torch::Tensor w = column(reference_boxes, 2) - column(reference_boxes, 0);
    const torch::Tensor h = column(reference_boxes, 3) - column(reference_boxes, 1);
    targets = targets / torch::stack({w, h, w, h}, -1);
  }
  return targets;
}

torch::Tensor BoxLinearCoder::decode(const torch::Tensor& rel_codes, const torch::Tensor& reference) const {
  check_last_dim(rel_codes, 4, "rel_codes");
  check_last_dim(reference, 4, "boxes");
  const torch::Tensor boxes = reference.to(rel_codes.scalar_type());
  const torch::Tensor ctr_x = 0.5 * (column(boxes, 0) + column(boxes, 2));
  const torch::Tensor ctr_y = 0.5 * (column(boxes, 1) + column(boxes, 3));
  torch::Tensor codes = rel_codes;
  if (normalize_by_size_) {
    const torch::Tensor w = column(boxes, 2) - column(boxes, 0), h = column(boxes, 3) - column(boxes, 1);
    codes = rel_codes * torch::stack({w, h, w, h}, -1);
  }
  return torch::stack({ctr_x - column(codes, 0), ctr_y - column(codes, 1), ctr_x + column(codes, 2),
                       ctr_y + column(codes, 3)},
                      -1);
}

}  // namespace mz
