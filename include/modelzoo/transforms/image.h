// Image decoding: JPEG (libjpeg-turbo) and PNG (libpng) to 8-bit RGB, as PIL's
// `Image.open(path).convert("RGB")` gives it.
//
//   mz::Image im = mz::decode_image("cat.jpg");      // {width, height, channels = 3, pixels (HWC)}
//   torch::Tensor t = mz::read_image("cat.jpg");     // uint8 [3, H, W] (<modelzoo/transforms/presets.h>)
//
// Conversions follow PIL: grayscale is replicated, palette looked up, alpha dropped (not composited),
// CMYK/YCCK JPEGs (Adobe-inverted as Photoshop writes them) converted with PIL's formula, 16-bit PNG
// samples keep their high byte (16-bit grayscale is clipped to 255, as PIL's mode "I" is).
// This part (decoding and resampling) is LibTorch-free, so it builds on its own for the fuzzer (tests/images/fuzz).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "modelzoo/errors.h"

namespace mz {

struct Image {
  int width = 0;
  int height = 0;
  int channels = 3;                 // always 3 (RGB) from the decoders below
  std::vector<std::uint8_t> pixels;  // row-major, interleaved: (y * width + x) * channels + c
};

struct DecodeOptions {
  // Larger images are refused (PIL's DecompressionBombError limit: 2 * 89478485 pixels).
  std::uint64_t max_pixels = 2ull * 89478485ull;
  // Optional: given the image size, the part {x, y, width, height} the caller will read. JPEG
  // decoding then skips the rest (IDCT, upsampling and colour conversion of unneeded blocks); those
  // pixels are left 0. Pixels inside the region are identical to a full decode.
  std::function<std::array<int, 4>(int width, int height)> region;
};

// Decodes a JPEG or PNG (recognised by its signature, not by the file name) to RGB.
// `name` is only used in error messages. Throws mz::ImageError, never crashes or exits.
Image decode_image(const std::uint8_t* data, std::size_t size, const std::string& name,
                   const DecodeOptions& options = {});
Image decode_image(const std::string& path, const DecodeOptions& options = {});

// PIL's Image.resize for 8-bit RGB (ImagingResample: separable, fixed point, filter support scaled
// by the downscale factor, i.e. antialiased), limited to the output window
// [x0, x0 + out_w) x [y0, y0 + out_h) of a full resize to (new_w, new_h). filter: "bilinear",
// "bicubic" or "nearest". Output pixels are bit-identical to PIL's for the same window.
Image resize_window(const Image& in, int new_w, int new_h, int x0, int y0, int out_w, int out_h,
                    const std::string& filter);
// The input pixels {x, y, width, height} that resize_window reads for the same arguments.
std::array<int, 4> resize_input_region(int in_w, int in_h, int new_w, int new_h, int x0, int y0, int out_w,
                                       int out_h, const std::string& filter);

}  // namespace mz
