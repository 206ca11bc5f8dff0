// SSDLite (torchvision.models.detection.ssdlite): the MobileNet feature extractor with its extra
// blocks, the SSDLite head (depthwise prediction blocks), and ssdlite320_mobilenet_v3_large. The
// model class is mz::SSD.
#pragma once

#include <optional>
#include <vector>

#include "modelzoo/detection/ssd.h"
#include "modelzoo/models/mobilenetv3.h"

namespace mz {

// torchvision's SSDLiteHead: per level and head, a depthwise Conv2dNormActivation (ReLU6) and a 1x1
// convolution with bias, weights N(0, 0.03).
SSDHead ssdlite_head(const std::vector<std::int64_t>& in_channels, const std::vector<std::int64_t>& num_anchors,
                     std::int64_t num_classes, const ops::NormLayer& norm_layer);

// SSDLiteFeatureExtractorMobileNet: `features.0` = backbone[:c4_pos] + backbone[c4_pos].block[0] (C4's
// expansion), `features.1` = the rest of the backbone, then four extra blocks (1x1 -> depthwise 3x3
// stride 2 -> 1x1, ReLU6) of depths 512, 256, 256, 128 (times width_mult, at least min_depth).
class SSDLiteFeatureExtractorMobileNetImpl : public torch::nn::Module {
 public:
  SSDLiteFeatureExtractorMobileNetImpl(const torch::nn::Sequential& backbone, std::size_t c4_pos,
                                       const ops::NormLayer& norm_layer, double width_mult = 1.0,
                                       std::int64_t min_depth = 16);
  TensorDict forward(const torch::Tensor& x);
  torch::nn::Sequential features;
  torch::nn::ModuleList extra;

 private:
  std::vector<ops::SequentialBlock> blocks_;  // features.0, features.1, extra.0, ...
};
TORCH_MODULE(SSDLiteFeatureExtractorMobileNet);

// Python keyword arguments of ssdlite320_mobilenet_v3_large: the builder's, then SSD's with this
// builder's defaults (size is fixed at 320 x 320; norm_layer is BatchNorm2d(eps=0.001, momentum=0.03)).
struct SSDLite320MobileNetV3LargeOptions : SSDOptions {
  std::optional<std::int64_t> num_classes;  // default 91, or len(categories) with weights
  std::optional<MobileNet_V3_Large_Weights> weights_backbone = MobileNet_V3_Large_Weights::IMAGENET1K_V1;
  std::optional<std::int64_t> trainable_backbone_layers;  // 0..6, default 6
  SSDLite320MobileNetV3LargeOptions() {
    image_mean = {0.5, 0.5, 0.5};
    image_std = {0.5, 0.5, 0.5};
    score_thresh = 0.001;
    nms_thresh = 0.55;
    detections_per_img = 300;
    topk_candidates = 300;
  }
};
MZ_OPTIONS(SSDLite320MobileNetV3LargeOptions, MZ_SSD_BUILDER_FIELDS)

// The weights enum SSDLite320_MobileNet_V3_Large_Weights is generated into <modelzoo/weights_enums/detection.h>
// from the records in weights/records/ssdlite.cpp. Without backbone weights, the backbone has the
// reduced tail (as torchvision: reduced_tail = weights_backbone is None).
SSD ssdlite320_mobilenet_v3_large(std::optional<SSDLite320_MobileNet_V3_Large_Weights> weights = {},
                                  SSDLite320MobileNetV3LargeOptions options = {});

}  // namespace mz
