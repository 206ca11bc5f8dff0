// SSD, as in torchvision.models.detection.ssd and anchor_utils.DefaultBoxGenerator.
#include "modelzoo/detection/ssd.h"

#include <cmath>

#include <torch/nn/functional/normalization.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/pooling.h>

#include "builders/detection/single_stage.h"
#include "modelzoo/detection/box_coder.h"
#include "modelzoo/detection/ops.h"
#include "registry/register.h"

namespace mz {

DefaultBoxGeneratorImpl::DefaultBoxGeneratorImpl(std::vector<std::vector<std::int64_t>> aspect_ratios_,
                                                 double min_ratio, double max_ratio, std::vector<double> scales_,
                                                 std::vector<std::int64_t> steps_, bool clip_)
    : aspect_ratios(std::move(aspect_ratios_)), scales(std::move(scales_)), steps(std::move(steps_)), clip(clip_) {
  const std::size_t n = aspect_ratios.size();
  if (n == 0) throw UsageError("DefaultBoxGenerator", "aspect_ratios must name at least one level");
  if (!steps.empty() && steps.size() != n)
    throw UsageError("DefaultBoxGenerator", "aspect_ratios and steps should have the same length");
  if (scales.empty()) {
    if (n > 1) {
      for (std::size_t k = 0; k < n; ++k)
        scales.push_back(min_ratio + (max_ratio - min_ratio) * static_cast<double>(k) / (static_cast<double>(n) - 1.0));
      scales.push_back(1.0);
    } else {
      scales = {min_ratio, max_ratio};
    }
  }
  if (scales.size() < n + 1)
    throw UsageError("DefaultBoxGenerator", "scales needs one entry more than aspect_ratios has levels");
  for (std::size_t k = 0; k < n; ++k) {
    const double s_k = scales[k];
    const double s_prime_k = std::sqrt(scales[k] * scales[k + 1]);
    std::vector<float> wh = {static_cast<float>(s_k), static_cast<float>(s_k), static_cast<float>(s_prime_k),
                             static_cast<float>(s_prime_k)};
    for (std::int64_t ar : aspect_ratios[k]) {
      const double sq_ar = std::sqrt(static_cast<double>(ar));
      const auto w = static_cast<float>(s_k * sq_ar), h = static_cast<float>(s_k / sq_ar);
      wh.insert(wh.end(), {w, h, h, w});
    }
    wh_pairs_.push_back(torch::tensor(wh).view({-1, 2}));
  }
}

std::vector<std::int64_t> DefaultBoxGeneratorImpl::num_anchors_per_location() const {
  std::vector<std::int64_t> out;
  for (const auto& r : aspect_ratios) out.push_back(2 + 2 * static_cast<std::int64_t>(r.size()));
  return out;
}

std::vector<torch::Tensor> DefaultBoxGeneratorImpl::forward(const ImageList& images,
                                                            const std::vector<torch::Tensor>& feature_maps) {
  if (feature_maps.size() != aspect_ratios.size())
    throw UsageError("DefaultBoxGenerator", "got " + std::to_string(feature_maps.size()) + " feature maps for " +
                                                std::to_string(aspect_ratios.size()) + " levels of aspect ratios");
  const std::int64_t image_h = images.tensors.size(-2), image_w = images.tensors.size(-1);
  const auto dtype = feature_maps[0].scalar_type();
  std::vector<torch::Tensor> levels;
  for (std::size_t k = 0; k < feature_maps.size(); ++k) {
    const std::int64_t fh = feature_maps[k].size(-2), fw = feature_maps[k].size(-1);
    // Python: image_size / step is a double; (arange + 0.5) / double is computed in float32.
    const double x_f_k = steps.empty() ? static_cast<double>(fw) : static_cast<double>(image_w) / steps[k];
    const double y_f_k = steps.empty() ? static_cast<double>(fh) : static_cast<double>(image_h) / steps[k];
    auto shifts_x = ((torch::arange(fw) + 0.5) / x_f_k).to(dtype);
    auto shifts_y = ((torch::arange(fh) + 0.5) / y_f_k).to(dtype);
    auto grid = torch::meshgrid({shifts_y, shifts_x}, "ij");
    auto shift_y = grid[0].reshape(-1), shift_x = grid[1].reshape(-1);
    const std::int64_t pairs = wh_pairs_[k].size(0);
    std::vector<torch::Tensor> repeated;
    for (std::int64_t i = 0; i < pairs; ++i) repeated.insert(repeated.end(), {shift_x, shift_y});
    auto shifts = torch::stack(repeated, -1).reshape({-1, 2});
    auto wh = clip ? wh_pairs_[k].clamp(0, 1) : wh_pairs_[k];
    levels.push_back(torch::cat({shifts, wh.to(dtype).repeat({fh * fw, 1})}, 1));
  }
  auto boxes = torch::cat(levels, 0).to(feature_maps[0].device());
  auto x_y_size = torch::tensor({image_w, image_h}, torch::TensorOptions().device(boxes.device()));
  auto xy = boxes.slice(1, 0, 2), wh = boxes.slice(1, 2);
  auto pixels = torch::cat({(xy - 0.5 * wh) * x_y_size, (xy + 0.5 * wh) * x_y_size}, -1);
  return std::vector<torch::Tensor>(images.image_sizes.size(), pixels);
}

void DefaultBoxGeneratorImpl::pretty_print(std::ostream& stream) const {
  stream << "DefaultBoxGenerator(aspect_ratios=" << aspect_ratios.size() << " levels, clip=" << clip << ")";
}

SSDScoringHeadImpl::SSDScoringHeadImpl(std::vector<torch::nn::AnyModule> blocks, std::int64_t num_columns_)
    : num_columns(num_columns_), blocks_(std::move(blocks)) {
  for (const auto& block : blocks_) module_list->push_back(block.ptr());
  register_module("module_list", module_list);
}

torch::Tensor SSDScoringHeadImpl::forward(const std::vector<torch::Tensor>& features) {
  if (features.size() != blocks_.size())
    throw UsageError("SSD head", "got " + std::to_string(features.size()) + " feature maps for " +
                                     std::to_string(blocks_.size()) + " levels");
  std::vector<torch::Tensor> outputs;
  for (std::size_t i = 0; i < features.size(); ++i) outputs.push_back(blocks_[i].forward(features[i]));
  return detail::flatten_levels(outputs, num_columns);
}

SSDHeadImpl::SSDHeadImpl(SSDScoringHead cls, SSDScoringHead reg) {
  classification_head = register_module("classification_head", std::move(cls));
  regression_head = register_module("regression_head", std::move(reg));
}

SSDHeadOutputs SSDHeadImpl::forward(const std::vector<torch::Tensor>& features) {
  return {regression_head->forward(features), classification_head->forward(features)};
}

namespace {

// torchvision's _xavier_init: Xavier-uniform convolution weights, zero biases.
void xavier_init(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  nn::for_each<nn::Conv2dImpl>(module, [](nn::Conv2dImpl& c) {
    torch::nn::init::xavier_uniform_(c.weight);
    if (c.bias.defined()) c.bias.zero_();
  });
}

SSDScoringHead conv_scoring_head(const std::vector<std::int64_t>& in_channels, const std::vector<std::int64_t>& anchors,
                                 std::int64_t columns) {
  if (in_channels.size() != anchors.size())
    throw UsageError("SSD head", "in_channels and num_anchors should have the same length");
  std::vector<torch::nn::AnyModule> blocks;
  for (std::size_t i = 0; i < in_channels.size(); ++i)
    blocks.emplace_back(nn::Conv2d(torch::nn::Conv2dOptions(in_channels[i], columns * anchors[i], 3).padding(1)));
  SSDScoringHead head(std::move(blocks), columns);
  if (!architecture_only()) {
    nn::reset_parameters(*head);
    xavier_init(*head);
  }
  return head;
}

// A child of a Sequential, shared (not copied) into another.
torch::nn::AnyModule child(const torch::nn::Sequential& seq, std::size_t i) { return seq->begin()[i]; }

}  // namespace

SSDHead ssd_head(const std::vector<std::int64_t>& in_channels, const std::vector<std::int64_t>& num_anchors,
                 std::int64_t num_classes) {
  return SSDHead(conv_scoring_head(in_channels, num_anchors, num_classes), conv_scoring_head(in_channels, num_anchors, 4));
}

SSDFeatureExtractorVGGImpl::SSDFeatureExtractorVGGImpl(const torch::nn::Sequential& vgg, bool highres) {
  std::vector<std::size_t> pools;
  for (std::size_t i = 0; i < vgg->size(); ++i)
    if (auto* pool = vgg->ptr(i)->as<torch::nn::MaxPool2d>()) {
      pools.push_back(i);
      if (pools.size() == 3) pool->options.ceil_mode(true);  // as the paper's 38x38 conv4_3 needs
    }
  if (pools.size() != 5) throw UsageError("SSDFeatureExtractorVGG", "the backbone must be VGG features (5 max-pools)");
  scale_weight = register_parameter("scale_weight", torch::full({512}, 20.0));
  features = torch::nn::Sequential();
  for (std::size_t i = 0; i < pools[3]; ++i) features->push_back(child(vgg, i));
  register_module("features", features);

  auto conv = [](std::int64_t in, std::int64_t out, std::int64_t k, std::int64_t stride = 1, std::int64_t padding = 0,
                 std::int64_t dilation = 1) {
    return nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).stride(stride).padding(padding).dilation(dilation));
  };
  using torch::nn::ReLU;
  // conv5_x without maxpool5, then maxpool5' (3x3, stride 1), fc6 (atrous) and fc7 as convolutions.
  ops::SequentialBlock conv5;
  for (std::size_t i = pools[3]; i + 1 < vgg->size(); ++i) conv5->push_back(child(vgg, i));
  ops::SequentialBlock fc(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(3).stride(1).padding(1)),
                          conv(512, 1024, 3, 1, 6, 6), ReLU(), conv(1024, 1024, 1), ReLU());
  conv5->push_back(fc);
  extra_blocks_ = {conv5,
                   ops::SequentialBlock(conv(1024, 256, 1), ReLU(), conv(256, 512, 3, 2, 1), ReLU()),   // conv8_2
                   ops::SequentialBlock(conv(512, 128, 1), ReLU(), conv(128, 256, 3, 2, 1), ReLU()),    // conv9_2
                   ops::SequentialBlock(conv(256, 128, 1), ReLU(), conv(128, 256, 3), ReLU()),          // conv10_2
                   ops::SequentialBlock(conv(256, 128, 1), ReLU(), conv(128, 256, 3), ReLU())};         // conv11_2
  if (highres) extra_blocks_.push_back(ops::SequentialBlock(conv(256, 128, 1), ReLU(), conv(128, 256, 4), ReLU()));
  if (!architecture_only()) {
    for (std::size_t i = 0; i < extra_blocks_.size(); ++i) {
      // Only the new layers: conv5_x keeps what the VGG builder gave it.
      torch::nn::Module& fresh = i == 0 ? static_cast<torch::nn::Module&>(*fc) : *extra_blocks_[i];
      nn::reset_parameters(fresh);
      xavier_init(fresh);
    }
  }
  for (const auto& block : extra_blocks_) extra->push_back(block);
  register_module("extra", extra);
}

