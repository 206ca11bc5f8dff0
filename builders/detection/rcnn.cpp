// GeneralizedRCNN, FasterRCNN / MaskRCNN / KeypointRCNN and their seven builders, as in
// torchvision.models.detection.{generalized_rcnn,faster_rcnn,mask_rcnn,keypoint_rcnn}.
#include "modelzoo/detection/faster_rcnn.h"
#include "modelzoo/detection/keypoint_rcnn.h"
#include "modelzoo/detection/mask_rcnn.h"

#include "builders/common.h"
#include "modelzoo/models/mobilenetv3.h"
#include "modelzoo/models/resnet.h"
#include "registry/register.h"

namespace mz {

namespace {

const std::vector<std::string> kFpnLevels = {"0", "1", "2", "3"};
const std::vector<std::int64_t> kConvLayers = {256, 256, 256, 256};  // the mask head's and the v2 box head's

// _default_anchorgen: sizes (32,), (64,), (128,), (256,), (512,) with ratios (0.5, 1, 2) each.
AnchorGenerator default_anchorgen() { return AnchorGenerator({{32}, {64}, {128}, {256}, {512}}, {{0.5, 1.0, 2.0}}); }

}  // namespace

GeneralizedRCNNImpl::GeneralizedRCNNImpl(Backbone bb, RCNNOptions o, Kind kind) : backbone(std::move(bb)) {
  const char* model = kind == Kind::Faster ? "FasterRCNN" : kind == Kind::Mask ? "MaskRCNN" : "KeypointRCNN";
  if (kind != Kind::Mask && (o.mask_roi_pool || !o.mask_head.is_empty() || !o.mask_predictor.is_empty()))
    throw UsageError(model, "mask_roi_pool, mask_head and mask_predictor belong to MaskRCNN");
  if (kind != Kind::Keypoint &&
      (o.keypoint_roi_pool || !o.keypoint_head.is_empty() || !o.keypoint_predictor.is_empty() || o.num_keypoints))
    throw UsageError(model, "keypoint_roi_pool, keypoint_head, keypoint_predictor and num_keypoints belong to KeypointRCNN");
  if (o.num_classes && o.box_predictor)
    throw UsageError(model, "num_classes should be None when box_predictor is specified");
  if (!o.num_classes && !o.box_predictor)
    throw UsageError(model, "num_classes should not be None when box_predictor is not specified");
  if (kind == Kind::Mask && o.num_classes && !o.mask_predictor.is_empty())
    throw UsageError(model, "num_classes should be None when mask_predictor is specified");
  if (kind == Kind::Keypoint && o.num_keypoints && !o.keypoint_predictor.is_empty())
    throw UsageError(model, "num_keypoints should be None when keypoint_predictor is specified");

  const std::int64_t out_channels = o.out_channels ? *o.out_channels : backbone.channels(model);
  if (!o.rpn_anchor_generator) o.rpn_anchor_generator = default_anchorgen();
  const auto per_location = o.rpn_anchor_generator->num_anchors_per_location();
  if (!o.rpn_head) o.rpn_head = RPNHead(out_channels, per_location.front());
  RPNOptions rpn_options;
  rpn_options.pre_nms_top_n_train = o.rpn_pre_nms_top_n_train;
  rpn_options.pre_nms_top_n_test = o.rpn_pre_nms_top_n_test;
  rpn_options.post_nms_top_n_train = o.rpn_post_nms_top_n_train;
  rpn_options.post_nms_top_n_test = o.rpn_post_nms_top_n_test;
  rpn_options.nms_thresh = o.rpn_nms_thresh;
  rpn_options.score_thresh = o.rpn_score_thresh;

  // Default poolers use the levels "0".."3" the backbone returns (torchvision's _filter_input).
  auto default_pool = [](std::int64_t size) {
    auto pool = MultiScaleRoIAlign(kFpnLevels, size, 2);
    pool->strict = false;
    return pool;
  };
  if (!o.box_roi_pool) o.box_roi_pool = default_pool(7);
  if (o.box_head.is_empty()) {
    const std::int64_t resolution = o.box_roi_pool->output_size[0];
    o.box_head = torch::nn::AnyModule(TwoMLPHead(out_channels * resolution * resolution, 1024));
  }
  if (!o.box_predictor) o.box_predictor = FastRCNNPredictor(1024, *o.num_classes);
  RoIHeadsOptions roi_options;
  roi_options.score_thresh = o.box_score_thresh;
  roi_options.nms_thresh = o.box_nms_thresh;
  roi_options.detections_per_img = o.box_detections_per_img;
  if (o.bbox_reg_weights) roi_options.bbox_reg_weights = *o.bbox_reg_weights;

  std::optional<MaskBranch> mask;
  if (kind == Kind::Mask) {
    mask.emplace();
    mask->roi_pool = o.mask_roi_pool ? o.mask_roi_pool : default_pool(14);
    mask->head = o.mask_head.is_empty() ? torch::nn::AnyModule(MaskRCNNHeads(out_channels, kConvLayers, 1))
                                        : o.mask_head;
    mask->predictor =
        o.mask_predictor.is_empty() ? torch::nn::AnyModule(MaskRCNNPredictor(256, 256, *o.num_classes)) : o.mask_predictor;
  }
  std::optional<KeypointBranch> keypoint;
  if (kind == Kind::Keypoint) {
    keypoint.emplace();
    keypoint->roi_pool = o.keypoint_roi_pool ? o.keypoint_roi_pool : default_pool(14);
    keypoint->head = o.keypoint_head.is_empty()
                         ? torch::nn::AnyModule(KeypointRCNNHeads(out_channels, std::vector<std::int64_t>(8, 512)))
                         : o.keypoint_head;
    keypoint->predictor = o.keypoint_predictor.is_empty()
                              ? torch::nn::AnyModule(KeypointRCNNPredictor(512, o.num_keypoints.value_or(17)))
                              : o.keypoint_predictor;
  }

  std::vector<std::int64_t> min_size = o.min_size;
  if (min_size.empty())
    min_size = kind == Kind::Keypoint ? std::vector<std::int64_t>{640, 672, 704, 736, 768, 800}
                                      : std::vector<std::int64_t>{800};
  transform = register_module("transform",
                              GeneralizedRCNNTransform(min_size, o.max_size, o.image_mean, o.image_std));
  register_module("backbone", backbone.module);
  rpn = register_module("rpn", RegionProposalNetwork(o.rpn_anchor_generator, o.rpn_head, rpn_options));
  roi_heads = register_module("roi_heads", RoIHeads(o.box_roi_pool, o.box_head, o.box_predictor, roi_options, mask,
                                                    keypoint));
}

std::vector<Detection> GeneralizedRCNNImpl::forward(const std::vector<torch::Tensor>& images) {
  if (is_training()) throw UsageError("GeneralizedRCNN", "training (losses) is not implemented; call eval()");
  std::vector<ImageSize> original_sizes;
  for (const auto& img : images) original_sizes.push_back({img.size(-2), img.size(-1)});
  const ImageList batch = transform->forward(images);
  const TensorDict maps = backbone.forward(batch.tensors);
  const auto proposals = rpn->forward(batch, maps).first;
  auto detections = roi_heads->forward(maps, proposals, batch.image_sizes);
  return transform->postprocess(std::move(detections), batch.image_sizes, original_sizes);
}

namespace {

// Fixed boxes for GeneralizedRCNN::dense, `count` per image. They cycle through 1, 1/2, ..., 1/16 of the image's
// size, which MultiScaleRoIAlign maps to every level of an 800-pixel image, and slide from the top right corner to
// the bottom left one.
std::vector<torch::Tensor> probe_boxes(const std::vector<ImageSize>& image_sizes, std::int64_t count) {
  std::vector<torch::Tensor> out;
  for (const auto& size : image_sizes) {
    const double h = static_cast<double>(size[0]), w = static_cast<double>(size[1]);
    std::vector<float> boxes;
    for (std::int64_t i = 0; i < count; ++i) {
      const double s = 1.0 / static_cast<double>(1 << (i % 5));
      const double t = static_cast<double>(i) / static_cast<double>(std::max<std::int64_t>(1, count - 1));
      const double left = w * (1 - s) * (1 - t), top = h * (1 - s) * t;
      for (double v : {left, top, left + w * s, top + h * s}) boxes.push_back(static_cast<float>(v));
    }
    out.push_back(torch::tensor(boxes).view({-1, 4}));
  }
  return out;
}

}  // namespace

TensorDict GeneralizedRCNNImpl::dense(const TensorDict& inputs) {
  const ImageList batch = transform->forward(images_from_inputs(inputs));
  const TensorDict maps = backbone.forward(batch.tensors);
  TensorDict out;
  const auto [objectness, deltas] = rpn->head->forward(maps.values());
  for (std::size_t l = 0; l < objectness.size(); ++l) {
    out.insert("rpn.objectness." + std::to_string(l), objectness[l]);
    out.insert("rpn.pred_bbox_deltas." + std::to_string(l), deltas[l]);
  }
  // The box head on as many boxes as the RPN passes on in a forward, so that it runs (and optimize_for_inference
  // times its maps) at the size it has there; the mask and keypoint heads on the first five, one at each scale.
  const auto boxes = probe_boxes(batch.image_sizes, rpn->post_nms_top_n());
  for (const auto& item : roi_heads->dense(maps, boxes, batch.image_sizes, 5))
    out.insert("roi_heads." + item.key(), item.value());
  return out;
}

TensorDict GeneralizedRCNNImpl::example_inputs(std::int64_t batch, std::int64_t size) {
  TensorDict out;
  out.insert("input", torch::rand({batch, 3, size, size}));
  return out;
}

namespace {

// torchvision's builder prologue: weights drop weights_backbone and force num_classes (and
// num_keypoints); without them num_classes defaults to `default_classes`. Returns is_trained.
template <class W, class O>
bool prologue(const std::optional<W>& weights, O& o, std::int64_t default_classes) {
  if (weights) {
    o.weights_backbone.reset();
    const auto& meta = weights->meta();
    o.num_classes = detail::override_param(o.num_classes, static_cast<std::int64_t>(meta.categories.value().size()),
                                           "num_classes", weights->name());
    if (meta.extra.contains("keypoint_names"))
      o.num_keypoints = detail::override_param(o.num_keypoints,
                                               static_cast<std::int64_t>(meta.extra["keypoint_names"].size()),
                                               "num_keypoints", weights->name());
  } else if (!o.num_classes) {
    o.num_classes = default_classes;
  }
  return weights.has_value() || o.weights_backbone.has_value();
}

// The model kwargs of the builder options, over the builder's own defaults.
template <class O>
RCNNOptions model_options(const O& b, RCNNOptions o = {}) {
  o.num_classes = b.num_classes;
  if (b.min_size) o.min_size = *b.min_size;
  if (b.max_size) o.max_size = *b.max_size;
  if (b.image_mean) o.image_mean = *b.image_mean;
  if (b.image_std) o.image_std = *b.image_std;
  if (b.rpn_pre_nms_top_n_train) o.rpn_pre_nms_top_n_train = *b.rpn_pre_nms_top_n_train;
  if (b.rpn_pre_nms_top_n_test) o.rpn_pre_nms_top_n_test = *b.rpn_pre_nms_top_n_test;
  if (b.rpn_post_nms_top_n_train) o.rpn_post_nms_top_n_train = *b.rpn_post_nms_top_n_train;
  if (b.rpn_post_nms_top_n_test) o.rpn_post_nms_top_n_test = *b.rpn_post_nms_top_n_test;
  if (b.rpn_nms_thresh) o.rpn_nms_thresh = *b.rpn_nms_thresh;
  if (b.rpn_score_thresh) o.rpn_score_thresh = *b.rpn_score_thresh;
  if (b.box_score_thresh) o.box_score_thresh = *b.box_score_thresh;
  if (b.box_nms_thresh) o.box_nms_thresh = *b.box_nms_thresh;
  if (b.box_detections_per_img) o.box_detections_per_img = *b.box_detections_per_img;
  return o;
}

// Builds the model (without initialising what the weights overwrite), then loads the weights; the
// COCO_V1 weights of the v1 ResNet models get overwrite_eps(0) (`eps_zero`).
template <class Model, class W, class Make>
Model finish(const std::optional<W>& weights, bool eps_zero, Make make) {
  std::optional<Model> model;
  if (weights && !architecture_only()) {
    ArchitectureOnly uninitialised;
    model = make();
  } else {
    model = make();
  }
  detail::load_or_init(**model, weights, [] {}, /*keep=*/{"transform", "backbone", "rpn", "roi_heads"});
  if (weights && eps_zero) overwrite_eps(**model, 0.0);
  return *model;
}

// resnet50 with the detection norm: FrozenBatchNorm2d when trained, else BatchNorm2d (v1 builders).
ResNet detection_resnet50(const std::optional<ResNet50_Weights>& w, bool frozen) {
  ResNetOptions ro;
  ro.norm_layer = frozen ? ops::frozen_batch_norm2d() : ops::batch_norm2d();
  return resnet50(w, ro);
}

template <class Model, class W, class O>
Model resnet50_v1(const std::optional<W>& weights, O o, const char* eps_zero_value, std::int64_t default_classes) {
  const bool is_trained = prologue(weights, o, default_classes);
  const auto layers = validate_trainable_layers(is_trained, o.trainable_backbone_layers, 5, 3);
  const bool eps_zero = weights && weights->name() == std::string(W::enum_name) + "." + eps_zero_value;
  return finish<Model>(weights, eps_zero, [&] {
    auto backbone = resnet_fpn_extractor(detection_resnet50(o.weights_backbone, is_trained).ptr(), layers);
    RCNNOptions mo = model_options(o);
    if constexpr (std::is_same_v<Model, KeypointRCNN>) mo.num_keypoints = o.num_keypoints.value_or(17);
    return Model(backbone, mo);
  });
}

template <class Model, class W, class O>
Model resnet50_v2(const std::optional<W>& weights, O o) {
  const bool is_trained = prologue(weights, o, 91);
  const auto layers = validate_trainable_layers(is_trained, o.trainable_backbone_layers, 5, 3);
  return finish<Model>(weights, false, [&] {
    auto backbone = resnet_fpn_extractor(resnet50(o.weights_backbone, {}).ptr(), layers, {}, {}, ops::batch_norm2d());
    RCNNOptions mo = model_options(o);
    mo.rpn_anchor_generator = default_anchorgen();
    mo.rpn_head = RPNHead(backbone->out_channels, mo.rpn_anchor_generator->num_anchors_per_location().front(), 2);
    mo.box_head = torch::nn::AnyModule(
        FastRCNNConvFCHead(std::array<std::int64_t, 3>{backbone->out_channels, 7, 7}, kConvLayers,
                           std::vector<std::int64_t>{1024}, ops::batch_norm2d()));
    if constexpr (std::is_same_v<Model, MaskRCNN>)
      mo.mask_head = torch::nn::AnyModule(
          MaskRCNNHeads(backbone->out_channels, kConvLayers, 1, ops::batch_norm2d()));
    return Model(backbone, mo);
  });
}

template <class W, class O>
FasterRCNN mobilenet_v3_fpn(const std::optional<W>& weights, O o, RCNNOptions defaults) {
  const bool is_trained = prologue(weights, o, 91);
  const auto layers = validate_trainable_layers(is_trained, o.trainable_backbone_layers, 6, 3);
  return finish<FasterRCNN>(weights, false, [&] {
    MobileNetV3Options mo;
    mo.norm_layer = is_trained ? ops::frozen_batch_norm2d() : ops::batch_norm2d();
    auto backbone = mobilenet_extractor(mobilenet_v3_large(o.weights_backbone, mo).ptr(), true, layers);
    RCNNOptions options = model_options(o, std::move(defaults));
    const std::vector<double> sizes = {32, 64, 128, 256, 512};
    options.rpn_anchor_generator = AnchorGenerator({sizes, sizes, sizes}, {{0.5, 1.0, 2.0}});
    return FasterRCNN(backbone, options);
  });
}

}  // namespace

FasterRCNN fasterrcnn_resnet50_fpn(std::optional<FasterRCNN_ResNet50_FPN_Weights> w, FasterRCNNResNet50Options o) {
  return resnet50_v1<FasterRCNN>(w, o, "COCO_V1", 91);
}
FasterRCNN fasterrcnn_resnet50_fpn_v2(std::optional<FasterRCNN_ResNet50_FPN_V2_Weights> w,
                                      FasterRCNNResNet50V2Options o) {
  return resnet50_v2<FasterRCNN>(w, o);
}
FasterRCNN fasterrcnn_mobilenet_v3_large_fpn(std::optional<FasterRCNN_MobileNet_V3_Large_FPN_Weights> w,
                                             FasterRCNNMobileNetV3Options o) {
  RCNNOptions defaults;
  defaults.rpn_score_thresh = 0.05;
  return mobilenet_v3_fpn(w, o, defaults);
}
FasterRCNN fasterrcnn_mobilenet_v3_large_320_fpn(std::optional<FasterRCNN_MobileNet_V3_Large_320_FPN_Weights> w,
                                                 FasterRCNNMobileNetV3Options o) {
  RCNNOptions defaults;
  defaults.min_size = {320};
  defaults.max_size = 640;
  defaults.rpn_pre_nms_top_n_test = 150;
  defaults.rpn_post_nms_top_n_test = 150;
  defaults.rpn_score_thresh = 0.05;
  return mobilenet_v3_fpn(w, o, defaults);
}
MaskRCNN maskrcnn_resnet50_fpn(std::optional<MaskRCNN_ResNet50_FPN_Weights> w, MaskRCNNResNet50Options o) {
  return resnet50_v1<MaskRCNN>(w, o, "COCO_V1", 91);
}
MaskRCNN maskrcnn_resnet50_fpn_v2(std::optional<MaskRCNN_ResNet50_FPN_V2_Weights> w, MaskRCNNResNet50V2Options o) {
  return resnet50_v2<MaskRCNN>(w, o);
}
KeypointRCNN keypointrcnn_resnet50_fpn(std::optional<KeypointRCNN_ResNet50_FPN_Weights> w,
                                       KeypointRCNNResNet50Options o) {
  return resnet50_v1<KeypointRCNN>(w, o, "COCO_V1", 2);
}

MZ_REGISTER_MODEL(fasterrcnn_resnet50_fpn);
MZ_REGISTER_MODEL(fasterrcnn_resnet50_fpn_v2);
MZ_REGISTER_MODEL(fasterrcnn_mobilenet_v3_large_fpn);
MZ_REGISTER_MODEL(fasterrcnn_mobilenet_v3_large_320_fpn);
MZ_REGISTER_MODEL(maskrcnn_resnet50_fpn);
MZ_REGISTER_MODEL(maskrcnn_resnet50_fpn_v2);
MZ_REGISTER_MODEL(keypointrcnn_resnet50_fpn);

}  // namespace mz
