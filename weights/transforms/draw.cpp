// torchvision 0.14.1's torchvision.utils drawing over PIL 9.4's ImageDraw (rectangle outlines and fills
// with PIL's blending, text in PIL's default bitmap font), and PNG writing with libpng.
#include "modelzoo/transforms/draw.h"

#include <png.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>

#include <torch/torch.h>

#include "modelzoo/errors.h"

namespace mz {
namespace {

#include "weights/transforms/draw_data.inc"

// An RGB canvas (HWC) that PIL's primitives draw on.
struct Canvas {
  int width, height;
  std::vector<std::uint8_t> px;

  explicit Canvas(const torch::Tensor& chw)
      : width(static_cast<int>(chw.size(2))), height(static_cast<int>(chw.size(1))) {
    const torch::Tensor hwc = chw.permute({1, 2, 0}).contiguous();
    px.assign(hwc.data_ptr<std::uint8_t>(), hwc.data_ptr<std::uint8_t>() + hwc.numel());
  }
  torch::Tensor tensor() const {
    return torch::from_blob(const_cast<std::uint8_t*>(px.data()), {height, width, 3}, torch::kUInt8)
        .permute({2, 0, 1})
        .clone();
  }
  // PIL's BLEND: (out * (255 - a) + ink * a) / 255, rounded as DIV255 does.
  void blend(int x, int y, const Rgb& ink, int alpha) {
    std::uint8_t* p = &px[(static_cast<size_t>(y) * width + x) * 3];
    for (int c = 0; c < 3; ++c) {
      const unsigned t = p[c] * (255u - alpha) + ink[c] * static_cast<unsigned>(alpha) + 128u;
      p[c] = static_cast<std::uint8_t>(((t >> 8) + t) >> 8);
    }
  }
  void point(int x, int y, const Rgb& ink, int alpha) {
    if (x >= 0 && x < width && y >= 0 && y < height) blend(x, y, ink, alpha);
  }
  // PIL's hline: x0..x1 inclusive, clipped.
  void hline(int x0, int y, int x1, const Rgb& ink, int alpha) {
    if (y < 0 || y >= height) return;
    if (x0 < 0) x0 = 0;
    else if (x0 >= width) return;
    if (x1 < 0) return;
    if (x1 >= width) x1 = width - 1;
    for (int x = x0; x <= x1; ++x) blend(x, y, ink, alpha);
  }
  // PIL's vertical line: |y1 - y0| points from y0 towards y1 (y1 itself excluded).
  void vline(int x, int y0, int y1, const Rgb& ink, int alpha) {
    const int step = y1 < y0 ? -1 : 1;
    for (int i = 0, y = y0; i < std::abs(y1 - y0); ++i, y += step) point(x, y, ink, alpha);
  }
  // ImagingDrawRectangle.
  void rectangle(int x0, int y0, int x1, int y1, const Rgb& ink, int alpha, bool fill, int line_width) {
    if (y0 > y1) std::swap(y0, y1);
    if (fill) {
      if (y0 < 0) y0 = 0;
      else if (y0 >= height) return;
      if (y1 < 0) return;
      if (y1 > height) y1 = height;
      for (int y = y0; y <= y1; ++y) hline(x0, y, x1, ink, alpha);
      return;
    }
    if (line_width == 0) line_width = 1;
    for (int i = 0; i < line_width; ++i) {
      hline(x0, y0 + i, x1, ink, alpha);
      hline(x0, y1 - i, x1, ink, alpha);
      vline(x1 - i, y0 + line_width, y1 - line_width + 1, ink, alpha);
      vline(x0 + i, y0 + line_width, y1 - line_width + 1, ink, alpha);
    }
  }
  // ImageDraw.text with the default font: the string's mask (glyphs pasted left to right, each
  // overwriting its box) set to `ink` where it is non-zero.
  void text(int x0, int y0, const std::string& s, const Rgb& ink) {
    int ymin = 0, ymax = 0;
    for (const auto& g : kGlyphs) ymin = std::min<int>(ymin, g[3]), ymax = std::max<int>(ymax, g[5]);
    const int baseline = -ymin, mask_h = ymax - ymin;
    int mask_w = 0;
    for (unsigned char c : s) mask_w += kGlyphs[c][0];
    if (mask_w <= 0 || mask_h <= 0) return;
    std::vector<std::uint8_t> mask(static_cast<size_t>(mask_w) * mask_h, 0);
    const int row_bytes = (kFontImageWidth + 7) / 8;
    int x = 0, b = baseline;
    for (unsigned char c : s) {
      const short* g = kGlyphs[c];
      // ImagingPaste of the glyph's source box onto (dx0 + x, dy0 + b), clipped to the mask.
      for (int sy = g[7]; sy < g[9]; ++sy)
        for (int sx = g[6]; sx < g[8]; ++sx) {
          const int mx = g[2] + x + (sx - g[6]), my = g[3] + b + (sy - g[7]);
          if (mx < 0 || mx >= mask_w || my < 0 || my >= mask_h) continue;
          mask[static_cast<size_t>(my) * mask_w + mx] = (kFontBits[sy * row_bytes + sx / 8] >> (7 - sx % 8)) & 1;
        }
      x += g[0];
      b += g[1];
    }
    for (int my = 0; my < mask_h; ++my)
      for (int mx = 0; mx < mask_w; ++mx)
        if (mask[static_cast<size_t>(my) * mask_w + mx]) point(x0 + mx, y0 + my, ink, 255);
  }
  // A filled disc of radius r around (cx, cy): PIL's ellipse over [cx - r, cy - r, cx + r, cy + r] for
  // radii 0-3, 5 and 7 (even radii above 2 differ by a few edge pixels).
  void disc(int cx, int cy, int r, const Rgb& ink) {
    if (r <= 0) return;  // PIL draws nothing for a point-sized ellipse
    const double limit = r == 1 ? 1.0 : (r + 0.5) * (r + 0.5);
    for (int y = cy - r; y <= cy + r; ++y)
      for (int x = cx - r; x <= cx + r; ++x)
        if ((x - cx) * (x - cx) + (y - cy) * (y - cy) <= limit) point(x, y, ink, 255);
  }
  // ImageDraw.line between two points: Bresenham plus the end point for width <= 1, else PIL's wide line
  // (ImagingDrawWideLine: a four-sided polygon around the segment, filled scanline by scanline).
  void line(int x0, int y0, int x1, int y1, const Rgb& ink, int line_width) {
    const int dx = x1 - x0, dy = y1 - y0;
    if (line_width <= 1) {
      bresenham(x0, y0, x1, y1, ink);
      return point(x1, y1, ink, 255);
    }
    if (dx == 0 && dy == 0) return point(x0, y0, ink, 255);
    const auto round_up = [](double f) { return static_cast<int>(f >= 0.0 ? std::floor(f + 0.5) : -std::floor(std::fabs(f) + 0.5)); };
    const auto round_down = [](double f) { return static_cast<int>(f >= 0.0 ? std::ceil(f - 0.5) : -std::ceil(std::fabs(f) - 0.5)); };
    const double big = std::hypot(dx, dy), small = (line_width - 1) / 2.0;
    const double ratio_max = round_up(small) / big, ratio_min = round_down(small) / big;
    const int dxmin = round_down(ratio_min * dy), dxmax = round_down(ratio_max * dy);
    const int dymin = round_down(ratio_min * dx), dymax = round_down(ratio_max * dx);
    const int v[4][2] = {{x0 - dxmin, y0 + dymax}, {x1 - dxmin, y1 + dymax}, {x1 + dxmax, y1 - dymin},
                         {x0 + dxmax, y0 - dymin}};
    struct Edge {
      int xmin, xmax, ymin, ymax, x0, y0;
      float dx;
    };
    std::vector<Edge> edges;
    int ymin = height - 1, ymax = 0;
    for (int i = 0; i < 4; ++i) {
      const int ax = v[i][0], ay = v[i][1], bx = v[(i + 1) % 4][0], by = v[(i + 1) % 4][1];
      const Edge e{std::min(ax, bx), std::max(ax, bx), std::min(ay, by), std::max(ay, by), ax, ay,
                   ay == by ? 0.0f : static_cast<float>(bx - ax) / static_cast<float>(by - ay)};
      ymin = std::min(ymin, e.ymin), ymax = std::max(ymax, e.ymax);
      if (e.ymin == e.ymax)
        hline(e.xmin, e.ymin, e.xmax, ink, 255);
      else
        edges.push_back(e);
    }
    ymin = std::max(ymin, 0), ymax = std::min(ymax, height);
    const auto round_up_f = [](float f) { return static_cast<int>(f >= 0.0 ? std::floor(f + 0.5F) : -std::floor(std::fabs(f) + 0.5F)); };
    const auto round_down_f = [](float f) { return static_cast<int>(f >= 0.0 ? std::ceil(f - 0.5F) : -std::ceil(std::fabs(f) - 0.5F)); };
    std::vector<float> xs;
    for (int y = ymin; y <= ymax; ++y) {
      xs.clear();
      for (const Edge& e : edges)
        if (y >= e.ymin && y <= e.ymax) {
          xs.push_back(static_cast<float>(y - e.y0) * e.dx + static_cast<float>(e.x0));
          if (y == e.ymax && y < ymax) xs.push_back(xs.back());
        }
      std::sort(xs.begin(), xs.end());
      for (size_t i = 1; i < xs.size(); i += 2) hline(round_up_f(xs[i - 1]), y, round_down_f(xs[i]), ink, 255);
    }
  }
  // PIL's line32: Bresenham from (x0, y0), |major| points, the end point excluded.
  void bresenham(int x0, int y0, int x1, int y1, const Rgb& ink) {
    const int dx = std::abs(x1 - x0), dy = std::abs(y1 - y0);
    const int xs = x1 < x0 ? -1 : 1, ys = y1 < y0 ? -1 : 1;
    if (dx == 0 || dy == 0) {
      for (int i = 0; i < dx + dy; ++i, x0 += dx ? xs : 0, y0 += dy ? ys : 0) point(x0, y0, ink, 255);
      return;
    }
    // One step along the major axis per point, one along the minor axis when the error term says so.
    const bool x_major = dx > dy;
    int &major = x_major ? x0 : y0, &minor = x_major ? y0 : x0;
    const int n = x_major ? dx : dy, d_minor = x_major ? dy : dx;
    const int major_step = x_major ? xs : ys, minor_step = x_major ? ys : xs;
    int e = 2 * d_minor - n;
    for (int i = 0; i < n; ++i, major += major_step) {
      point(x0, y0, ink, 255);
      if (e >= 0) minor += minor_step, e -= 2 * n;
      e += 2 * d_minor;
    }
  }
};

void check_drawable(const torch::Tensor& image, bool gray_ok) {
  if (!image.defined() || image.scalar_type() != torch::kUInt8)
    throw UsageError("image", "must be uint8, got " + (image.defined() ? std::string(c10::toString(image.scalar_type()))
                                                                        : std::string("undefined")));
  if (image.dim() != 3) throw UsageError("image", "pass one image [C, H, W], not " + c10::str(image.sizes()));
  if (image.size(0) != 3 && !(gray_ok && image.size(0) == 1))
    throw UsageError("image", gray_ok ? "only grayscale and RGB images are supported" : "pass an RGB image [3, H, W]");
}

std::vector<Rgb> colors_for(std::int64_t n, const std::vector<Rgb>& colors, const char* what) {
  if (colors.empty()) return generate_color_palette(n);
  if (colors.size() == 1) return std::vector<Rgb>(static_cast<size_t>(n), colors[0]);
  if (static_cast<std::int64_t>(colors.size()) < n)
    throw UsageError("colors", "there are more " + std::string(what) + " (" + std::to_string(n) + ") than colors (" +
                                   std::to_string(colors.size()) + ")");
  return colors;
}

int to_int(const torch::Tensor& t) { return static_cast<int>(t.item<std::int64_t>()); }

}  // namespace

Rgb color_from_string(const std::string& color) {
  std::string s;
  for (char c : color) s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const auto hex = [&](size_t pos, size_t len) {
    const int v = std::stoi(s.substr(pos, len), nullptr, 16);
    return static_cast<std::uint8_t>(len == 1 ? v * 17 : v);
  };
  const bool all_hex = s.size() > 1 && s[0] == '#' &&
                       std::all_of(s.begin() + 1, s.end(), [](char c) { return std::isxdigit(c) != 0; });
  if (all_hex && s.size() == 4) return {hex(1, 1), hex(2, 1), hex(3, 1)};
  if (all_hex && s.size() == 7) return {hex(1, 2), hex(3, 2), hex(5, 2)};
  int r, g, b;
  char end;
  if (std::sscanf(s.c_str(), "rgb(%d ,%d ,%d %c", &r, &g, &b, &end) == 4 && end == ')' && r >= 0 && r < 256 &&
      g >= 0 && g < 256 && b >= 0 && b < 256)
    return {static_cast<std::uint8_t>(r), static_cast<std::uint8_t>(g), static_cast<std::uint8_t>(b)};
  for (const auto& c : kColorNames)
    if (s == c.name) return {c.r, c.g, c.b};
  throw UsageError(color, "unknown color specifier (a name such as 'red', '#rgb', '#rrggbb' or 'rgb(r, g, b)')");
}

std::vector<Rgb> generate_color_palette(std::int64_t num_objects) {
  std::vector<Rgb> out;
  const std::int64_t palette[3] = {(1LL << 25) - 1, (1LL << 15) - 1, (1LL << 21) - 1};
  for (std::int64_t i = 0; i < num_objects; ++i)
    out.push_back({static_cast<std::uint8_t>(i * palette[0] % 255), static_cast<std::uint8_t>(i * palette[1] % 255),
                   static_cast<std::uint8_t>(i * palette[2] % 255)});
  return out;
}

torch::Tensor draw_bounding_boxes(const torch::Tensor& image, const torch::Tensor& boxes,
                                  const std::vector<std::string>& labels, const std::vector<Rgb>& colors, bool fill,
                                  std::int64_t width) {
  check_drawable(image, true);
  if (!boxes.defined() || boxes.dim() != 2 || boxes.size(1) != 4)
    throw UsageError("boxes", "must be [N, 4], got " + (boxes.defined() ? c10::str(boxes.sizes()) : "undefined"));
  if ((boxes.select(1, 0) > boxes.select(1, 2)).any().item<bool>() ||
      (boxes.select(1, 1) > boxes.select(1, 3)).any().item<bool>())
    throw UsageError("boxes", "boxes need to be in (xmin, ymin, xmax, ymax) format");
  const std::int64_t n = boxes.size(0);
  if (n == 0) return image;
  if (!labels.empty() && static_cast<std::int64_t>(labels.size()) != n)
    throw UsageError("labels", "number of boxes (" + std::to_string(n) + ") and labels (" +
                                   std::to_string(labels.size()) + ") mismatch");
  const std::vector<Rgb> ink = colors_for(n, colors, "boxes");
  Canvas canvas(image.size(0) == 1 ? image.expand({3, -1, -1}) : image);
  const torch::Tensor b = boxes.to(torch::kLong);
  for (std::int64_t i = 0; i < n; ++i) {
    const int x0 = to_int(b[i][0]), y0 = to_int(b[i][1]), x1 = to_int(b[i][2]), y1 = to_int(b[i][3]);
    if (fill) canvas.rectangle(x0, y0, x1, y1, ink[i], 100, true, 0);
    canvas.rectangle(x0, y0, x1, y1, ink[i], 255, false, static_cast<int>(width));
    if (!labels.empty()) {
      const int margin = static_cast<int>(width) + 1;
      canvas.text(x0 + margin, y0 + margin, labels[i], ink[i]);
    }
  }
  return canvas.tensor();
}

torch::Tensor draw_segmentation_masks(const torch::Tensor& image, const torch::Tensor& masks, double alpha,
                                      const std::vector<Rgb>& colors) {
  check_drawable(image, false);
  torch::Tensor m = masks.dim() == 2 ? masks.unsqueeze(0) : masks;
  if (m.dim() != 3) throw UsageError("masks", "must be [H, W] or [N, H, W], got " + c10::str(masks.sizes()));
  if (m.scalar_type() != torch::kBool)
    throw UsageError("masks", std::string("must be bool, got ") + c10::toString(m.scalar_type()));
  if (m.size(1) != image.size(1) || m.size(2) != image.size(2))
    throw UsageError("masks", "the image and the masks must have the same height and width");
  const std::int64_t n = m.size(0);
  if (n == 0) return image;
  const std::vector<Rgb> ink = colors_for(n, colors, "masks");
  torch::Tensor painted = image.clone();
  for (std::int64_t i = 0; i < n; ++i) {
    const torch::Tensor color = torch::tensor({ink[i][0], ink[i][1], ink[i][2]}, torch::kUInt8);
    painted.index_put_({torch::indexing::Slice(), m[i]}, color.unsqueeze(1));
  }
  return (image * (1 - alpha) + painted * alpha).to(torch::kUInt8);
}

torch::Tensor draw_keypoints(const torch::Tensor& image, const torch::Tensor& keypoints,
                             const std::vector<std::pair<std::int64_t, std::int64_t>>& connectivity,
                             std::optional<Rgb> color, std::int64_t radius, std::int64_t width) {
  check_drawable(image, false);
  if (!keypoints.defined() || keypoints.dim() != 3 || keypoints.size(2) < 2)
    throw UsageError("keypoints", "must be [N, K, 2], got " +
                                      (keypoints.defined() ? c10::str(keypoints.sizes()) : "undefined"));
  const std::int64_t k = keypoints.size(1);
  for (const auto& [a, b] : connectivity)
    if (a < 0 || a >= k || b < 0 || b >= k)
      throw UsageError("connectivity", "(" + std::to_string(a) + ", " + std::to_string(b) +
                                           ") names a keypoint outside [0, " + std::to_string(k) + ")");
  Canvas canvas(image);
  const torch::Tensor kp = keypoints.to(torch::kLong);
  const Rgb white{255, 255, 255};
  for (std::int64_t i = 0; i < kp.size(0); ++i) {
    const auto at = [&](std::int64_t j, int c) { return to_int(kp[i][j][c]); };
    if (color)
      for (std::int64_t j = 0; j < k; ++j) canvas.disc(at(j, 0), at(j, 1), static_cast<int>(radius), *color);
    for (const auto& [a, b] : connectivity)
      canvas.line(at(a, 0), at(a, 1), at(b, 0), at(b, 1), white, static_cast<int>(width));
  }
  return canvas.tensor();
}

torch::Tensor draw_detection(const torch::Tensor& image, const Detection& d, const std::vector<std::string>& categories) {
  static const std::vector<std::pair<std::int64_t, std::int64_t>> coco_skeleton = {
      {0, 1}, {0, 2}, {1, 3}, {2, 4}, {0, 5}, {0, 6}, {5, 7}, {6, 8},
      {7, 9}, {8, 10}, {5, 11}, {6, 12}, {11, 13}, {12, 14}, {13, 15}, {14, 16}};
  const std::vector<Rgb> palette = generate_color_palette(static_cast<std::int64_t>(categories.size()) + 1);
  std::vector<std::string> names;
  std::vector<Rgb> colors;
  for (std::int64_t i = 0; i < d.boxes.size(0); ++i) {
    const std::int64_t label = d.labels[i].item<std::int64_t>();
    char score[16];
    std::snprintf(score, sizeof score, " %.2f", d.scores[i].item<double>());
    names.push_back((label >= 0 && label < static_cast<std::int64_t>(categories.size())
                         ? categories[static_cast<size_t>(label)]
                         : std::to_string(label)) +
                    score);
    colors.push_back(palette[static_cast<size_t>(std::clamp<std::int64_t>(label, 0, palette.size() - 1))]);
  }
  torch::Tensor out = image;
  if (d.masks.defined() && d.masks.size(0) > 0) out = draw_segmentation_masks(out, d.masks.squeeze(1) > 0.5, 0.5, colors);
  out = draw_bounding_boxes(out, d.boxes, names, colors, false, 2);
  if (d.keypoints.defined() && d.keypoints.size(0) > 0)
    out = draw_keypoints(out, d.keypoints, d.keypoints.size(1) == 17 ? coco_skeleton : decltype(coco_skeleton){},
                         Rgb{0, 0, 255}, 3, 2);
  return out;
}

void write_png(const std::string& path, const torch::Tensor& image) {
  if (!image.defined() || image.scalar_type() != torch::kUInt8 || image.dim() != 3 ||
      (image.size(0) != 3 && image.size(0) != 1))
    throw UsageError(path, "write_png needs a uint8 [3 or 1, H, W] image");
  const torch::Tensor hwc = image.permute({1, 2, 0}).contiguous();
  const int h = static_cast<int>(image.size(1)), w = static_cast<int>(image.size(2));
  const int channels = static_cast<int>(image.size(0));
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!file) throw ImageError(path, std::string("cannot open for writing: ") + std::strerror(errno));
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!info) {
    png_destroy_write_struct(&png, nullptr);
    throw ImageError(path, "libpng could not start");
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    throw ImageError(path, "libpng failed to write the image");
  }
  png_init_io(png, file.get());
  png_set_IHDR(png, info, static_cast<png_uint_32>(w), static_cast<png_uint_32>(h), 8,
               channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_GRAY, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  const std::uint8_t* data = hwc.data_ptr<std::uint8_t>();
  for (int y = 0; y < h; ++y)
    png_write_row(png, const_cast<png_bytep>(data + static_cast<size_t>(y) * w * channels));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  if (std::fflush(file.get()) != 0) throw ImageError(path, std::string("write failed: ") + std::strerror(errno));
}

}  // namespace mz