TensorDict SSDFeatureExtractorVGGImpl::forward(const torch::Tensor& input) {
  auto x = features->forward(input);
  TensorDict out;
  out.insert("0", scale_weight.view({1, -1, 1, 1}) * torch::nn::functional::normalize(x));
  for (auto& block : extra_blocks_) {
    x = block->forward(x);
    out.insert(std::to_string(out.size()), x);
  }
  return out;
}

SSDImpl::SSDImpl(Backbone backbone_, DefaultBoxGenerator anchor_generator_, const ImageSize& size,
                 std::int64_t num_classes, SSDOptions options_, SSDHead head_)
    : backbone(std::move(backbone_)), options(std::move(options_)) {
  register_module("backbone", backbone.module);
  anchor_generator = register_module("anchor_generator", std::move(anchor_generator_));
  if (!head_) {
    const auto channels = retrieve_out_channels(backbone, size);
    if (channels.size() != anchor_generator->aspect_ratios.size())
      throw UsageError("SSD", "the backbone gives " + std::to_string(channels.size()) +
                                  " feature maps, the anchor generator has aspect ratios for " +
                                  std::to_string(anchor_generator->aspect_ratios.size()));
    head_ = ssd_head(channels, anchor_generator->num_anchors_per_location(), num_classes);
  }
  head = register_module("head", std::move(head_));
  const std::vector<double> mean = options.image_mean.value_or(std::vector<double>{0.485, 0.456, 0.406});
  const std::vector<double> std = options.image_std.value_or(std::vector<double>{0.229, 0.224, 0.225});
  transform = register_module(
      "transform", GeneralizedRCNNTransform(std::vector<std::int64_t>{std::min(size[0], size[1])}, std::max(size[0], size[1]),
                                            mean, std, /*size_divisible=*/1,
                                            /*fixed_size (width, height)=*/std::array<std::int64_t, 2>{size[1], size[0]}));
}

