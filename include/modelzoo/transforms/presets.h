// Preprocessing presets: the numbers torchvision 0.14's evaluation presets give for a PIL image.
//
//   auto w = mz::ResNet50_Weights::DEFAULT;
//   torch::Tensor x = w.transforms()(mz::read_image("cat.jpg"));    // float [3, 224, 224]
//   torch::Tensor b = mz::preprocess(w.transforms(), {"a.jpg", "b.png"});  // float [2, 3, 224, 224]
//
// mz::Transforms (the record's preset parameters, <modelzoo/weights.h>) is itself the callable:
//   ImageClassification   resize the shorter side to resize_size (PIL's antialiased bilinear or
//                         bicubic, bit-exact), center crop to crop_size (torchvision's rounding and
//                         zero padding), scale to [0, 1], normalise with mean and std
//   SemanticSegmentation  resize the shorter side to resize_size (520), scale, normalise
//   ObjectDetection       scale to [0, 1] only
// Input: uint8 [3, H, W] or a batch [N, 3, H, W]; output float32 of the same rank.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "modelzoo/transforms/image.h"
#include "modelzoo/weights.h"

namespace mz {

// A decoded image as a uint8 [3, H, W] tensor (copies the pixels).
torch::Tensor to_tensor(const Image& image);
// decode_image + to_tensor. Throws mz::ImageError naming the file.
torch::Tensor read_image(const std::string& path);

// Applies the preset straight to a decoded image (no intermediate tensors; what mz predict uses).
torch::Tensor preprocess(const Transforms& preset, const Image& image);
// Reads and preprocesses one file; JPEGs are decoded only where the preset reads (same numbers).
torch::Tensor preprocess(const Transforms& preset, const std::string& path);
// Reads, preprocesses and stacks images: float32 [N, 3, H, W]. Images must come out the same size
// (always true for ImageClassification).
torch::Tensor preprocess(const Transforms& preset, const std::vector<std::string>& paths);

}  // namespace mz
