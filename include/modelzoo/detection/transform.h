// torchvision.models.detection.transform: the batching transform in front of every detector
// (normalise, resize, pad to one batch) and the postprocessing that maps detections back to the
// input images' pixels.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>

#include <nlohmann/json_fwd.hpp>

#include "modelzoo/detection/detection.h"

namespace mz {

using ImageSize = std::array<std::int64_t, 2>;  // (height, width)

// min_size as torchvision's kwarg takes it: one size (320) or several ([640, 672, ...]).
struct SizeList : std::vector<std::int64_t> {
  using std::vector<std::int64_t>::vector;
};
void to_json(nlohmann::json& j, const SizeList& s);
void from_json(const nlohmann::json& j, SizeList& s);

// torchvision.models.detection.image_list.ImageList: padded images [N, C, H, W] and each image's size
// before padding.
struct ImageList {
  torch::Tensor tensors;
  std::vector<ImageSize> image_sizes;
};

// torchvision's GeneralizedRCNNTransform. In eval, images are resized so that their shorter side is
// min_size.back() and their longer side at most max_size (or to fixed_size, (width, height), when
// given: SSD), with torchvision's float32 arithmetic for the scale; then padded bottom-right with zeros
// to a multiple of size_divisible. In training, the shorter side is drawn from min_size.
class GeneralizedRCNNTransformImpl : public torch::nn::Module {
 public:
  GeneralizedRCNNTransformImpl(std::vector<std::int64_t> min_size, std::int64_t max_size, std::vector<double> image_mean,
                               std::vector<double> image_std, std::int64_t size_divisible = 32,
                               std::optional<std::array<std::int64_t, 2>> fixed_size = {});
  // Throws mz::UsageError for an empty list or an image that is not a 3 x H x W floating-point tensor.
  ImageList forward(const std::vector<torch::Tensor>& images);
  torch::Tensor normalize(const torch::Tensor& image) const;
  torch::Tensor resize(const torch::Tensor& image) const;
  torch::Tensor batch_images(const std::vector<torch::Tensor>& images) const;
  // Boxes (and keypoints, masks pasted into the image) from `image_sizes` to `original_sizes`.
  std::vector<Detection> postprocess(std::vector<Detection> result, const std::vector<ImageSize>& image_sizes,
                                     const std::vector<ImageSize>& original_sizes) const;
  void pretty_print(std::ostream& stream) const override;

  std::vector<std::int64_t> min_size;
  std::int64_t max_size;
  std::vector<double> image_mean, image_std;
  std::int64_t size_divisible;
  std::optional<std::array<std::int64_t, 2>> fixed_size;
};
TORCH_MODULE(GeneralizedRCNNTransform);

// The helpers of postprocess, as torchvision names them.
torch::Tensor resize_boxes(const torch::Tensor& boxes, const ImageSize& original_size, const ImageSize& new_size);
torch::Tensor resize_keypoints(const torch::Tensor& keypoints, const ImageSize& original_size,
                               const ImageSize& new_size);
// Masks [N, 1, M, M] of the boxes [N, 4] pasted into an image of `image_size`: [N, 1, H, W].
torch::Tensor paste_masks_in_image(const torch::Tensor& masks, const torch::Tensor& boxes, const ImageSize& image_size,
                                   std::int64_t padding = 1);

}  // namespace mz
