// Mask R-CNN (torchvision.models.detection.mask_rcnn): mz::MaskRCNN (<modelzoo/detection/faster_rcnn.h>)
// and its builders. Detections carry masks [N, 1, H, W] (probabilities, pasted into the image).
#pragma once

#include "modelzoo/detection/faster_rcnn.h"

namespace mz {

using MaskRCNNResNet50Options = RCNNBuilderOptions<ResNet50_Weights>;
using MaskRCNNResNet50V2Options = RCNNBuilderOptions<ResNet50_Weights, false, false>;

MaskRCNN maskrcnn_resnet50_fpn(std::optional<MaskRCNN_ResNet50_FPN_Weights> weights = {},
                               MaskRCNNResNet50Options options = {});
MaskRCNN maskrcnn_resnet50_fpn_v2(std::optional<MaskRCNN_ResNet50_FPN_V2_Weights> weights = {},
                                  MaskRCNNResNet50V2Options options = {});

}  // namespace mz
