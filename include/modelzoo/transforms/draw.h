// Drawing detections onto images, as torchvision 0.14.1's torchvision.utils does with PIL 9.4, and
// writing PNGs:
//   torch::Tensor img = mz::read_image("street.jpg");                       // uint8 [3, H, W]
//   img = mz::draw_bounding_boxes(img, d.boxes, {"person", "car"}, {}, false, 2);
//   img = mz::draw_segmentation_masks(img, d.masks.squeeze(1) > 0.5, 0.5);
//   mz::write_png("out.png", img);
// Every function gives torchvision's pixels exactly (PIL's rectangles, RGBA fills, default bitmap font,
// wide lines and Bresenham lines), except draw_keypoints' discs for radii 4, 6 and above 7, whose edges
// can differ by a few pixels.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/types.h>

#include "modelzoo/detection/detection.h"

namespace mz {

using Rgb = std::array<std::uint8_t, 3>;

// PIL's ImageColor.getrgb for colour names ("red", case-insensitive), "#rgb", "#rrggbb" and
// "rgb(r, g, b)". Throws mz::UsageError naming the string.
Rgb color_from_string(const std::string& color);
// torchvision's default colours: object i gets (i * (2^25 - 1, 2^15 - 1, 2^21 - 1)) % 255.
std::vector<Rgb> generate_color_palette(std::int64_t num_objects);

// image: uint8 [1 or 3, H, W]; boxes [N, 4] (x1, y1, x2, y2) in pixels (truncated to integers);
// labels: none or one per box; colors: none (the default palette), one for all boxes, or one per box.
// fill paints the boxes at alpha 100/255. Returns uint8 [3, H, W] (the input unchanged when N = 0).
torch::Tensor draw_bounding_boxes(const torch::Tensor& image, const torch::Tensor& boxes,
                                  const std::vector<std::string>& labels = {}, const std::vector<Rgb>& colors = {},
                                  bool fill = false, std::int64_t width = 1);

// image: uint8 [3, H, W]; masks: bool [N, H, W] or [H, W]; colors as for boxes.
// out = image * (1 - alpha) + painted * alpha, truncated to uint8.
torch::Tensor draw_segmentation_masks(const torch::Tensor& image, const torch::Tensor& masks, double alpha = 0.8,
                                      const std::vector<Rgb>& colors = {});

// image: uint8 [3, H, W]; keypoints [N, K, 2 or more] (x, y, ...), truncated to integers. Each point is a
// disc of `radius` in `color` (none drawn without a colour, as torchvision's colors=None; PIL's exact
// shape for radii 0-3, 5 and 7); each connectivity pair (i, j) a white line of `width` pixels.
torch::Tensor draw_keypoints(const torch::Tensor& image, const torch::Tensor& keypoints,
                             const std::vector<std::pair<std::int64_t, std::int64_t>>& connectivity = {},
                             std::optional<Rgb> color = {}, std::int64_t radius = 2, std::int64_t width = 3);

// One image's detections drawn as `mz predict --draw` does, with the functions above: masks (> 0.5) at
// alpha 0.5, then boxes 2 pixels wide labelled "<category> <score with 2 decimals>", then keypoints
// (blue discs of radius 3, joined by COCO's person skeleton when there are 17), each object in the
// colour generate_color_palette(categories.size() + 1) gives its label.
torch::Tensor draw_detection(const torch::Tensor& image, const Detection& detection,
                             const std::vector<std::string>& categories);

// An 8-bit RGB (or grayscale, for [1, H, W]) PNG of a uint8 [3 or 1, H, W] tensor. Throws mz::ImageError
// naming the file.
void write_png(const std::string& path, const torch::Tensor& image);

}  // namespace mz
