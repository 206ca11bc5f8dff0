#include "builders/detection/single_stage.h"

#include <torch/nn/modules/normalization.h>

#include "modelzoo/detection/ops.h"

namespace mz::detail {

void freeze_before(const torch::nn::Sequential& layers, std::size_t freeze_before) {
  for (std::size_t i = 0; i < freeze_before && i < layers->size(); ++i)
    for (auto& p : layers->ptr(i)->parameters()) p.set_requires_grad(false);
}

}  // namespace mz::detail

namespace mz::detail {

std::vector<std::int64_t> anchors_per_level(const std::vector<torch::Tensor>& features, std::int64_t total) {
  std::vector<std::int64_t> hw;
  std::int64_t sum = 0;
  for (const auto& f : features) {
    hw.push_back(f.size(2) * f.size(3));
    sum += hw.back();
  }
  const std::int64_t a = total / sum;
  for (auto& v : hw) v *= a;
  return hw;
}

Detection dense_detections(const std::vector<torch::Tensor>& scores, const std::vector<torch::Tensor>& regression,
                           const std::vector<torch::Tensor>& anchors,
                           const std::function<torch::Tensor(const torch::Tensor&, const torch::Tensor&)>& decode,
                           const ImageSize& image_size, double score_thresh, std::int64_t topk, double nms_thresh,
                           std::int64_t detections_per_img) {
  std::vector<torch::Tensor> all_boxes, all_scores, all_labels;
  for (std::size_t level = 0; level < scores.size(); ++level) {
    const std::int64_t num_classes = scores[level].size(-1);
    auto flat = scores[level].flatten();
    auto keep = flat > score_thresh;
    auto kept = flat.index({keep});
    auto idxs = torch::where(keep)[0];
    auto top = kept.topk(std::min(topk, idxs.size(0)));
    idxs = idxs.index({std::get<1>(top)});
    auto anchor_idxs = torch::div(idxs, num_classes, "floor");
    auto boxes = decode(regression[level].index({anchor_idxs}), anchors[level].index({anchor_idxs}));
    all_boxes.push_back(ops::clip_boxes_to_image(boxes, {image_size[0], image_size[1]}));
    all_scores.push_back(std::get<0>(top));
    all_labels.push_back(idxs % num_classes);
  }
  auto boxes = torch::cat(all_boxes), s = torch::cat(all_scores), labels = torch::cat(all_labels);
  auto keep = ops::batched_nms(boxes, s, labels, nms_thresh).slice(0, 0, detections_per_img);
  Detection d;
  d.boxes = boxes.index({keep});
  d.scores = s.index({keep});
  d.labels = labels.index({keep});
  return d;
}

ResNet resnet50_with_norm(const std::optional<ResNet50_Weights>& weights, bool is_trained) {
  ResNetOptions o;
  o.norm_layer = is_trained ? ops::frozen_batch_norm2d() : ops::batch_norm2d();
  return resnet50(weights, o);
}

std::vector<ImageSize> image_sizes(const std::vector<torch::Tensor>& images) {
  std::vector<ImageSize> sizes;
  for (const auto& image : images) sizes.push_back({image.size(-2), image.size(-1)});
  return sizes;
}

}  // namespace mz::detail

namespace mz::detail {

torch::Tensor flatten_levels(const std::vector<torch::Tensor>& outputs, std::int64_t k) {
  std::vector<torch::Tensor> all;
  for (const auto& r : outputs) {
    const std::int64_t n = r.size(0), h = r.size(2), w = r.size(3);
    all.push_back(r.view({n, -1, k, h, w}).permute({0, 3, 4, 1, 2}).reshape({n, -1, k}));
  }
  return torch::cat(all, 1);
}

void normal_init(torch::nn::Module& module, double std, double bias) {
  if (architecture_only()) return;
  torch::NoGradGuard no_grad;
  nn::reset_parameters(module);
  nn::for_each<nn::Conv2dImpl>(module, [std, bias](nn::Conv2dImpl& c) {
    c.weight.normal_(0.0, std);
    if (c.bias.defined()) c.bias.fill_(bias);
  });
}

ops::NormLayer group_norm32() {
  return [](std::int64_t channels) {
    return torch::nn::AnyModule(torch::nn::GroupNorm(torch::nn::GroupNormOptions(32, channels)));
  };
}

}  // namespace mz::detail
