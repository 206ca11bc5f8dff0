// Keypoint R-CNN (torchvision.models.detection.keypoint_rcnn): mz::KeypointRCNN
// (<modelzoo/detection/faster_rcnn.h>) and its builder. Detections carry keypoints [N, K, 3] (x, y, 1)
// and keypoints_scores [N, K].
#pragma once

#include "modelzoo/detection/faster_rcnn.h"

namespace mz {

// num_classes defaults to 2 and num_keypoints to 17 (forced by the weights).
using KeypointRCNNResNet50Options = RCNNBuilderOptions<ResNet50_Weights, true>;

KeypointRCNN keypointrcnn_resnet50_fpn(std::optional<KeypointRCNN_ResNet50_FPN_Weights> weights = {},
                                       KeypointRCNNResNet50Options options = {});

}  // namespace mz
