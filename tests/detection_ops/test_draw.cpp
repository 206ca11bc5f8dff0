// torchvision.utils' drawing against torchvision 0.14.1 + PIL 9.4 (make_cases.py), pixel for pixel:
// boxes, fills, labels, masks, keypoints and their connecting lines.
#include <filesystem>

#include "modelzoo/transforms/draw.h"
#include "modelzoo/transforms/presets.h"
#include "weights/records.h"
#include "tests/detection_ops/cases.h"

namespace {

const std::vector<std::string> kLabels = {"person", "traffic light", "N/A", "Zebra 12!", "a", "{~`|}", "dining table"};

std::vector<std::string> labels_for(int64_t n) {
  std::vector<std::string> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(kLabels[static_cast<size_t>(i) % kLabels.size()]);
  return out;
}

}  // namespace

TEST_CASE("draw_bounding_boxes gives torchvision's pixels: outlines, fills, labels, grayscale") {
  // colors and labels of make_cases.py's draw_boxes cases
  const std::vector<std::vector<mz::Rgb>> colors = {
      {}, {mz::color_from_string("red")}, {}, {mz::color_from_string("#0f8")},
      {mz::color_from_string("rgb(10, 20, 250)")}};
  const std::vector<bool> with_labels = {false, true, true, true, false};
  REQUIRE(count_cases("draw_boxes", "out") == 5);
  for (int i = 0; i < 5; ++i) {
    auto c = case_of("draw_boxes", i);
    CAPTURE(i);
    const torch::Tensor got =
        mz::draw_bounding_boxes(c("image"), c("boxes"), with_labels[i] ? labels_for(c("boxes").size(0)) : std::vector<std::string>{},
                                colors[i], c("fill").item<double>() != 0, static_cast<int64_t>(c("width").item<double>()));
    CHECK_SAME(got, c("out"));
    if (!same(got, c("out")) && got.sizes() == c("out").sizes())
      MESSAGE("pixels differing: " << (got != c("out")).any(0).sum().item<int64_t>());
  }
}

TEST_CASE("draw_segmentation_masks gives torchvision's pixels") {
  const std::vector<std::vector<mz::Rgb>> colors = {{}, {mz::color_from_string("blue")}, {}};
  REQUIRE(count_cases("draw_masks", "out") == 3);
  for (int i = 0; i < 3; ++i) {
    auto c = case_of("draw_masks", i);
    CHECK_SAME(mz::draw_segmentation_masks(c("image"), c("masks"), c("alpha").item<double>(), colors[i]), c("out"));
  }
}

TEST_CASE("draw_keypoints gives torchvision's discs and lines") {
  REQUIRE(count_cases("draw_keypoints", "out") == 7);
  for (int i = 0; i < 7; ++i) {
    auto c = case_of("draw_keypoints", i);
    CAPTURE(i);
    const std::vector<std::pair<int64_t, int64_t>> links = {{0, 1}, {1, 2}, {3, 4}, {4, 0}};
    CHECK_SAME(mz::draw_keypoints(c("image"), c("keypoints"),
                                  c("links").item<double>() != 0 ? links : std::vector<std::pair<int64_t, int64_t>>{},
                                  mz::Rgb{200, 30, 90}, static_cast<int64_t>(c("radius").item<double>()),
                                  static_cast<int64_t>(c("width").item<double>())),
               c("out"));
  }
}

TEST_CASE("draw_detection composes masks, labelled boxes and keypoints as mz predict --draw shows them") {
  auto c = case_of("draw_detection", 0);
  mz::Detection d;
  d.boxes = c("boxes"), d.labels = c("labels"), d.scores = c("scores"), d.masks = c("masks");
  d.keypoints = c("keypoints");
  CHECK_SAME(mz::draw_detection(c("image"), d, mz::data::coco_categories()), c("out"));
}

TEST_CASE("colours, palette and PNG files") {
  CHECK(mz::color_from_string("Red") == mz::Rgb{255, 0, 0});
  CHECK(mz::color_from_string("#abc") == mz::Rgb{0xaa, 0xbb, 0xcc});
  CHECK(mz::color_from_string("#102030") == mz::Rgb{0x10, 0x20, 0x30});
  CHECK(mz::color_from_string("rgb(1,2, 3)") == mz::Rgb{1, 2, 3});
  CHECK(mz::color_from_string("yellowgreen") == mz::Rgb{154, 205, 50});
  CHECK_THROWS_WITH_AS(mz::color_from_string("bluish"),
                       "bluish: unknown color specifier (a name such as 'red', '#rgb', '#rrggbb' or 'rgb(r, g, b)')",
                       mz::UsageError);
  const auto palette = mz::generate_color_palette(3);  // torchvision's _generate_color_palette(3)
  CHECK(palette[0] == mz::Rgb{0, 0, 0});
  CHECK(palette[1] == mz::Rgb{1, 127, 31});
  CHECK(palette[2] == mz::Rgb{2, 254, 62});

  const torch::Tensor image = torch::randint(0, 256, {3, 17, 23}, torch::kUInt8);
  const std::string path = mz::test::temp_path("drawn.png");
  mz::write_png(path, image);
  CHECK(torch::equal(mz::read_image(path), image));
  CHECK_THROWS_AS(mz::write_png(mz::test::temp_path("no/such/dir.png"), image), mz::ImageError);
  CHECK_THROWS_AS(mz::draw_bounding_boxes(image.to(torch::kFloat), torch::zeros({1, 4})), mz::UsageError);
  CHECK_THROWS_AS(mz::draw_bounding_boxes(image, torch::tensor({{5.f, 5.f, 1.f, 9.f}})), mz::UsageError);
  CHECK_THROWS_AS(mz::draw_segmentation_masks(image, torch::ones({2, 17, 22}, torch::kBool)), mz::UsageError);
}
