// Helper for the images tests and benchmark (one process for many images, unlike mz preprocess,
// which batches and so needs same-size outputs):
//   mz_images_tool dump WEIGHT|decode OUT.safetensors IMAGE...   tensor "<i>" per image: the preset's
//                                                                output, or the uint8 [3, H, W] decode
//   mz_images_tool bench WEIGHT REPEAT IMAGE...                  decode + preset per image, best pass:
//                                                                {"images", "seconds", "images_per_s"}
//   mz_images_tool corpus WEIGHT OUT.safetensors IMAGE...        per image and stage (decode, preset),
//                                                                never stopping: tensor "<i>.<stage>",
//                                                                or a stdout line {"index", "stage",
//                                                                "error", "type"}
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
  if (argc >= 4 && std::strcmp(argv[1], "corpus") == 0) {
    const mz::Transforms& preset = mz::get_weight(argv[2]).transforms;
    mz::TensorDict out;
    for (int i = 4; i < argc; ++i) {
      const std::string index = std::to_string(i - 4);
      for (const char* stage : {"decode", "preset"}) {
        try {
          const std::string path = argv[i];
          out.insert(index + "." + stage, std::strcmp(stage, "decode") == 0 ? mz::read_image(path)
                                                                             : mz::preprocess(preset, path));
        } catch (const std::exception& e) {
          const bool typed = dynamic_cast<const mz::ImageError*>(&e) != nullptr;
          std::cout << nlohmann::json{{"index", i - 4}, {"stage", stage}, {"error", e.what()},
                                      {"type", typed ? "ImageError" : "other"}}
                    << std::endl;
        }
      }
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
  std::cerr << "usage: mz_images_tool dump WEIGHT|decode OUT.safetensors IMAGE... | bench WEIGHT REPEAT IMAGE... | "
               "corpus WEIGHT OUT.safetensors IMAGE...\n";
  return 2;
} catch (const std::exception& e) {
  std::cerr << "mz_images_tool: " << e.what() << "\n";
  return 1;
}
