// Weights records of FCOS ResNet-50 FPN, torchvision 0.14.1 (checked by tests/oracle).
#include "weights/records.h"

namespace mz::data {
namespace {

// NOLINTNEXTLINE(cert-err58-cpp): registration at load time is the point.
const bool registered =
    add("detection", "fcos_resnet50_fpn", "COCO_V1",
        {coco_detection("FCOS_ResNet50_FPN_Weights", "COCO_V1", "fcos_resnet50_fpn_coco-99b0c9b7.pth", 32269600, {{"box_map", 39.2}},
                        std::string(kDetectionRecipe) + "fcos-resnet-50-fpn", kDetectionDocsV1)});

}  // namespace
}  // namespace mz::data
