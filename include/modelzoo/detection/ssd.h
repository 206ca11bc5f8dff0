// SSD (torchvision.models.detection.ssd): DefaultBoxGenerator, the scoring heads, SSD's VGG16
// feature extractor, the SSD model over any backbone, and ssd300_vgg16.
//
//   auto anchors = mz::DefaultBoxGenerator({{2}, {2, 3}, {2, 3}, {2, 3}, {2}, {2}});
//   mz::SSD model(backbone, anchors, {300, 300}, /*num_classes=*/91);   // backbone: Tensor or named maps
//   model->eval();
//   std::vector<mz::Detection> detections = model->forward({torch::rand({3, 300, 400})});
#pragma once

#include <optional>
#include <utility>
#include <vector>

#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>

#include "modelzoo/detection/backbone_utils.h"
#include "modelzoo/detection/detection.h"
#include "modelzoo/detection/transform.h"
#include "modelzoo/layers/nn.h"
#include "modelzoo/layers/ops.h"
#include "modelzoo/models/vgg.h"
#include "modelzoo/options.h"
#include "modelzoo/tensor_dict.h"
#include "modelzoo/weights_enums/detection.h"

namespace mz {

// torchvision.models.detection.anchor_utils.DefaultBoxGenerator: SSD's default boxes. `scales` (one
// more than the levels) default to min_ratio..max_ratio evenly, then 1.0; `steps` (empty: the
// feature-map sizes) tile the image; `clip` clamps widths and heights to [0, 1].
class DefaultBoxGeneratorImpl : public torch::nn::Module {
 public:
  explicit DefaultBoxGeneratorImpl(std::vector<std::vector<std::int64_t>> aspect_ratios, double min_ratio = 0.15,
                                   double max_ratio = 0.9, std::vector<double> scales = {},
                                   std::vector<std::int64_t> steps = {}, bool clip = true);
  // 2 + 2 * len(aspect_ratios[k]) boxes per location of level k.
  std::vector<std::int64_t> num_anchors_per_location() const;
  // The boxes (x1, y1, x2, y2, in pixels of the batched images) of every image: the same for all.
  std::vector<torch::Tensor> forward(const ImageList& images, const std::vector<torch::Tensor>& feature_maps);
  void pretty_print(std::ostream& stream) const override;

  std::vector<std::vector<std::int64_t>> aspect_ratios;
  std::vector<double> scales;
  std::vector<std::int64_t> steps;
  bool clip;

 private:
  std::vector<torch::Tensor> wh_pairs_;
};
// A holder whose constructor takes braced lists: DefaultBoxGenerator({{2}, {2, 3}}).
class DefaultBoxGenerator : public torch::nn::ModuleHolder<DefaultBoxGeneratorImpl> {
 public:
  using torch::nn::ModuleHolder<DefaultBoxGeneratorImpl>::ModuleHolder;
  DefaultBoxGenerator(std::vector<std::vector<std::int64_t>> aspect_ratios, double min_ratio = 0.15, double max_ratio = 0.9,
                      std::vector<double> scales = {}, std::vector<std::int64_t> steps = {}, bool clip = true)
      : ModuleHolder(std::make_shared<DefaultBoxGeneratorImpl>(std::move(aspect_ratios), min_ratio, max_ratio, std::move(scales),
                                                               std::move(steps), clip)) {}
};

// torchvision's SSDScoringHead: one block per level (module_list.<i>), each output reshaped from
// [N, A * K, H, W] to [N, H * W * A, K] and the levels concatenated.
class SSDScoringHeadImpl : public torch::nn::Module {
 public:
  SSDScoringHeadImpl(std::vector<torch::nn::AnyModule> blocks, std::int64_t num_columns);
  torch::Tensor forward(const std::vector<torch::Tensor>& features);
  torch::nn::ModuleList module_list;
  std::int64_t num_columns;

 private:
  std::vector<torch::nn::AnyModule> blocks_;
};
TORCH_MODULE(SSDScoringHead);

// The raw outputs of an SSD head: [N, anchors, 4] box deltas and [N, anchors, num_classes] logits.
struct SSDHeadOutputs {
  torch::Tensor bbox_regression;
  torch::Tensor cls_logits;
};

// SSDHead and SSDLiteHead: a classification and a regression scoring head.
class SSDHeadImpl : public torch::nn::Module {
 public:
  SSDHeadImpl(SSDScoringHead classification_head, SSDScoringHead regression_head);
  SSDHeadOutputs forward(const std::vector<torch::Tensor>& features);
  SSDScoringHead classification_head{nullptr}, regression_head{nullptr};
};
TORCH_MODULE(SSDHead);

// torchvision's SSDHead: one 3x3 convolution per level for each head (Xavier-initialised).
SSDHead ssd_head(const std::vector<std::int64_t>& in_channels, const std::vector<std::int64_t>& num_anchors,
                 std::int64_t num_classes);

// SSDFeatureExtractorVGG: VGG features until conv4_3 (its output L2-normalised and scaled by
// `scale_weight`), then conv5 with fc6 (dilated) / fc7 and four extra blocks (five with `highres`,
// SSD512). Sets ceil_mode on the third max-pool of `vgg_features`, as torchvision does.
class SSDFeatureExtractorVGGImpl : public torch::nn::Module {
 public:
  SSDFeatureExtractorVGGImpl(const torch::nn::Sequential& vgg_features, bool highres);
  TensorDict forward(const torch::Tensor& x);
  torch::Tensor scale_weight;
  torch::nn::Sequential features{nullptr};
  torch::nn::ModuleList extra;

