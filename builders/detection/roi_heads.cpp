// RoIHeads and the box / mask / keypoint heads and predictors (inference), as in torchvision.
#include "modelzoo/detection/roi_heads.h"

#include <torch/nn/init.h>
#include <torch/nn/modules/linear.h>

#include "modelzoo/detection/ops.h"
#include "modelzoo/errors.h"

namespace mz {
namespace {

// kaiming_normal_(fan_out, relu) on weights and zero biases: the init of the conv heads and predictors.
void init_kaiming_fan_out(torch::nn::Module& m) {
  if (architecture_only()) return;
  torch::NoGradGuard no_grad;
  for (auto& p : m.named_parameters()) {
    if (p.key().find("weight") != std::string::npos && p.value().dim() > 1)
      torch::nn::init::kaiming_normal_(p.value(), 0, torch::kFanOut, torch::kReLU);
    else if (p.key().find("bias") != std::string::npos)
      p.value().zero_();
  }
}

// PyTorch's defaults, then kaiming_normal_(fan_out, relu) and zero bias on every convolution: the init of
// the v2 box head and the mask head.
void init_conv_head(torch::nn::Module& m) {
  if (architecture_only()) return;
  nn::reset_parameters(m);
  torch::NoGradGuard no_grad;
  nn::for_each<nn::Conv2dImpl>(m, [](nn::Conv2dImpl& c) {
    torch::nn::init::kaiming_normal_(c.weight, 0, torch::kFanOut, torch::kReLU);
    if (c.bias.defined()) c.bias.zero_();
  });
}

void reset_unless_architecture_only(torch::nn::Module& m) {
  if (!architecture_only()) nn::reset_parameters(m);
}

}  // namespace

TwoMLPHeadImpl::TwoMLPHeadImpl(std::int64_t in_channels, std::int64_t representation_size) {
  fc6 = register_module("fc6", nn::Linear(in_channels, representation_size));
  fc7 = register_module("fc7", nn::Linear(representation_size, representation_size));
  reset_unless_architecture_only(*this);
}

torch::Tensor TwoMLPHeadImpl::forward(const torch::Tensor& x) {
  return torch::relu(fc7->forward(torch::relu(fc6->forward(x.flatten(1)))));
}

FastRCNNConvFCHeadImpl::FastRCNNConvFCHeadImpl(std::array<std::int64_t, 3> input_size,
                                               const std::vector<std::int64_t>& conv_layers,
                                               const std::vector<std::int64_t>& fc_layers, ops::NormLayer norm_layer) {
  std::int64_t previous = input_size[0];
  for (auto c : conv_layers) {
    push_back(ops::Conv2dNormActivation(ops::Conv2dNormActivationOptions(previous, c).norm_layer(norm_layer)));
    previous = c;
  }
  push_back(torch::nn::Flatten());
  previous = previous * input_size[1] * input_size[2];
  for (auto c : fc_layers) {
    push_back(nn::Linear(previous, c));
    push_back(ops::Activation(ops::Act::ReLU));
    previous = c;
  }
  init_conv_head(*this);
}

FastRCNNPredictorImpl::FastRCNNPredictorImpl(std::int64_t in_channels, std::int64_t num_classes) {
  cls_score = register_module("cls_score", nn::Linear(in_channels, num_classes));
  bbox_pred = register_module("bbox_pred", nn::Linear(in_channels, num_classes * 4));
  reset_unless_architecture_only(*this);
}

std::tuple<torch::Tensor, torch::Tensor> FastRCNNPredictorImpl::forward(const torch::Tensor& input) {
  auto x = input;
  if (x.dim() == 4) {
    if (x.size(2) != 1 || x.size(3) != 1)
      throw UsageError("FastRCNNPredictor", "x has the wrong shape, expecting the last two dimensions to be [1,1] instead of " +
                                                c10::str(x.sizes().slice(2)));
    x = x.flatten(1);
  }
  return {cls_score->forward(x), bbox_pred->forward(x)};
}

MaskRCNNHeadsImpl::MaskRCNNHeadsImpl(std::int64_t in_channels, const std::vector<std::int64_t>& layers,
                                     std::int64_t dilation, ops::NormLayer norm_layer) {
  std::int64_t next = in_channels;
  for (auto c : layers) {
    push_back(ops::Conv2dNormActivation(ops::Conv2dNormActivationOptions(next, c, 3)
                                            .padding(torch::ExpandingArray<2>(dilation))
                                            .dilation(dilation)
                                            .norm_layer(norm_layer)));
    next = c;
  }
  init_conv_head(*this);
}

void MaskRCNNHeadsImpl::adapt_checkpoint(IncomingState& state, const std::string& prefix) {
  for (std::size_t i = 0; i < size(); ++i)
    for (const char* type : {"weight", "bias"})
      state.rename(prefix + "mask_fcn" + std::to_string(i + 1) + "." + type,
                   prefix + std::to_string(i) + ".0." + type);
}

MaskRCNNPredictorImpl::MaskRCNNPredictorImpl(std::int64_t in_channels, std::int64_t dim_reduced,
                                             std::int64_t num_classes) {
  conv5_mask = register_module(
      "conv5_mask", torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(in_channels, dim_reduced, 2).stride(2)));
  register_module("relu", ops::Activation(ops::Act::ReLU));
  mask_fcn_logits =
      register_module("mask_fcn_logits", nn::Conv2d(torch::nn::Conv2dOptions(dim_reduced, num_classes, 1)));
  init_kaiming_fan_out(*this);
}

