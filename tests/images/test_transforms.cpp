// The callable preset (w.transforms()(img)) and the image API, against torchvision's numbers.
// MZ_IMAGES_DATA: the directory gen_images.py wrote (reference.safetensors); MZ_IMAGES_SRC: tests/images.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>

#include "modelzoo/modelzoo.h"
#include "modelzoo/transforms/presets.h"

namespace {
std::string env(const char* name) {
  const char* v = std::getenv(name);
  REQUIRE_MESSAGE(v, name << " is not set");
  return v;
}
}  // namespace

TEST_CASE("weights.transforms() is a callable preset giving torchvision's numbers") {
  const std::string sample = env("MZ_IMAGES_SRC") + "/sample.png";
  const auto w = mz::ResNet50_Weights::IMAGENET1K_V2;
  const torch::Tensor img = mz::read_image(sample);
  CHECK((img.sizes() == torch::IntArrayRef({3, 240, 320})));
  CHECK((img.scalar_type() == torch::kUInt8));
  const torch::Tensor x = w.transforms()(img);
  REQUIRE((x.sizes() == torch::IntArrayRef({3, 224, 224})));
  CHECK((x.scalar_type() == torch::kFloat32));
  CHECK((w.transforms().crop_size == 224));  // still a plain record too
  const torch::Tensor ref = mz::Checkpoint(env("MZ_IMAGES_DATA") + "/reference.safetensors").tensor("input");
  CHECK(((x - ref).abs().max().item<double>() < 1e-5));

  // A batch gives each image's result; the file path API gives the same numbers.
  const torch::Tensor batch = w.transforms()(torch::stack({img, img.flip(2)}));
  REQUIRE((batch.sizes() == torch::IntArrayRef({2, 3, 224, 224})));
  CHECK(torch::equal(batch[0], x));
  CHECK(torch::equal(batch[1], w.transforms()(img.flip(2).contiguous())));
  CHECK(torch::equal(mz::preprocess(w.transforms(), std::vector<std::string>{sample})[0], x));
}

TEST_CASE("segmentation and detection presets") {
  const torch::Tensor img = mz::read_image(env("MZ_IMAGES_SRC") + "/sample.png");
  mz::Transforms seg{"SemanticSegmentation", std::nullopt, 520, {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}, "bilinear"};
  CHECK((seg(img).sizes() == torch::IntArrayRef({3, 520, 693})));  // shorter side 520, int(520 * 320 / 240)
  mz::Transforms det{"ObjectDetection", std::nullopt, std::nullopt, {}, {}, "bilinear"};
  CHECK(torch::equal(det(img), img.to(torch::kFloat32) / 255));
}

TEST_CASE("preset and image errors are typed and name their subject") {
  const auto& t = mz::ResNet50_Weights::IMAGENET1K_V2.transforms();
  CHECK_THROWS_AS(t(torch::zeros({3, 8, 8}, torch::kFloat32)), mz::UsageError);
  CHECK_THROWS_AS(t(torch::zeros({4, 8, 8}, torch::kUInt8)), mz::UsageError);
  mz::Transforms bad = t;
  bad.preset = "VideoClassification";
  CHECK_THROWS_WITH_AS(bad(torch::zeros({3, 8, 8}, torch::kUInt8)),
                       "VideoClassification: unsupported preset (ImageClassification, SemanticSegmentation, ObjectDetection)",
                       mz::UsageError);
  const std::uint8_t text[] = "hello";
  CHECK_THROWS_WITH_AS(mz::decode_image(text, 5, "mem.bin"), "mem.bin: not a JPEG or PNG image (unrecognised signature)",
                       mz::ImageError);
  const std::uint8_t jpeg_start[] = {0xff, 0xd8, 0xff, 0xe0, 0x00};
  CHECK_THROWS_AS(mz::decode_image(jpeg_start, sizeof jpeg_start, "cut.jpg"), mz::ImageError);
  CHECK_THROWS_WITH_AS(mz::read_image("/nonexistent/x.png"), "/nonexistent/x.png: cannot open: No such file or directory",
                       mz::ImageError);
  try {
    mz::read_image("/nonexistent/x.png");
  } catch (const mz::Error& e) {
    CHECK(e.exit_code() == 7);
  }
}

TEST_CASE("a region decode equals the full decode inside the region, even with libjpeg's block smoothing") {
  // A progressive JPEG whose scans are incomplete (found by the images fuzz target): libjpeg smooths its blocks
  // with their neighbours two blocks away, which a margin of one block once cut off (pixels 1 apart).
  std::ifstream f(env("MZ_IMAGES_SRC") + "/progressive_damaged.jpg", std::ios::binary);
  const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  REQUIRE(bytes.size() == 4455);
  mz::DecodeOptions options;
  const mz::Image full = mz::decode_image(bytes.data(), bytes.size(), "progressive_damaged.jpg", options);
  options.region = [](int w, int h) { return std::array<int, 4>{w / 3, h / 4, w / 3 + 1, h / 2}; };
  const mz::Image part = mz::decode_image(bytes.data(), bytes.size(), "progressive_damaged.jpg", options);
  REQUIRE((full.width == 194 && full.height == 71 && part.width == 194 && part.height == 71));
  int differ = 0;
  for (int y = 71 / 4; y < 71 / 4 + 71 / 2; ++y)
    for (int x = 194 / 3; x < 2 * (194 / 3) + 1; ++x)
      for (int c = 0; c < 3; ++c) differ += full.pixels[(y * 194 + x) * 3 + c] != part.pixels[(y * 194 + x) * 3 + c];
  CHECK(differ == 0);
}
