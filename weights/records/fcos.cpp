// Weights records of FCOS ResNet-50 FPN, torchvision 0.14.1 (checked by tests/oracle).
#include "weights/records/coco_detection.h"

namespace mz::data {
namespace {

// NOLINTNEXTLINE(cert-err58-cpp): registration at load time is the point.
const bool registered =
    add("detection", "fcos_resnet50_fpn", "COCO_V1",
        {coco_detection("FCOS_ResNet50_FPN_Weights", "fcos_resnet50_fpn_coco-99b0c9b7.pth", 32269600, 39.2,
                        std::string(kDetectionRecipe) + "fcos-resnet-50-fpn", kPaperDocs)});

}  // namespace
}  // namespace mz::data