torch::Tensor MaskRCNNPredictorImpl::forward(const torch::Tensor& x) {
  return mask_fcn_logits->forward(torch::relu(conv5_mask->forward(x)));
}

KeypointRCNNHeadsImpl::KeypointRCNNHeadsImpl(std::int64_t in_channels, const std::vector<std::int64_t>& layers) {
  std::int64_t next = in_channels;
  for (auto c : layers) {
    push_back(nn::Conv2d(torch::nn::Conv2dOptions(next, c, 3).stride(1).padding(1)));
    push_back(ops::Activation(ops::Act::ReLU));
    next = c;
  }
  init_kaiming_fan_out(*this);
}

KeypointRCNNPredictorImpl::KeypointRCNNPredictorImpl(std::int64_t in_channels, std::int64_t num_keypoints) {
  kps_score_lowres = register_module(
      "kps_score_lowres",
      torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(in_channels, num_keypoints, 4).stride(2).padding(1)));
  init_kaiming_fan_out(*this);
}

torch::Tensor KeypointRCNNPredictorImpl::forward(const torch::Tensor& input) {
  const auto x = kps_score_lowres->forward(input);
  const double s = static_cast<double>(up_scale);
  // F.interpolate(scale_factor=2.0, recompute_scale_factor=False): floor(in * 2) with the scales passed on.
  return torch::upsample_bilinear2d(x, {x.size(2) * up_scale, x.size(3) * up_scale}, false, s, s);
}

RoIHeadsImpl::RoIHeadsImpl(MultiScaleRoIAlign pool, torch::nn::AnyModule head, FastRCNNPredictor predictor,
                           RoIHeadsOptions o, std::optional<MaskBranch> mask, std::optional<KeypointBranch> keypoint)
    : box_coder(o.bbox_reg_weights), options(o) {
  box_roi_pool = register_module("box_roi_pool", pool);
  box_head = std::move(head);
  register_module("box_head", box_head.ptr());
  box_predictor = register_module("box_predictor", predictor);
  if (mask) {
    if (!mask->roi_pool || mask->head.is_empty() || mask->predictor.is_empty())
      throw UsageError("RoIHeads", "the mask branch needs mask_roi_pool, mask_head and mask_predictor");
    mask_roi_pool = register_module("mask_roi_pool", mask->roi_pool);
    mask_head = mask->head;
    register_module("mask_head", mask_head.ptr());
    mask_predictor = mask->predictor;
    register_module("mask_predictor", mask_predictor.ptr());
  }
  if (keypoint) {
    if (!keypoint->roi_pool || keypoint->head.is_empty() || keypoint->predictor.is_empty())
      throw UsageError("RoIHeads", "the keypoint branch needs keypoint_roi_pool, keypoint_head and keypoint_predictor");
    keypoint_roi_pool = register_module("keypoint_roi_pool", keypoint->roi_pool);
    keypoint_head = keypoint->head;
    register_module("keypoint_head", keypoint_head.ptr());
    keypoint_predictor = keypoint->predictor;
    register_module("keypoint_predictor", keypoint_predictor.ptr());
  }
}

