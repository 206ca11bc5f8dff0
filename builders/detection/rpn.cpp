// RPNHead and RegionProposalNetwork (inference), as in torchvision.models.detection.rpn.
#include "modelzoo/detection/rpn.h"

#include <torch/nn/init.h>

#include "modelzoo/detection/ops.h"
#include "modelzoo/errors.h"
#include "modelzoo/layers/ops.h"

namespace mz {

RPNHeadImpl::RPNHeadImpl(std::int64_t in_channels, std::int64_t num_anchors_, std::int64_t conv_depth)
    : num_anchors(num_anchors_) {
  conv = torch::nn::Sequential();
  for (std::int64_t i = 0; i < conv_depth; ++i)
    conv->push_back(ops::Conv2dNormActivation(ops::Conv2dNormActivationOptions(in_channels, in_channels, 3).norm_layer(nullptr)));
  register_module("conv", conv);
  cls_logits = register_module("cls_logits", nn::Conv2d(torch::nn::Conv2dOptions(in_channels, num_anchors, 1)));
  bbox_pred = register_module("bbox_pred", nn::Conv2d(torch::nn::Conv2dOptions(in_channels, num_anchors * 4, 1)));
  if (architecture_only()) return;
  torch::NoGradGuard no_grad;
  nn::for_each<nn::Conv2dImpl>(*this, [](nn::Conv2dImpl& c) {
    c.weight.normal_(0, 0.01);
    if (c.bias.defined()) c.bias.zero_();
  });
}

std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> RPNHeadImpl::forward(
    const std::vector<torch::Tensor>& x) {
  std::vector<torch::Tensor> logits, bbox_reg;
  for (const auto& feature : x) {
    auto t = conv->forward(feature);
    logits.push_back(cls_logits->forward(t));
    bbox_reg.push_back(bbox_pred->forward(t));
  }
  return {logits, bbox_reg};
}

void RPNHeadImpl::adapt_checkpoint(IncomingState& state, const std::string& prefix) {
  for (const char* type : {"weight", "bias"}) state.rename(prefix + "conv." + type, prefix + "conv.0.0." + type);
}

namespace {
torch::Tensor permute_and_flatten(const torch::Tensor& layer, std::int64_t n, std::int64_t c, std::int64_t h,
                                  std::int64_t w) {
  return layer.view({n, -1, c, h, w}).permute({0, 3, 4, 1, 2}).reshape({n, -1, c});
}
}  // namespace

std::pair<torch::Tensor, torch::Tensor> concat_box_prediction_layers(const std::vector<torch::Tensor>& box_cls,
                                                                     const std::vector<torch::Tensor>& box_regression) {
  std::vector<torch::Tensor> cls, reg;
  for (std::size_t i = 0; i < box_cls.size(); ++i) {
    const auto n = box_cls[i].size(0), axc = box_cls[i].size(1), h = box_cls[i].size(2), w = box_cls[i].size(3);
    const auto a = box_regression[i].size(1) / 4;
    cls.push_back(permute_and_flatten(box_cls[i], n, axc / a, h, w));
    reg.push_back(permute_and_flatten(box_regression[i], n, 4, h, w));
  }
  return {torch::cat(cls, 1).flatten(0, -2), torch::cat(reg, 1).reshape({-1, 4})};
}

RegionProposalNetworkImpl::RegionProposalNetworkImpl(AnchorGenerator anchors, RPNHead h, RPNOptions o)
    : options(o) {
  const auto per_location = anchors->num_anchors_per_location();
  for (auto a : per_location)
    if (a != h->num_anchors)
      throw UsageError("RegionProposalNetwork", "the anchor generator gives " + std::to_string(a) +
                                                    " anchors per location but the RPN head predicts " +
                                                    std::to_string(h->num_anchors));
  anchor_generator = register_module("anchor_generator", anchors);
  head = register_module("head", h);
}

std::int64_t RegionProposalNetworkImpl::pre_nms_top_n() const {
  return is_training() ? options.pre_nms_top_n_train : options.pre_nms_top_n_test;
}
std::int64_t RegionProposalNetworkImpl::post_nms_top_n() const {
  return is_training() ? options.post_nms_top_n_train : options.post_nms_top_n_test;
}

std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> RegionProposalNetworkImpl::forward(
    const ImageList& images, const TensorDict& features) {
  if (is_training()) throw UsageError("RegionProposalNetwork", "training (losses) is not implemented; call eval()");
  const std::vector<torch::Tensor> maps = features.values();
  auto [objectness, deltas] = head->forward(maps);
  const auto anchors = anchor_generator->forward(images, maps);
  const auto num_images = static_cast<std::int64_t>(anchors.size());
  std::vector<std::int64_t> num_anchors_per_level;
  for (const auto& o : objectness) num_anchors_per_level.push_back(o.size(1) * o.size(2) * o.size(3));
  auto [flat_objectness, flat_deltas] = concat_box_prediction_layers(objectness, deltas);
  auto proposals = box_coder.decode(flat_deltas.detach(), anchors).view({num_images, -1, 4});
  return filter_proposals(proposals, flat_objectness, images.image_sizes, num_anchors_per_level);
}

std::pair<std::vector<torch::Tensor>, std::vector<torch::Tensor>> RegionProposalNetworkImpl::filter_proposals(
    const torch::Tensor& proposals_, const torch::Tensor& objectness_, const std::vector<ImageSize>& image_shapes,
    const std::vector<std::int64_t>& num_anchors_per_level) const {
  const auto num_images = proposals_.size(0);
  auto objectness = objectness_.detach().reshape({num_images, -1});
  std::vector<torch::Tensor> levels_list, top_n;
  std::int64_t offset = 0;
  const auto pieces = objectness.split_with_sizes(num_anchors_per_level, 1);
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    const auto n = num_anchors_per_level[i];
    levels_list.push_back(torch::full({n}, static_cast<std::int64_t>(i), objectness.options().dtype(torch::kInt64)));
    const auto k = std::min(pre_nms_top_n(), pieces[i].size(1));
    top_n.push_back(std::get<1>(pieces[i].topk(k, 1)) + offset);
    offset += n;
  }
  const auto top_n_idx = torch::cat(top_n, 1);
  const auto levels = torch::cat(levels_list, 0).reshape({1, -1}).expand_as(objectness);
  const auto batch_idx = torch::arange(num_images, top_n_idx.options()).unsqueeze(1);
  objectness = objectness.index({batch_idx, top_n_idx});
  const auto lvls = levels.index({batch_idx, top_n_idx});
  const auto proposals = proposals_.index({batch_idx, top_n_idx});
  const auto prob = torch::sigmoid(objectness);
  std::vector<torch::Tensor> final_boxes, final_scores;
  for (std::int64_t i = 0; i < num_images; ++i) {
    auto boxes = ops::clip_boxes_to_image(proposals[i], {image_shapes.at(i)[0], image_shapes.at(i)[1]});
    auto scores = prob[i];
    auto lvl = lvls[i];
    auto keep = ops::remove_small_boxes(boxes, min_size);
    boxes = boxes.index({keep});
    scores = scores.index({keep});
    lvl = lvl.index({keep});
    keep = torch::where(scores >= options.score_thresh)[0];
    boxes = boxes.index({keep});
    scores = scores.index({keep});
    lvl = lvl.index({keep});
    keep = ops::batched_nms(boxes, scores, lvl, options.nms_thresh).slice(0, 0, post_nms_top_n());
    final_boxes.push_back(boxes.index({keep}));
    final_scores.push_back(scores.index({keep}));
  }
  return {final_boxes, final_scores};
}

}  // namespace mz