std::vector<std::int64_t> retrieve_out_channels(const Backbone& backbone, const ImageSize& size) {
  torch::NoGradGuard no_grad;
  const bool was_training = backbone.module->is_training();
  backbone.module->eval();
  std::vector<std::int64_t> channels;
  for (const auto& f : backbone.forward(torch::zeros({1, 3, size[0], size[1]})).values()) channels.push_back(f.size(1));
  backbone.module->train(was_training);
  return channels;
}

std::vector<torch::Tensor> SSDImpl::features(const torch::Tensor& batched_images) {
  return backbone.forward(batched_images).values();
}

std::vector<Detection> SSDImpl::forward(const std::vector<torch::Tensor>& images) {
  const auto original_sizes = detail::image_sizes(images);
  ImageList list = transform->forward(images);
  auto maps = features(list.tensors);
  auto head_outputs = head->forward(maps);
  auto anchors = anchor_generator->forward(list, maps);
  auto detections = postprocess_detections(head_outputs, anchors, list.image_sizes);
  return transform->postprocess(detections, list.image_sizes, original_sizes);
}

TensorDict SSDImpl::dense(const TensorDict& inputs) {
  const auto h = detail::head_outputs(*this, inputs);
  return {{"bbox_regression", h.bbox_regression}, {"cls_logits", h.cls_logits}};
}

