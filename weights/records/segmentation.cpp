// Weights records of the segmentation builders, torchvision 0.14.1 (checked by tests/oracle).
#include "weights/records.h"

namespace mz::data {
namespace {

constexpr const char* kRecipe = "https://github.com/pytorch/vision/tree/main/references/segmentation#";
constexpr const char* kDocs =
    "These weights were trained on a subset of COCO, using only the 20 categories that are present in the "
    "Pascal VOC dataset.";

// One COCO_WITH_VOC_LABELS_V1 record: VOC categories, miou / pixel_acc, the SemanticSegmentation preset.
WeightsRecord voc(const char* enum_name, const char* file, std::int64_t num_params, double miou, double pixel_acc,
                  const char* recipe_anchor) {
  WeightsRecord r;
  r.enum_name = enum_name;
  r.value_name = "COCO_WITH_VOC_LABELS_V1";
  r.url = std::string("https://download.pytorch.org/models/") + file;
  r.transforms = semantic_segmentation(520);
  r.meta.num_params = num_params;
  r.meta.min_size = std::make_pair(1, 1);
  r.meta.categories = voc_categories();
  r.meta.metrics["COCO-val2017-VOC-labels"] = {{"miou", miou}, {"pixel_acc", pixel_acc}};
  r.meta.recipe = std::string(kRecipe) + recipe_anchor;
  r.meta.docs = kDocs;
  return r;
}

constexpr const char* kV1 = "COCO_WITH_VOC_LABELS_V1";

// NOLINTNEXTLINE(cert-err58-cpp): registration at load time is the point.
const bool registered =
    add("segmentation", "fcn_resnet50", kV1,
        {voc("FCN_ResNet50_Weights", "fcn_resnet50_coco-1167a1af.pth", 35322218, 60.5, 91.4, "fcn_resnet50")}) &&
    add("segmentation", "fcn_resnet101", kV1,
        {voc("FCN_ResNet101_Weights", "fcn_resnet101_coco-7ecb50ca.pth", 54314346, 63.7, 91.9,
             "deeplabv3_resnet101")}) &&
    add("segmentation", "deeplabv3_resnet50", kV1,
        {voc("DeepLabV3_ResNet50_Weights", "deeplabv3_resnet50_coco-cd0a2569.pth", 42004074, 66.4, 92.4,
             "deeplabv3_resnet50")}) &&
    add("segmentation", "deeplabv3_resnet101", kV1,
        {voc("DeepLabV3_ResNet101_Weights", "deeplabv3_resnet101_coco-586e9e4e.pth", 60996202, 67.4, 92.4,
             "fcn_resnet101")}) &&
    add("segmentation", "deeplabv3_mobilenet_v3_large", kV1,
        {voc("DeepLabV3_MobileNet_V3_Large_Weights", "deeplabv3_mobilenet_v3_large-fc3c493d.pth", 11029328, 60.3,
             91.2, "deeplabv3_mobilenet_v3_large")}) &&
    add("segmentation", "lraspp_mobilenet_v3_large", kV1,
        {voc("LRASPP_MobileNet_V3_Large_Weights", "lraspp_mobilenet_v3_large-d234d4ea.pth", 3221538, 57.9, 91.2,
             "lraspp_mobilenet_v3_large")});

}  // namespace
}  // namespace mz::data
