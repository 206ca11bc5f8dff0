// libFuzzer entry point: the JPEG/PNG decoders either return a consistent RGB image or throw
// mz::ImageError; anything else (crash, sanitizer report, other exception, exit) is a bug. A second
// decode limited to a region (what the presets do) must give the same pixels inside that region.
#include <cstdlib>
#include <optional>

#include "modelzoo/transforms/image.h"

namespace {
std::optional<mz::Image> decode(const std::uint8_t* data, std::size_t size, const mz::DecodeOptions& options) {
  try {
    mz::Image im = mz::decode_image(data, size, "fuzz-input", options);
    if (im.width <= 0 || im.height <= 0 || im.channels != 3 ||
        im.pixels.size() != static_cast<std::size_t>(im.width) * im.height * 3)
      std::abort();
    return im;
  } catch (const mz::ImageError& e) {
    if (e.file() != "fuzz-input") std::abort();
    return std::nullopt;
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mz::DecodeOptions options;
  options.max_pixels = 1u << 16;  // 256x256: larger images reach no new code, they only slow the campaign
  const std::optional<mz::Image> full = decode(data, size, options);
  options.region = [](int w, int h) { return std::array<int, 4>{w / 3, h / 4, w / 3 + 1, h / 2}; };
  const std::optional<mz::Image> part = decode(data, size, options);
  if (full && part) {
    if (full->width != part->width || full->height != part->height) std::abort();
    const int w = full->width, h = full->height;
    for (int y = h / 4; y < h / 4 + h / 2 && y < h; ++y)
      for (int x = w / 3; x < w / 3 + w / 3 + 1 && x < w; ++x)
        for (int c = 0; c < 3; ++c) {
          const std::size_t i = (static_cast<std::size_t>(y) * w + x) * 3 + c;
          if (full->pixels[i] != part->pixels[i]) std::abort();
        }
  }
  return 0;
}
