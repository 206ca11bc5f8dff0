// The one record shape of torchvision's COCO detection weights: COCO's 91 categories, min_size (1, 1),
// box_map on COCO-val2017, the ObjectDetection preset. Used by the single-stage detector records.
#pragma once

#include <string>

#include "weights/records.h"

namespace mz::data {

inline WeightsRecord coco_detection(const char* enum_name, const char* file, std::int64_t num_params,
                                    double box_map, std::string recipe, const char* docs) {
  WeightsRecord r;
  r.enum_name = enum_name;
  r.value_name = "COCO_V1";
  r.url = std::string("https://download.pytorch.org/models/") + file;
  r.transforms.preset = "ObjectDetection";
  r.meta.num_params = num_params;
  r.meta.min_size = std::make_pair(1, 1);
  r.meta.categories = coco_categories();
  r.meta.metrics["COCO-val2017"] = {{"box_map", box_map}};
  r.meta.recipe = std::move(recipe);
  r.meta.docs = docs;
  return r;
}

inline constexpr const char* kDetectionRecipe = "https://github.com/pytorch/vision/tree/main/references/detection#";
inline constexpr const char* kPaperDocs =
    "These weights were produced by following a similar training recipe as on the paper.";
inline constexpr const char* kEnhancedDocs =
    "These weights were produced using an enhanced training recipe to boost the model accuracy.";

}  // namespace mz::data
