// Helper for the images tests and benchmark (one process for many images, unlike mz preprocess,
// which batches and so needs same-size outputs):
//   mz_images_tool dump WEIGHT|decode OUT.safetensors IMAGE...   tensor "<i>" per image: the preset's
//                                                                output, or the uint8 [3, H, W] decode
//   mz_images_tool bench WEIGHT REPEAT IMAGE...                  decode + preset per image, best pass:
//                                                                {"images", "seconds", "images_per_s"}
#include <chrono>
#include <cstring>
#include <iostream>

#include "modelzoo/modelzoo.h"
#include "modelzoo/transforms/presets.h"

int main(int argc, char** argv) try {
  torch::set_num_threads(1);
  if (argc >= 4 && std::strcmp(argv[1], "dump") == 0) {
    const bool decode_only = std::strcmp(argv[2], "decode") == 0;
    mz::TensorDict out;
    for (int i = 4; i < argc; ++i) {
      out.insert(std::to_string(i - 4), decode_only ? mz::read_image(argv[i])
                                                          : mz::preprocess(mz::get_weight(argv[2]).transforms, argv[i]));
    }
    mz::save_safetensors(argv[3], out);
    return 0;
  }
  if (argc >= 5 && std::strcmp(argv[1], "bench") == 0) {
    const mz::Transforms& preset = mz::get_weight(argv[2]).transforms;
    const int repeat = std::atoi(argv[3]);
    double best = 1e30, checksum = 0;
    for (int r = 0; r < repeat; ++r) {
      const auto start = std::chrono::steady_clock::now();
      for (int i = 4; i < argc; ++i) checksum += mz::preprocess(preset, std::string(argv[i]))[0][0][0].item<float>();
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    const int n = argc - 4;
    std::cout << "{\"images\": " << n << ", \"seconds\": " << best << ", \"images_per_s\": " << n / best
              << ", \"checksum\": " << checksum << "}\n";
    return 0;
  }
  std::cerr << "usage: mz_images_tool dump WEIGHT|decode OUT.safetensors IMAGE... | bench WEIGHT REPEAT IMAGE...\n";
  return 2;
} catch (const std::exception& e) {
  std::cerr << "mz_images_tool: " << e.what() << "\n";
  return 1;
}
