// Shared pieces of the weights records: category lists, presets, and the helper that writes one
// ImageNet classification record per line. Used only by weights/records/<family>.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "modelzoo/weights.h"

namespace mz::data {

const std::vector<std::string>& imagenet_categories();
const std::vector<std::string>& voc_categories();
const std::vector<std::string>& coco_categories();
const std::vector<std::string>& coco_person_categories();      // Keypoint R-CNN: "no person", "person"
const std::vector<std::string>& coco_person_keypoint_names();  // its 17 keypoint_names

inline const std::vector<double> kImageNetMean = {0.485, 0.456, 0.406};
inline const std::vector<double> kImageNetStd = {0.229, 0.224, 0.225};

// torchvision's ImageClassification preset (defaults: resize 256, bilinear, ImageNet mean/std).
Transforms image_classification(std::int64_t crop_size, std::int64_t resize_size = 256,
                                const char* interpolation = "bilinear");
// torchvision's SemanticSegmentation preset (resize 520, ImageNet mean/std).
Transforms semantic_segmentation(std::int64_t resize_size = 520);

// One ImageNet-1K classification record: categories, min_size (1, 1) and acc@1/acc@5.
WeightsRecord imagenet(const char* full_name, const char* url, Transforms transforms, std::int64_t num_params,
                       double acc1, double acc5, const char* recipe, const char* docs);

// The hex digits torch.hub checks for a URL: the run after the first '-' of the file name that is
// followed by '.' (its HASH_REGEX), "resnet50-11ad3fa6.pth" -> "11ad3fa6",
// "mnasnet0.5_top1_67.823-3ffadce67e.pth" -> "3ffadce67e"; "" when there is none.
std::string hash_prefix_of(const std::string& url);

// Registers the records of one builder: sets model and task, marks `default_value` as DEFAULT and
// derives hash_prefix from the URL (hash_prefix_of).
// Returns true so that a file can register at static-initialisation time:
//   const bool registered = add("classification", "resnet50", "IMAGENET1K_V2", {...});
bool add(const char* task, const char* model, const char* default_value, std::vector<WeightsRecord> records);

// One COCO detection record (torchvision.models.detection): the ObjectDetection preset, min_size (1, 1),
// `categories`, metrics on COCO-val2017, recipe and docs. Defined in weights/records/faster_rcnn.cpp.
WeightsRecord coco_detection(const char* enum_name, const char* value_name, const char* file, std::int64_t num_params,
                             std::map<std::string, double> metrics, const std::string& recipe, const char* docs,
                             const std::vector<std::string>& categories = coco_categories());
// Recipes and docs the detection weights share.
inline constexpr const char* kDetectionRecipe = "https://github.com/pytorch/vision/tree/main/references/detection#";
inline constexpr const char* kDetectionDocsV1 =
    "These weights were produced by following a similar training recipe as on the paper.";
inline constexpr const char* kDetectionDocsV2 =
    "These weights were produced using an enhanced training recipe to boost the model accuracy.";

// Whitespace-normalised text (records store docs this way).
std::string normalize_space(const std::string& text);

}  // namespace mz::data

namespace mz::data {
// Applies a small edit to a record (for the few that differ from their family's pattern).
template <class Edit>
WeightsRecord with(WeightsRecord r, Edit edit) {
  edit(r);
  return r;
}
}  // namespace mz::data
