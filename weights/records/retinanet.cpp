// Weights records of RetinaNet ResNet-50 FPN v1 and v2, torchvision 0.14.1 (checked by tests/oracle).
#include "weights/records.h"

namespace mz::data {
namespace {

// NOLINTNEXTLINE(cert-err58-cpp): registration at load time is the point.
const bool registered =
    add("detection", "retinanet_resnet50_fpn", "COCO_V1",
        {coco_detection("RetinaNet_ResNet50_FPN_Weights", "COCO_V1", "retinanet_resnet50_fpn_coco-eeacb38b.pth", 34014999, {{"box_map", 36.4}},
                        std::string(kDetectionRecipe) + "retinanet", kDetectionDocsV1)}) &&
    add("detection", "retinanet_resnet50_fpn_v2", "COCO_V1",
        {coco_detection("RetinaNet_ResNet50_FPN_V2_Weights", "COCO_V1", "retinanet_resnet50_fpn_v2_coco-5905b1c5.pth", 38198935, {{"box_map", 41.5}}, "https://github.com/pytorch/vision/pull/5756", kDetectionDocsV2)});

}  // namespace
}  // namespace mz::data
