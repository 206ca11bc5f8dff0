// Weights records of SSD300 VGG16, torchvision 0.14.1 (checked by tests/oracle).
#include "weights/records.h"

namespace mz::data {
namespace {

// NOLINTNEXTLINE(cert-err58-cpp): registration at load time is the point.
const bool registered = add("detection", "ssd300_vgg16", "COCO_V1",
                            {coco_detection("SSD300_VGG16_Weights", "COCO_V1", "ssd300_vgg16_coco-b556d3b4.pth", 35641826, {{"box_map", 25.1}},
                                            std::string(kDetectionRecipe) + "ssd300-vgg16", kDetectionDocsV1)});

}  // namespace
}  // namespace mz::data
