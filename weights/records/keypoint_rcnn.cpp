// Weights records of the Keypoint R-CNN builder, torchvision 0.14.1 (checked by tests/oracle): COCO's
// person categories and its 17 keypoint_names (meta.extra), COCO_LEGACY and COCO_V1.
#include "weights/records.h"

namespace mz::data {
namespace {

WeightsRecord keypoint(const char* value, const char* file, double box_map, double kp_map, const std::string& recipe,
                       const char* docs) {
  WeightsRecord r = coco_detection("KeypointRCNN_ResNet50_FPN_Weights", value, file, 59137258,
                                   {{"box_map", box_map}, {"kp_map", kp_map}}, recipe, docs, coco_person_categories());
  r.meta.extra["keypoint_names"] = coco_person_keypoint_names();
  return r;
}

// NOLINTNEXTLINE(cert-err58-cpp): registration at load time is the point.
const bool registered = add(
    "detection", "keypointrcnn_resnet50_fpn", "COCO_V1",
    {keypoint("COCO_LEGACY", "keypointrcnn_resnet50_fpn_coco-9f466800.pth", 50.6, 61.1,
              "https://github.com/pytorch/vision/issues/1606",
              "These weights were produced by following a similar training recipe as on the paper but use a "
              "checkpoint from an early epoch."),
     keypoint("COCO_V1", "keypointrcnn_resnet50_fpn_coco-fc266e95.pth", 54.6, 65.0,
              std::string(kDetectionRecipe) + "keypoint-r-cnn", kDetectionDocsV1)});

}  // namespace
}  // namespace mz::data
