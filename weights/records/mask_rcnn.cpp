// Weights records of the Mask R-CNN builders, torchvision 0.14.1 (checked by tests/oracle).
#include "weights/records.h"

namespace mz::data {
namespace {

// NOLINTNEXTLINE(cert-err58-cpp): registration at load time is the point.
const bool registered =
    add("detection", "maskrcnn_resnet50_fpn", "COCO_V1",
        {coco_detection("MaskRCNN_ResNet50_FPN_Weights", "COCO_V1", "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
                        44401393, {{"box_map", 37.9}, {"mask_map", 34.6}},
                        std::string(kDetectionRecipe) + "mask-r-cnn", kDetectionDocsV1)}) &&
    add("detection", "maskrcnn_resnet50_fpn_v2", "COCO_V1",
        {coco_detection("MaskRCNN_ResNet50_FPN_V2_Weights", "COCO_V1", "maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth",
                        46359409, {{"box_map", 47.4}, {"mask_map", 41.8}}, "https://github.com/pytorch/vision/pull/5773",
                        kDetectionDocsV2)});

}  // namespace
}  // namespace mz::data
