#include "modelzoo/detection/detection.h"

#include <string>

#include "modelzoo/errors.h"

namespace mz {
namespace {

void check_image(const torch::Tensor& image, const std::string& name) {
  if (image.dim() != 3 || image.size(0) != 3)
    throw UsageError(name, "an image must be 3 x H x W, got " + c10::str(image.sizes()));
  if (!image.is_floating_point())
    throw UsageError(name, std::string("an image must be floating point, got ") + c10::toString(image.scalar_type()));
  if (image.size(1) == 0 || image.size(2) == 0) throw UsageError(name, "an image must not be empty");
}

}  // namespace

std::vector<torch::Tensor> images_from_inputs(const TensorDict& inputs) {
  std::vector<torch::Tensor> images;
  if (inputs.contains("input")) {
    if (inputs.contains("input.0")) throw UsageError("input", "give either 'input' or 'input.0', 'input.1', ...");
    const torch::Tensor& batch = inputs.at("input");
    if (batch.dim() != 4) throw UsageError("input", "must be a batch [N, 3, H, W], got " + c10::str(batch.sizes()));
    for (int64_t i = 0; i < batch.size(0); ++i) {
      check_image(batch[i], "input");
      images.push_back(batch[i]);
    }
  }
  size_t numbered = 0;
  for (; inputs.contains("input." + std::to_string(numbered)); ++numbered) {
    const std::string name = "input." + std::to_string(numbered);
    check_image(inputs.at(name), name);
    images.push_back(inputs.at(name));
  }
  for (const auto& item : inputs)
    if (item.key().rfind("input.", 0) == 0 && numbered-- == 0)
      throw UsageError(item.key(), "images are numbered consecutively from input.0");
  if (images.empty()) throw UsageError("input", "no images: give 'input' [N, 3, H, W] or 'input.0', 'input.1', ...");
  return images;
}

TensorDict detections_to_dict(const std::vector<Detection>& detections) {
  TensorDict out;
  for (size_t i = 0; i < detections.size(); ++i) {
    const Detection& d = detections[i];
    const std::string n = "." + std::to_string(i);
    out.insert("boxes" + n, d.boxes);
    out.insert("labels" + n, d.labels);
    out.insert("scores" + n, d.scores);
    if (d.masks.defined()) out.insert("masks" + n, d.masks);
    if (d.keypoints.defined()) out.insert("keypoints" + n, d.keypoints);
    if (d.keypoints_scores.defined()) out.insert("keypoints_scores" + n, d.keypoints_scores);
  }
  return out;
}

}  // namespace mz
