// The segmentation builders of torchvision.models.segmentation: FCN and DeepLabV3 over ResNet-50/101,
// DeepLabV3 and LR-ASPP over MobileNetV3-Large. The heads themselves take any backbone
// (<modelzoo/heads/segmentation.h>).
#pragma once

#include <optional>

#include "modelzoo/heads/segmentation.h"
#include "modelzoo/models/mobilenetv3.h"
#include "modelzoo/models/resnet.h"
#include "modelzoo/options.h"
#include "modelzoo/weights_enums/segmentation.h"

namespace mz {

// Python keyword arguments of the segmentation builders. weights_backbone defaults to the ImageNet
// weights, as in torchvision; it is ignored when the model's own weights are given.
template <class BackboneWeights>
struct SegmentationOptions {
  std::optional<std::int64_t> num_classes;  // default 21, or len(categories) with weights
  std::optional<bool> aux_loss;             // default off, on with weights
  std::optional<BackboneWeights> weights_backbone = BackboneWeights::IMAGENET1K_V1;
};
template <class W>
void to_json(nlohmann::json& j, const SegmentationOptions<W>& o) {
  j = {{"num_classes", o.num_classes}, {"aux_loss", o.aux_loss}, {"weights_backbone", o.weights_backbone}};
}
template <class W>
void from_json(const nlohmann::json& j, SegmentationOptions<W>& o) {
  j.at("num_classes").get_to(o.num_classes);
  j.at("aux_loss").get_to(o.aux_loss);
  j.at("weights_backbone").get_to(o.weights_backbone);
}
using ResNet50SegmentationOptions = SegmentationOptions<ResNet50_Weights>;
using ResNet101SegmentationOptions = SegmentationOptions<ResNet101_Weights>;
using MobileNetV3SegmentationOptions = SegmentationOptions<MobileNet_V3_Large_Weights>;

// The weights enums (FCN_ResNet50_Weights, FCN_ResNet101_Weights, ...) are generated into <modelzoo/weights_enums/segmentation.h>
// from the records in weights/records/segmentation.cpp.

FCN fcn_resnet50(std::optional<FCN_ResNet50_Weights> weights = {}, ResNet50SegmentationOptions options = {});
FCN fcn_resnet101(std::optional<FCN_ResNet101_Weights> weights = {}, ResNet101SegmentationOptions options = {});
DeepLabV3 deeplabv3_resnet50(std::optional<DeepLabV3_ResNet50_Weights> weights = {},
                             ResNet50SegmentationOptions options = {});
DeepLabV3 deeplabv3_resnet101(std::optional<DeepLabV3_ResNet101_Weights> weights = {},
                              ResNet101SegmentationOptions options = {});
DeepLabV3 deeplabv3_mobilenet_v3_large(std::optional<DeepLabV3_MobileNet_V3_Large_Weights> weights = {},
                                       MobileNetV3SegmentationOptions options = {});
// LR-ASPP has no auxiliary classifier: aux_loss = true is an error.
LRASPP lraspp_mobilenet_v3_large(std::optional<LRASPP_MobileNet_V3_Large_Weights> weights = {},
                                 MobileNetV3SegmentationOptions options = {});

}  // namespace mz