std::tuple<torch::Tensor, torch::Tensor> RoIHeadsImpl::box_logits(const TensorDict& features,
                                                                  const std::vector<torch::Tensor>& proposals,
                                                                  const std::vector<ImageSize>& image_shapes) {
  auto x = box_roi_pool->forward(features, proposals, image_shapes);
  x = box_head.forward<torch::Tensor>(x);
  return box_predictor->forward(x);
}

torch::Tensor RoIHeadsImpl::mask_logits(const TensorDict& features, const std::vector<torch::Tensor>& boxes,
                                        const std::vector<ImageSize>& image_shapes) {
  const auto x = mask_roi_pool->forward(features, boxes, image_shapes);
  return mask_predictor.forward<torch::Tensor>(mask_head.forward<torch::Tensor>(x));
}

torch::Tensor RoIHeadsImpl::keypoint_logits(const TensorDict& features, const std::vector<torch::Tensor>& boxes,
                                            const std::vector<ImageSize>& image_shapes) {
  const auto x = keypoint_roi_pool->forward(features, boxes, image_shapes);
  return keypoint_predictor.forward<torch::Tensor>(keypoint_head.forward<torch::Tensor>(x));
}

TensorDict RoIHeadsImpl::dense(const TensorDict& features, const std::vector<torch::Tensor>& boxes,
                               const std::vector<ImageSize>& image_shapes, std::int64_t few) {
  TensorDict out;
  const auto [class_logits, box_regression] = box_logits(features, boxes, image_shapes);
  out.insert("class_logits", class_logits);
  out.insert("box_regression", box_regression);
  // The mask and keypoint branches on each image's first `few` boxes: their convolutions take a box as an image,
  // and cost as much as the rest of the model for every few dozen.
  std::vector<torch::Tensor> first;
  for (const auto& b : boxes) first.push_back(b.slice(0, 0, few));
  if (has_mask()) out.insert("mask_logits", mask_logits(features, first, image_shapes));
  if (has_keypoint()) out.insert("keypoint_logits", keypoint_logits(features, first, image_shapes));
  return out;
}

std::vector<Detection> RoIHeadsImpl::forward(const TensorDict& features, const std::vector<torch::Tensor>& proposals,
                                             const std::vector<ImageSize>& image_shapes) {
  if (is_training()) throw UsageError("RoIHeads", "training (losses) is not implemented; call eval()");
  const auto [class_logits, box_regression] = box_logits(features, proposals, image_shapes);
  auto result = postprocess_detections(class_logits, box_regression, proposals, image_shapes);
  std::vector<torch::Tensor> boxes, labels;
  for (const auto& r : result) {
    boxes.push_back(r.boxes);
    labels.push_back(r.labels);
  }
  if (has_mask()) {
    const auto probs = maskrcnn_inference(mask_logits(features, boxes, image_shapes), labels);
    for (std::size_t i = 0; i < result.size(); ++i) result[i].masks = probs[i];
  }
  if (has_keypoint()) {
    std::vector<std::int64_t> per_image;
    for (const auto& b : boxes) per_image.push_back(b.size(0));
    const auto maps = keypoint_logits(features, boxes, image_shapes).split_with_sizes(per_image, 0);
    for (std::size_t i = 0; i < result.size(); ++i) {
      auto [kp, scores] = heatmaps_to_keypoints(maps[i], boxes[i]);
      result[i].keypoints = kp;
      result[i].keypoints_scores = scores;
    }
  }
  return result;
}

