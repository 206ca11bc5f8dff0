// Spec components: detection parts and detectors over any backbone (kwargs as torchvision's).
#include "builders/spec/parts.h"
#include "modelzoo/detection/faster_rcnn.h"
#include "modelzoo/detection/fcos.h"
#include "modelzoo/detection/retinanet.h"

namespace mz::spec {
namespace {

enum class RCNN { Faster, Mask, Keypoint };

// FasterRCNN's kwargs (and MaskRCNN's or KeypointRCNN's own); out_channels is C++'s backbone.out_channels.
RCNNOptions rcnn_options(Args& a, RCNN kind) {
  RCNNOptions o;
  o.num_classes = a.get<std::optional<std::int64_t>>("num_classes", std::nullopt);
  o.out_channels = a.get<std::optional<std::int64_t>>("out_channels", std::nullopt);
  o.min_size = a.get<SizeList>("min_size", {});
  o.max_size = a.get("max_size", o.max_size);
  o.image_mean = a.get("image_mean", o.image_mean);
  o.image_std = a.get("image_std", o.image_std);
  o.rpn_anchor_generator = a.get("rpn_anchor_generator", o.rpn_anchor_generator);
  o.rpn_head = a.get("rpn_head", o.rpn_head);
  o.rpn_pre_nms_top_n_train = a.get("rpn_pre_nms_top_n_train", o.rpn_pre_nms_top_n_train);
  o.rpn_pre_nms_top_n_test = a.get("rpn_pre_nms_top_n_test", o.rpn_pre_nms_top_n_test);
  o.rpn_post_nms_top_n_train = a.get("rpn_post_nms_top_n_train", o.rpn_post_nms_top_n_train);
  o.rpn_post_nms_top_n_test = a.get("rpn_post_nms_top_n_test", o.rpn_post_nms_top_n_test);
  o.rpn_nms_thresh = a.get("rpn_nms_thresh", o.rpn_nms_thresh);
  o.rpn_score_thresh = a.get("rpn_score_thresh", o.rpn_score_thresh);
  o.box_roi_pool = a.get("box_roi_pool", o.box_roi_pool);
  o.box_head = a.get("box_head", o.box_head);
  o.box_predictor = a.get("box_predictor", o.box_predictor);
  o.box_score_thresh = a.get("box_score_thresh", o.box_score_thresh);
  o.box_nms_thresh = a.get("box_nms_thresh", o.box_nms_thresh);
  o.box_detections_per_img = a.get("box_detections_per_img", o.box_detections_per_img);
  o.bbox_reg_weights = a.get("bbox_reg_weights", o.bbox_reg_weights);
  if (kind == RCNN::Mask) {
    o.mask_roi_pool = a.get("mask_roi_pool", o.mask_roi_pool);
    o.mask_head = a.get("mask_head", o.mask_head);
    o.mask_predictor = a.get("mask_predictor", o.mask_predictor);
  }
  if (kind == RCNN::Keypoint) {
    o.keypoint_roi_pool = a.get("keypoint_roi_pool", o.keypoint_roi_pool);
    o.keypoint_head = a.get("keypoint_head", o.keypoint_head);
    o.keypoint_predictor = a.get("keypoint_predictor", o.keypoint_predictor);
    o.num_keypoints = a.get("num_keypoints", o.num_keypoints);
  }
  return o;
}

// The kwargs RetinaNet and FCOS share.
template <class Options>
Options single_stage_options(Args& a) {
  Options o;
  o.min_size = a.get("min_size", o.min_size);
  o.max_size = a.get("max_size", o.max_size);
  o.image_mean = a.get("image_mean", o.image_mean);
  o.image_std = a.get("image_std", o.image_std);
  o.score_thresh = a.get("score_thresh", o.score_thresh);
  o.nms_thresh = a.get("nms_thresh", o.nms_thresh);
  o.detections_per_img = a.get("detections_per_img", o.detections_per_img);
  o.topk_candidates = a.get("topk_candidates", o.topk_candidates);
  return o;
}

ExtraFPNBlock extra_blocks(Args& a) {
  return ExtraFPNBlock(a.get<std::shared_ptr<ExtraFPNBlockImpl>>("extra_blocks", nullptr));
}

}  // namespace

MZ_REGISTER_COMPONENT(AnchorGenerator, [](Args& a) {
  return AnchorGenerator(a.get<std::vector<std::vector<double>>>("sizes", {{128, 256, 512}}),
                         a.get<std::vector<std::vector<double>>>("aspect_ratios", {{0.5, 1.0, 2.0}}));
});
MZ_REGISTER_COMPONENT(MultiScaleRoIAlign, [](Args& a) {
  auto names = a.get<std::vector<std::string>>("featmap_names");
  auto size = pair_arg(a, "output_size", 0);
  return MultiScaleRoIAlign(std::make_shared<MultiScaleRoIAlignImpl>(
      names, size, a.get<std::int64_t>("sampling_ratio"), a.get<std::int64_t>("canonical_scale", 224),
      a.get<std::int64_t>("canonical_level", 4)));
});
MZ_REGISTER_COMPONENT(RPNHead, [](Args& a) {
  return RPNHead(a.get<std::int64_t>("in_channels"), a.get<std::int64_t>("num_anchors"),
                 a.get<std::int64_t>("conv_depth", 1));
});
MZ_REGISTER_COMPONENT(TwoMLPHead, [](Args& a) {
  return TwoMLPHead(a.get<std::int64_t>("in_channels"), a.get<std::int64_t>("representation_size"));
});
MZ_REGISTER_COMPONENT(FastRCNNPredictor, [](Args& a) {
  return FastRCNNPredictor(a.get<std::int64_t>("in_channels"), a.get<std::int64_t>("num_classes"));
});
MZ_REGISTER_COMPONENT(FasterRCNN, [](Args& a) {
  return FasterRCNN(a.get<Backbone>("backbone"), rcnn_options(a, RCNN::Faster));
});
MZ_REGISTER_COMPONENT(MaskRCNN, [](Args& a) { return MaskRCNN(a.get<Backbone>("backbone"), rcnn_options(a, RCNN::Mask)); });
MZ_REGISTER_COMPONENT(KeypointRCNN, [](Args& a) {
  return KeypointRCNN(a.get<Backbone>("backbone"), rcnn_options(a, RCNN::Keypoint));
});

MZ_REGISTER_COMPONENT(LastLevelMaxPool, [](Args&) { return LastLevelMaxPool(); });
MZ_REGISTER_COMPONENT(LastLevelP6P7, [](Args& a) {
  return LastLevelP6P7(a.get<std::int64_t>("in_channels"), a.get<std::int64_t>("out_channels"));
});
MZ_REGISTER_COMPONENT(FeaturePyramidNetwork, [](Args& a) {
  return FeaturePyramidNetwork(a.get<std::vector<std::int64_t>>("in_channels_list"), a.get<std::int64_t>("out_channels"),
                               extra_blocks(a), norm_layer_arg(a, "norm_layer", nullptr));
});
MZ_REGISTER_COMPONENT(BackboneWithFPN, [](Args& a) {
  auto backbone = a.get<std::shared_ptr<torch::nn::Module>>("backbone");
  const auto layers = a.get<std::map<std::string, std::string>>("return_layers");
  std::vector<std::pair<std::string, std::string>> return_layers(layers.begin(), layers.end());
  return BackboneWithFPN(backbone, return_layers, a.get<std::vector<std::int64_t>>("in_channels_list"),
                         a.get<std::int64_t>("out_channels"), extra_blocks(a), norm_layer_arg(a, "norm_layer", nullptr));
});
MZ_REGISTER_COMPONENT(resnet_fpn_backbone, [](Args& a) {
  return resnet_fpn_backbone(a.get<std::string>("backbone_name"), weights_arg(a, "weights"),
                             norm_layer_arg(a, "norm_layer", ops::frozen_batch_norm2d()),
                             a.get<std::int64_t>("trainable_layers", 3),
                             a.get<std::vector<std::int64_t>>("returned_layers", {}), extra_blocks(a));
});

MZ_REGISTER_COMPONENT(RetinaNet, [](Args& a) {
  return RetinaNet(a.get<Backbone>("backbone"), a.get<std::int64_t>("num_classes"),
                   single_stage_options<RetinaNetOptions>(a), a.get("anchor_generator", AnchorGenerator(nullptr)),
                   a.get("head", RetinaNetHead(nullptr)));
});
MZ_REGISTER_COMPONENT(RetinaNetHead, [](Args& a) {
  return RetinaNetHead(a.get<std::int64_t>("in_channels"), a.get<std::int64_t>("num_anchors"),
                       a.get<std::int64_t>("num_classes"), norm_layer_arg(a, "norm_layer", nullptr));
});
MZ_REGISTER_COMPONENT(FCOSHead, [](Args& a) {
  return FCOSHead(a.get<std::int64_t>("in_channels"), a.get<std::int64_t>("num_anchors"),
                  a.get<std::int64_t>("num_classes"), a.get<std::int64_t>("num_convs", 4));
});
MZ_REGISTER_COMPONENT(FCOS, [](Args& a) {
  return FCOS(a.get<Backbone>("backbone"), a.get<std::int64_t>("num_classes"), single_stage_options<FCOSOptions>(a),
              a.get("anchor_generator", AnchorGenerator(nullptr)), a.get("head", FCOSHead(nullptr)));
});

}  // namespace mz::spec
