// Preprocessing presets (torchvision 0.14 transforms/_presets.py applied to a PIL image).
//
// The pixel work is LibTorch-free in weights/transforms/image.cpp (mz::resize_window, PIL's resampling);
// here the presets decide sizes, crop windows and padding, and write normalised float tensors.
#include "modelzoo/transforms/presets.h"

#include <algorithm>
#include <cmath>
#include <tuple>

namespace mz {

namespace {

// torchvision's resize of the shorter side: int(size * long / short) for the longer one.
std::pair<int, int> shorter_side_size(int w, int h, std::int64_t size) {
  const bool portrait = w <= h;
  const std::int64_t shorter = portrait ? w : h, longer = portrait ? h : w;
  const auto new_long = static_cast<std::int64_t>(static_cast<double>(size * longer) / static_cast<double>(shorter));
  return portrait ? std::pair<int, int>(int(size), int(new_long)) : std::pair<int, int>(int(new_long), int(size));
}

// Writes float32 [3, h, w] at `out` from an RGB window: (v / 255 - mean) / std, as
// convert_image_dtype + normalize compute it.
struct Normaliser {
  float lut[3][256];
  explicit Normaliser(const Transforms& t, bool normalise) {
    for (int c = 0; c < 3; ++c) {
      const float mean = normalise ? static_cast<float>(t.mean.at(c)) : 0.f;
      const float sd = normalise ? static_cast<float>(t.std.at(c)) : 1.f;
      for (int v = 0; v < 256; ++v) lut[c][v] = (static_cast<float>(v) / 255.f - mean) / sd;
    }
  }
};

void check_preset(const Transforms& t) {
  if (t.preset != "ImageClassification" && t.preset != "SemanticSegmentation" && t.preset != "ObjectDetection")
    throw UsageError(t.preset.empty() ? "transforms" : t.preset,
                     "unsupported preset (ImageClassification, SemanticSegmentation, ObjectDetection)");
  if (t.preset != "ObjectDetection" && (t.mean.size() != 3 || t.std.size() != 3))
    throw UsageError(t.preset, "preset needs 3 mean and 3 std values");
  if (t.preset == "ImageClassification" && !t.crop_size) throw UsageError(t.preset, "preset has no crop_size");
}

Image image_from_chw(const torch::Tensor& t) {
  if (t.dim() != 3 || t.size(0) != 3 || t.scalar_type() != torch::kUInt8)
    throw UsageError("preset input", "expects a uint8 [3, H, W] image or [N, 3, H, W] batch");
  const torch::Tensor hwc = t.permute({1, 2, 0}).contiguous().cpu();
  Image im{static_cast<int>(t.size(2)), static_cast<int>(t.size(1)), 3, {}};
  im.pixels.assign(hwc.data_ptr<std::uint8_t>(), hwc.data_ptr<std::uint8_t>() + hwc.numel());
  return im;
}

}  // namespace

torch::Tensor to_tensor(const Image& image) {
  torch::Tensor hwc = torch::empty({image.height, image.width, image.channels}, torch::kUInt8);
  std::copy(image.pixels.begin(), image.pixels.end(), hwc.data_ptr<std::uint8_t>());
  return hwc.permute({2, 0, 1}).contiguous();
}

torch::Tensor read_image(const std::string& path) { return to_tensor(decode_image(path)); }

namespace {

// Where the preset's output comes from: the resize (new_w x new_h), the window of it that is
// computed (x0, y0, win_w, win_h) and where that window lands in the output (off_x, off_y).
struct Geometry {
  bool resize = false;
  int new_w = 0, new_h = 0, x0 = 0, y0 = 0, win_w = 0, win_h = 0, out_w = 0, out_h = 0, off_x = 0, off_y = 0;
};

Geometry geometry(const Transforms& t, int w, int h) {
  Geometry g;
  g.new_w = g.win_w = g.out_w = w;
  g.new_h = g.win_h = g.out_h = h;
  if (t.preset == "ObjectDetection") return g;
  const bool classify = t.preset == "ImageClassification";
  const std::int64_t size = t.resize_size.value_or(classify ? 256 : 520);
  std::tie(g.new_w, g.new_h) = shorter_side_size(w, h, size);
  g.win_w = g.out_w = g.new_w;
  g.win_h = g.out_h = g.new_h;
  if (classify) {
    // torchvision's center_crop: zero padding when the crop is larger, then
    // top = int(round((h - crop) / 2.0)) with Python's round half to even.
    g.out_w = g.out_h = static_cast<int>(*t.crop_size);
    auto place = [](int size, int crop, int& src0, int& dst0, int& n) {
      const int pad_before = crop > size ? (crop - size) / 2 : 0;
      const int padded = crop > size ? crop : size;
      const int top = static_cast<int>(std::nearbyint((padded - crop) / 2.0)) - pad_before;
      src0 = std::max(0, top);
      dst0 = src0 - top;
      n = std::min(size, top + crop) - src0;
    };
    place(g.new_w, g.out_w, g.x0, g.off_x, g.win_w);
    place(g.new_h, g.out_h, g.y0, g.off_y, g.win_h);
  }
  g.resize = !(g.new_w == w && g.new_h == h && g.x0 == 0 && g.y0 == 0 && g.win_w == w && g.win_h == h);
  return g;
}

}  // namespace

torch::Tensor preprocess(const Transforms& t, const Image& im) {
  check_preset(t);
  if (im.width <= 0 || im.height <= 0 || im.channels != 3) throw UsageError("preset input", "expects a non-empty RGB image");
  const Normaliser norm(t, t.preset != "ObjectDetection");
  const Geometry g = geometry(t, im.width, im.height);
  const Image resized = g.resize ? resize_window(im, g.new_w, g.new_h, g.x0, g.y0, g.win_w, g.win_h, t.interpolation) : Image{};
  const Image& window = g.resize ? resized : im;
  torch::Tensor out = torch::empty({3, g.out_h, g.out_w}, torch::kFloat32);
  float* o = out.data_ptr<float>();
  const std::size_t plane = static_cast<std::size_t>(g.out_w) * g.out_h;
  if (window.width != g.out_w || window.height != g.out_h)  // padded: zero pixels, normalised
    for (int c = 0; c < 3; ++c) std::fill(o + c * plane, o + (c + 1) * plane, norm.lut[c][0]);
  for (int y = 0; y < window.height; ++y) {
    const std::uint8_t* p = &window.pixels[static_cast<std::size_t>(y) * window.width * 3];
    float* r = o + static_cast<std::size_t>(y + g.off_y) * g.out_w + g.off_x;
    float* gr = r + plane;
    float* b = gr + plane;
    for (int x = 0; x < window.width; ++x, p += 3) {
      r[x] = norm.lut[0][p[0]];
      gr[x] = norm.lut[1][p[1]];
      b[x] = norm.lut[2][p[2]];
    }
  }
  return out;
}

torch::Tensor preprocess(const Transforms& t, const std::string& path) {
  check_preset(t);
  DecodeOptions options;
  options.region = [&t](int w, int h) -> std::array<int, 4> {
    const Geometry g = geometry(t, w, h);
    if (!g.resize) return {0, 0, w, h};
    return resize_input_region(w, h, g.new_w, g.new_h, g.x0, g.y0, g.win_w, g.win_h, t.interpolation);
  };
  return preprocess(t, decode_image(path, options));
}

torch::Tensor preprocess(const Transforms& t, const std::vector<std::string>& paths) {
  std::vector<torch::Tensor> items;
  items.reserve(paths.size());
  for (const std::string& p : paths) items.push_back(preprocess(t, p));
  for (const auto& x : items)
    if (x.sizes() != items.front().sizes())
      throw UsageError(t.preset, "preprocessed images differ in size; cannot batch them");
  return torch::stack(items);
}

at::Tensor Transforms::operator()(const at::Tensor& input) const {
  if (input.dim() == 4) {
    std::vector<torch::Tensor> items;
    for (std::int64_t i = 0; i < input.size(0); ++i) items.push_back(preprocess(*this, image_from_chw(input[i])));
    if (items.empty()) throw UsageError("preset input", "empty batch");
    return torch::stack(items);
  }
  return preprocess(*this, image_from_chw(input));
}

}  // namespace mz