std::vector<Detection> RoIHeadsImpl::postprocess_detections(const torch::Tensor& class_logits,
                                                            const torch::Tensor& box_regression,
                                                            const std::vector<torch::Tensor>& proposals,
                                                            const std::vector<ImageSize>& image_shapes) const {
  const auto num_classes = class_logits.size(-1);
  std::vector<std::int64_t> per_image;
  for (const auto& p : proposals) per_image.push_back(p.size(0));
  const auto pred_boxes = box_coder.decode(box_regression, proposals);
  const auto pred_scores = torch::softmax(class_logits, -1);
  const auto boxes_list = pred_boxes.split_with_sizes(per_image, 0);
  const auto scores_list = pred_scores.split_with_sizes(per_image, 0);
  std::vector<Detection> out;
  for (std::size_t i = 0; i < proposals.size(); ++i) {
    auto boxes = ops::clip_boxes_to_image(boxes_list[i], {image_shapes.at(i)[0], image_shapes.at(i)[1]});
    auto scores = scores_list[i];
    auto labels = torch::arange(num_classes, class_logits.options().dtype(torch::kInt64)).view({1, -1}).expand_as(scores);
    boxes = boxes.slice(1, 1).reshape({-1, 4});
    scores = scores.slice(1, 1).reshape(-1);
    labels = labels.slice(1, 1).reshape(-1);
    auto keep = torch::where(scores > options.score_thresh)[0];
    boxes = boxes.index({keep});
    scores = scores.index({keep});
    labels = labels.index({keep});
    keep = ops::remove_small_boxes(boxes, 1e-2);
    boxes = boxes.index({keep});
    scores = scores.index({keep});
    labels = labels.index({keep});
    keep = ops::batched_nms(boxes, scores, labels, options.nms_thresh).slice(0, 0, options.detections_per_img);
    Detection d;
    d.boxes = boxes.index({keep});
    d.scores = scores.index({keep});
    d.labels = labels.index({keep});
    out.push_back(d);
  }
  return out;
}

std::vector<torch::Tensor> maskrcnn_inference(const torch::Tensor& x, const std::vector<torch::Tensor>& labels) {
  const auto prob = x.sigmoid();
  std::vector<std::int64_t> per_image;
  for (const auto& l : labels) per_image.push_back(l.size(0));
  const auto all = torch::cat(labels);
  const auto index = torch::arange(x.size(0), all.options());
  return prob.index({index, all}).unsqueeze(1).split_with_sizes(per_image, 0);
}

std::pair<torch::Tensor, torch::Tensor> heatmaps_to_keypoints(const torch::Tensor& maps, const torch::Tensor& rois) {
  const auto offset_x = rois.select(1, 0), offset_y = rois.select(1, 1);
  const auto widths = (rois.select(1, 2) - rois.select(1, 0)).clamp_min(1);
  const auto heights = (rois.select(1, 3) - rois.select(1, 1)).clamp_min(1);
  const auto widths_ceil = widths.ceil(), heights_ceil = heights.ceil();
  const auto k = maps.size(1);
  const auto n = rois.size(0);
  auto xy = torch::zeros({n, 3, k}, maps.options().dtype(torch::kFloat32));
  auto end_scores = torch::zeros({n, k}, maps.options().dtype(torch::kFloat32));
  for (std::int64_t i = 0; i < n; ++i) {
    const auto w_i = static_cast<std::int64_t>(widths_ceil[i].item<double>());
    const auto h_i = static_cast<std::int64_t>(heights_ceil[i].item<double>());
    const auto width_correction = widths[i] / w_i;
    const auto height_correction = heights[i] / h_i;
    const auto roi_map = torch::upsample_bicubic2d(maps[i].unsqueeze(1), {h_i, w_i}, false).select(1, 0);
    const auto w = roi_map.size(2);
    const auto pos = roi_map.reshape({k, -1}).argmax(1);
    const auto x_int = pos % w;
    const auto y_int = torch::div(pos - x_int, w, "floor");
    const auto x = (x_int.to(torch::kFloat32) + 0.5) * width_correction;
    const auto y = (y_int.to(torch::kFloat32) + 0.5) * height_correction;
    xy[i][0] = x + offset_x[i];
    xy[i][1] = y + offset_y[i];
    xy[i][2] = 1;
    end_scores[i] = roi_map.index({torch::arange(k, pos.options()), y_int, x_int});
  }
  return {xy.permute({0, 2, 1}), end_scores};
}

}  // namespace mz