 private:
  std::vector<ops::SequentialBlock> extra_blocks_;
};
TORCH_MODULE(SSDFeatureExtractorVGG);

// torchvision's det_utils.retrieve_out_channels: the channels of each map the backbone gives for a
// zero image of `size` (in eval mode, without gradients).
std::vector<std::int64_t> retrieve_out_channels(const Backbone& backbone, const ImageSize& size);

// Keyword arguments of torchvision's SSD class beyond its positional ones.
struct SSDOptions {
  std::optional<std::vector<double>> image_mean;  // default ImageNet's
  std::optional<std::vector<double>> image_std;
  double score_thresh = 0.01;
  double nms_thresh = 0.45;
  std::int64_t detections_per_img = 200;
  double iou_thresh = 0.5;  // training only
  std::int64_t topk_candidates = 400;
  double positive_fraction = 0.25;  // training only
};

// torchvision's SSD in eval mode: transform (resize to the fixed `size`, normalise) -> backbone ->
// head + default boxes -> postprocess_detections -> boxes in the input images' pixels. The backbone's
// forward gives one Tensor or named maps (mz::Backbone); `head` defaults to ssd_head over the backbone's
// channels (found by a forward pass at `size`, (height, width)).
class SSDImpl : public torch::nn::Module {
 public:
  SSDImpl(Backbone backbone, DefaultBoxGenerator anchor_generator, const ImageSize& size, std::int64_t num_classes,
          SSDOptions options = {}, SSDHead head = nullptr);
  std::vector<Detection> forward(const std::vector<torch::Tensor>& images);
  // The backbone's maps, in order.
  std::vector<torch::Tensor> features(const torch::Tensor& batched_images);
  // softmax -> decode -> clip -> per class: score > score_thresh, top-k -> batched NMS -> the best
  // detections_per_img (boxes in the transformed images' pixels).
  std::vector<Detection> postprocess_detections(const SSDHeadOutputs& head_outputs,
                                                const std::vector<torch::Tensor>& anchors,
                                                const std::vector<ImageSize>& image_sizes);
  TensorDict run(const TensorDict& inputs) { return detections_to_dict(forward(images_from_inputs(inputs))); }
  // The head's raw outputs, before any selection (see mz::Model::dense): "bbox_regression" and "cls_logits".
  TensorDict dense(const TensorDict& inputs);

  Backbone backbone;
  DefaultBoxGenerator anchor_generator{nullptr};
  GeneralizedRCNNTransform transform{nullptr};
  SSDHead head{nullptr};
  SSDOptions options;
};
class SSD : public torch::nn::ModuleHolder<SSDImpl> {
 public:
  using torch::nn::ModuleHolder<SSDImpl>::ModuleHolder;
  SSD(Backbone backbone, DefaultBoxGenerator anchor_generator, const ImageSize& size, std::int64_t num_classes,
      SSDOptions options = {}, SSDHead head = nullptr)
      : ModuleHolder(std::make_shared<SSDImpl>(std::move(backbone), std::move(anchor_generator), size, num_classes,
                                                  std::move(options), std::move(head))) {}
};

// Python keyword arguments of ssd300_vgg16: the builder's, then SSD's (the base, with this builder's mean and std;
// size is fixed at 300 x 300).
struct SSD300VGG16Options : SSDOptions {
  std::optional<std::int64_t> num_classes;  // default 91, or len(categories) with weights
  std::optional<VGG16_Weights> weights_backbone = VGG16_Weights::IMAGENET1K_FEATURES;
  std::optional<std::int64_t> trainable_backbone_layers;  // 0..5, default 4 (5 without any weights)
  SSD300VGG16Options() {
    image_mean = {0.48235, 0.45882, 0.40784};
    image_std = {1.0 / 255.0, 1.0 / 255.0, 1.0 / 255.0};
  }
};
#define MZ_SSD_BUILDER_FIELDS                                                                                      \
  num_classes, weights_backbone, trainable_backbone_layers, image_mean, image_std, score_thresh, nms_thresh,        \
      detections_per_img, iou_thresh, topk_candidates, positive_fraction
MZ_OPTIONS(SSD300VGG16Options, MZ_SSD_BUILDER_FIELDS)

// The weights enum SSD300_VGG16_Weights is generated into <modelzoo/weights_enums/detection.h> from
// the records in weights/records/ssd.cpp.
SSD ssd300_vgg16(std::optional<SSD300_VGG16_Weights> weights = {}, SSD300VGG16Options options = {});

}  // namespace mz
