// Weights records of the Faster R-CNN builders, torchvision 0.14.1 (checked by tests/oracle).
#include "weights/records.h"

namespace mz::data {

WeightsRecord coco_detection(const char* enum_name, const char* value_name, const char* file, std::int64_t num_params,
                             std::map<std::string, double> metrics, const std::string& recipe, const char* docs,
                             const std::vector<std::string>& categories) {
  WeightsRecord r;
  r.enum_name = enum_name;
  r.value_name = value_name;
  r.url = std::string("https://download.pytorch.org/models/") + file;
  r.transforms.preset = "ObjectDetection";
  r.meta.num_params = num_params;
  r.meta.min_size = std::make_pair(1, 1);
  r.meta.categories = categories;
  r.meta.metrics["COCO-val2017"] = std::move(metrics);
  r.meta.recipe = recipe;
  r.meta.docs = normalize_space(docs);
  return r;
}

namespace {

const std::string kRecipe = kDetectionRecipe;

// NOLINTNEXTLINE(cert-err58-cpp): registration at load time is the point.
const bool registered =
    add("detection", "fasterrcnn_resnet50_fpn", "COCO_V1",
        {coco_detection("FasterRCNN_ResNet50_FPN_Weights", "COCO_V1", "fasterrcnn_resnet50_fpn_coco-258fb6c6.pth",
                        41755286, {{"box_map", 37.0}}, kRecipe + "faster-r-cnn-resnet-50-fpn", kDetectionDocsV1)}) &&
    add("detection", "fasterrcnn_resnet50_fpn_v2", "COCO_V1",
        {coco_detection("FasterRCNN_ResNet50_FPN_V2_Weights", "COCO_V1",
                        "fasterrcnn_resnet50_fpn_v2_coco-dd69338a.pth", 43712278, {{"box_map", 46.7}},
                        "https://github.com/pytorch/vision/pull/5763", kDetectionDocsV2)}) &&
    add("detection", "fasterrcnn_mobilenet_v3_large_fpn", "COCO_V1",
        {coco_detection("FasterRCNN_MobileNet_V3_Large_FPN_Weights", "COCO_V1",
                        "fasterrcnn_mobilenet_v3_large_fpn-fb6a3cc7.pth", 19386354, {{"box_map", 32.8}},
                        kRecipe + "faster-r-cnn-mobilenetv3-large-fpn", kDetectionDocsV1)}) &&
    add("detection", "fasterrcnn_mobilenet_v3_large_320_fpn", "COCO_V1",
        {coco_detection("FasterRCNN_MobileNet_V3_Large_320_FPN_Weights", "COCO_V1",
                        "fasterrcnn_mobilenet_v3_large_320_fpn-907ea3f9.pth", 19386354, {{"box_map", 22.8}},
                        kRecipe + "faster-r-cnn-mobilenetv3-large-320-fpn", kDetectionDocsV1)});

}  // namespace
}  // namespace mz::data
