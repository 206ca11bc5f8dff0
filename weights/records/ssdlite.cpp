// Weights records of SSDLite320 MobileNetV3-Large, torchvision 0.14.1 (checked by tests/oracle).
#include "weights/records.h"

namespace mz::data {
namespace {

// NOLINTNEXTLINE(cert-err58-cpp): registration at load time is the point.
const bool registered =
    add("detection", "ssdlite320_mobilenet_v3_large", "COCO_V1",
        {coco_detection("SSDLite320_MobileNet_V3_Large_Weights", "COCO_V1", "ssdlite320_mobilenet_v3_large_coco-a79551df.pth", 3440060, {{"box_map", 21.3}}, std::string(kDetectionRecipe) + "ssdlite320-mobilenetv3-large", kDetectionDocsV1)});

}  // namespace
}  // namespace mz::data
