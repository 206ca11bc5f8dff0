// Weights records of RetinaNet ResNet-50 FPN v1 and v2, torchvision 0.14.1 (checked by tests/oracle).
#include "weights/records/coco_detection.h"

namespace mz::data {
namespace {

// NOLINTNEXTLINE(cert-err58-cpp): registration at load time is the point.
const bool registered =
    add("detection", "retinanet_resnet50_fpn", "COCO_V1",
        {coco_detection("RetinaNet_ResNet50_FPN_Weights", "retinanet_resnet50_fpn_coco-eeacb38b.pth", 34014999, 36.4,
                        std::string(kDetectionRecipe) + "retinanet", kPaperDocs)}) &&
    add("detection", "retinanet_resnet50_fpn_v2", "COCO_V1",
        {coco_detection("RetinaNet_ResNet50_FPN_V2_Weights", "retinanet_resnet50_fpn_v2_coco-5905b1c5.pth", 38198935,
                        41.5, "https://github.com/pytorch/vision/pull/5756", kEnhancedDocs)});

}  // namespace
}  // namespace mz::data