std::vector<Detection> SSDImpl::postprocess_detections(
    const SSDHeadOutputs& head_outputs, const std::vector<torch::Tensor>& anchors,
    const std::vector<ImageSize>& image_sizes) {
  static const BoxCoder box_coder({10.0, 10.0, 5.0, 5.0});
  auto pred_scores = torch::softmax(head_outputs.cls_logits, -1);
  const std::int64_t num_classes = pred_scores.size(-1);
  std::vector<Detection> detections;
  for (std::size_t i = 0; i < anchors.size(); ++i) {
    auto boxes = box_coder.decode_single(head_outputs.bbox_regression[i], anchors[i]);
    boxes = ops::clip_boxes_to_image(boxes, {image_sizes[i][0], image_sizes[i][1]});
    // Upstream, per label: score = scores[:, label]; score[score > score_thresh]; its top-k; their boxes.
    // Here one pass gathers each label's candidates, in anchor order, and topk runs on a tensor equal to
    // upstream's, so that ties come out in its order.
    const torch::Tensor scores = pred_scores[i].contiguous();
    const std::int64_t num_anchors = scores.size(0);
    torch::Tensor candidates = torch::empty({num_anchors}, scores.options());
    std::vector<std::int64_t> rows(num_anchors), selected, labels;
    std::vector<torch::Tensor> image_scores;
    AT_DISPATCH_FLOATING_TYPES(scores.scalar_type(), "mz::SSD::postprocess_detections", [&] {
      const auto thresh = static_cast<scalar_t>(options.score_thresh);  // as Tensor > Scalar compares
      const scalar_t* score = scores.data_ptr<scalar_t>();
      scalar_t* candidate = candidates.data_ptr<scalar_t>();
      for (std::int64_t label = 1; label < num_classes; ++label) {
        std::int64_t n = 0;
        for (std::int64_t a = 0; a < num_anchors; ++a) {
          const scalar_t v = score[a * num_classes + label];
          if (v > thresh) candidate[n] = v, rows[n++] = a;
        }
        const auto [top, index] = candidates.narrow(0, 0, n).topk(std::min(options.topk_candidates, n));
        image_scores.push_back(top);
        const std::int64_t* j = index.data_ptr<std::int64_t>();
        for (std::int64_t k = 0; k < index.numel(); ++k) selected.push_back(rows[j[k]]);
        labels.insert(labels.end(), index.numel(), label);
      }
    });
    auto all_boxes = boxes.index_select(0, torch::tensor(selected, torch::kLong));
    auto all_scores = torch::cat(image_scores), all_labels = torch::tensor(labels, torch::kLong);
    auto keep = ops::batched_nms(all_boxes, all_scores, all_labels, options.nms_thresh)
                    .slice(0, 0, options.detections_per_img);
    Detection d;
    d.boxes = all_boxes.index({keep});
    d.scores = all_scores.index({keep});
    d.labels = all_labels.index({keep});
    detections.push_back(std::move(d));
  }
  return detections;
}

SSD ssd300_vgg16(std::optional<SSD300_VGG16_Weights> weights, SSD300VGG16Options o) {
  const std::int64_t num_classes = detail::detection_num_classes(weights, o);
  const std::int64_t trainable = validate_trainable_layers(weights.has_value() || o.weights_backbone.has_value(), o.trainable_backbone_layers,
                                                          5, 4);
  return detail::build_detector(weights, [&] {
    VGG vgg = vgg16(o.weights_backbone);
    // torchvision's _vgg_extractor: stages start at 0 and after each of the first four max-pools.
    std::vector<std::size_t> stage_indices = {0};
    for (std::size_t i = 0; i < vgg->features->size() && stage_indices.size() < 5; ++i)
      if (vgg->features[i]->as<torch::nn::MaxPool2d>()) stage_indices.push_back(i);
    detail::freeze_before(vgg->features,
                          trainable == 0 ? vgg->features->size() : stage_indices[stage_indices.size() - trainable]);
    SSDFeatureExtractorVGG backbone(vgg->features, /*highres=*/false);
    DefaultBoxGenerator anchors({{2}, {2, 3}, {2, 3}, {2, 3}, {2}, {2}}, 0.15, 0.9,
                                {0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05}, {8, 16, 32, 64, 100, 300});
    return SSD(backbone, anchors, {300, 300}, num_classes, o);
  });
}

MZ_REGISTER_MODEL(ssd300_vgg16);

}  // namespace mz
