// libFuzzer entry point: the JPEG/PNG decoders either return a consistent RGB image or throw
// mz::ImageError; anything else (crash, sanitizer report, other exception, exit) is a bug.
#include <cstdlib>

#include "modelzoo/image.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  mz::DecodeOptions options;
  options.max_pixels = 1u << 22;  // keep allocations inside libFuzzer's RSS limit
  try {
    const mz::Image im = mz::decode_image(data, size, "fuzz-input", options);
    if (im.width <= 0 || im.height <= 0 || im.channels != 3 ||
        im.pixels.size() != static_cast<std::size_t>(im.width) * im.height * 3)
      std::abort();
    unsigned sum = 0;  // touch every byte (MSan/ASan see uninitialised or out-of-bounds data)
    for (std::uint8_t v : im.pixels) sum += v;
    (void)sum;
  } catch (const mz::ImageError& e) {
    if (e.file() != "fuzz-input") std::abort();
  }
  return 0;
}
