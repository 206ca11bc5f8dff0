// torchvision 0.14.1's detection ops (torchvision/ops/boxes.py, roi_align.py and the CPU kernels of
// nms and roi_align), forward only. Every arithmetic step is done in the same order and type as
// upstream, so results are bit-identical; tests/detection_ops checks that against torchvision's _C.
#include "modelzoo/detection/ops.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/torch.h>

#include "modelzoo/errors.h"

namespace mz::ops {
namespace {

void check_boxes(const torch::Tensor& boxes, const char* name) {
  if (!boxes.defined() || boxes.dim() != 2 || boxes.size(1) != 4)
    throw UsageError(name, "boxes must be [N, 4], got " + (boxes.defined() ? c10::str(boxes.sizes()) : "undefined"));
}

void check_scores(const torch::Tensor& boxes, const torch::Tensor& scores) {
  if (!scores.defined() || scores.dim() != 1 || scores.size(0) != boxes.size(0))
    throw UsageError("scores", "scores must be [N] with N = " + std::to_string(boxes.size(0)) + " boxes, got " +
                                   (scores.defined() ? c10::str(scores.sizes()) : "undefined"));
  if (!boxes.is_floating_point() || scores.scalar_type() != boxes.scalar_type())
    throw UsageError("scores", std::string("boxes and scores must have one floating-point type, got ") +
                                   c10::toString(boxes.scalar_type()) + " and " + c10::toString(scores.scalar_type()));
}

void check_idxs(const torch::Tensor& boxes, const torch::Tensor& idxs) {
  if (!idxs.defined() || idxs.dim() != 1 || idxs.size(0) != boxes.size(0) || idxs.is_floating_point())
    throw UsageError("idxs", "idxs must be [N] integers with N = " + std::to_string(boxes.size(0)) + " boxes, got " +
                                 (idxs.defined() ? c10::str(idxs.sizes(), " ", idxs.scalar_type()) : "undefined"));
}

// The largest T not above x: for every T value v (NaN included), v > x exactly when v > below_or_at(x).
template <typename T>
T below_or_at(double x) {
  const T t = static_cast<T>(x);
  return static_cast<double>(t) > x ? std::nextafter(t, -std::numeric_limits<T>::infinity()) : t;
}

// torchvision's nms kernel on the boxes rows[0..n) of `boxes` ([N, 4], contiguous): a stable sort by
// score, descending with NaN first (as Tensor::sort(stable=true, descending=true)), then the greedy
// pass, in which each box kept suppresses every later one whose IoU with it is above the threshold.
// Returns the rows kept, in score order. Unlike torchvision's loop, the pass reads the boxes in sorted
// order and computes the IoU of every later box, suppressed or not: setting an already suppressed
// flag again changes nothing, and the loop is then branch-free and vectorises (4x faster). The
// arithmetic per pair is upstream's, in the same order and type; upstream compares the IoU with the
// double threshold, which for a T value is the same test as against `below` (below_or_at).
template <typename T>
std::vector<int64_t> nms_rows(const T* boxes, const T* scores, const int64_t* rows, int64_t n, double iou_threshold) {
  std::vector<int64_t> order(rows, rows + n);
  std::stable_sort(order.begin(), order.end(), [scores](int64_t a, int64_t b) {
    return (std::isnan(scores[a]) && !std::isnan(scores[b])) || scores[a] > scores[b];
  });
  std::vector<T> coords(5 * static_cast<size_t>(n));
  T *x1 = coords.data(), *y1 = x1 + n, *x2 = y1 + n, *y2 = x2 + n, *area = y2 + n;
  for (int64_t k = 0; k < n; ++k) {
    const T* box = boxes + 4 * order[k];
    x1[k] = box[0], y1[k] = box[1], x2[k] = box[2], y2[k] = box[3];
    area[k] = (x2[k] - x1[k]) * (y2[k] - y1[k]);
  }
  const T below = below_or_at<T>(iou_threshold);
  std::vector<unsigned char> suppressed(n, 0);
  std::vector<int64_t> keep;
  for (int64_t a = 0; a < n; ++a) {
    if (suppressed[a]) continue;
    keep.push_back(order[a]);
    const T ax1 = x1[a], ay1 = y1[a], ax2 = x2[a], ay2 = y2[a], a_area = area[a];
    for (int64_t b = a + 1; b < n; ++b) {
      const T w = std::max(static_cast<T>(0), std::min(ax2, x2[b]) - std::max(ax1, x1[b]));
      const T h = std::max(static_cast<T>(0), std::min(ay2, y2[b]) - std::max(ay1, y1[b]));
      const T inter = w * h;
      const T iou = inter / (a_area + area[b] - inter);
      suppressed[b] |= static_cast<unsigned char>(iou > below);
    }
  }
  return keep;
}

// The bilinear sample of one point: four pixel offsets and weights (all zero outside [-1, H] x [-1, W]).
template <typename T>
struct Sample {
  int64_t pos[4];
  T w[4];
};

template <typename T>
Sample<T> bilinear_sample(int64_t height, int64_t width, T y, T x) {
  Sample<T> s{{0, 0, 0, 0}, {0, 0, 0, 0}};
  if (y < -1.0 || y > height || x < -1.0 || x > width) return s;
  if (y <= 0) y = 0;
  if (x <= 0) x = 0;
  int64_t y_low = static_cast<int>(y), x_low = static_cast<int>(x), y_high, x_high;
  if (y_low >= height - 1) {
    y_high = y_low = height - 1;
    y = static_cast<T>(y_low);
  } else {
    y_high = y_low + 1;
  }
  if (x_low >= width - 1) {
    x_high = x_low = width - 1;
    x = static_cast<T>(x_low);
  } else {
    x_high = x_low + 1;
  }
  const T ly = y - y_low, lx = x - x_low;
  const T hy = 1. - ly, hx = 1. - lx;
  s.pos[0] = y_low * width + x_low;
  s.pos[1] = y_low * width + x_high;
  s.pos[2] = y_high * width + x_low;
  s.pos[3] = y_high * width + x_high;
  s.w[0] = hy * hx;
  s.w[1] = hy * lx;
  s.w[2] = ly * hx;
  s.w[3] = ly * lx;
  return s;
}

template <typename T>
void roi_align_impl(const torch::Tensor& input, const torch::Tensor& rois, torch::Tensor& output, T spatial_scale,
                    int64_t pooled_h, int64_t pooled_w, int64_t sampling_ratio, bool aligned) {
  const int64_t channels = input.size(1), height = input.size(2), width = input.size(3);
  // input: contiguous, or channels-last (then each sample's channels are adjacent, and the loop over them vectorises).
  const bool channels_last = !input.is_contiguous();
  const T* in = input.data_ptr<T>();
  const T* roi_data = rois.data_ptr<T>();
  T* out = output.data_ptr<T>();
  at::parallel_for(0, rois.size(0), 1, [&](int64_t begin, int64_t end) {
    std::vector<Sample<T>> samples;
    std::vector<T> sums(channels_last ? channels : 0);
    for (int64_t n = begin; n < end; ++n) {
      const T* roi = roi_data + n * 5;
      const int64_t batch = static_cast<int>(roi[0]);
      const T offset = aligned ? static_cast<T>(0.5) : static_cast<T>(0.0);
      const T start_w = roi[1] * spatial_scale - offset, start_h = roi[2] * spatial_scale - offset;
      const T end_w = roi[3] * spatial_scale - offset, end_h = roi[4] * spatial_scale - offset;
      T roi_w = end_w - start_w, roi_h = end_h - start_h;
      if (!aligned) {  // malformed RoIs count as 1 x 1
        roi_w = std::max(roi_w, static_cast<T>(1.));
        roi_h = std::max(roi_h, static_cast<T>(1.));
      }
      const T bin_h = roi_h / static_cast<T>(pooled_h), bin_w = roi_w / static_cast<T>(pooled_w);
      const int grid_h = sampling_ratio > 0 ? static_cast<int>(sampling_ratio)
                                            : static_cast<int>(std::ceil(roi_h / static_cast<T>(pooled_h)));
      const int grid_w = sampling_ratio > 0 ? static_cast<int>(sampling_ratio)
                                            : static_cast<int>(std::ceil(roi_w / static_cast<T>(pooled_w)));
      const T count = static_cast<T>(std::max(grid_h * grid_w, 1));
      // The sample points and weights are shared by every channel.
      samples.clear();
      for (int64_t ph = 0; ph < pooled_h; ++ph)
        for (int64_t pw = 0; pw < pooled_w; ++pw)
          for (int iy = 0; iy < grid_h; ++iy) {
            const T y = start_h + static_cast<T>(ph) * bin_h +
                        static_cast<T>(iy + .5f) * bin_h / static_cast<T>(grid_h);
            for (int ix = 0; ix < grid_w; ++ix) {
              const T x = start_w + static_cast<T>(pw) * bin_w +
                          static_cast<T>(ix + .5f) * bin_w / static_cast<T>(grid_w);
              samples.push_back(bilinear_sample<T>(height, width, y, x));
            }
          }
      const int64_t per_bin = static_cast<int64_t>(std::max(grid_h, 0)) * std::max(grid_w, 0);
      if (channels_last) {
        // Each sample reads four runs of `channels` values: the same sums, per channel, in the same order.
        const T* image = in + batch * height * width * channels;
        const Sample<T>* s = samples.data();
        for (int64_t bin = 0; bin < pooled_h * pooled_w; ++bin) {
          std::fill(sums.begin(), sums.end(), T(0));
          for (int64_t k = 0; k < per_bin; ++k, ++s) {
            const T *p0 = image + s->pos[0] * channels, *p1 = image + s->pos[1] * channels,
                    *p2 = image + s->pos[2] * channels, *p3 = image + s->pos[3] * channels;
            const T w0 = s->w[0], w1 = s->w[1], w2 = s->w[2], w3 = s->w[3];
            T* sum = sums.data();
            for (int64_t c = 0; c < channels; ++c) sum[c] += w0 * p0[c] + w1 * p1[c] + w2 * p2[c] + w3 * p3[c];
          }
          T* dst = out + n * channels * pooled_h * pooled_w + bin;
          for (int64_t c = 0; c < channels; ++c) dst[c * pooled_h * pooled_w] = sums[c] / count;
        }
        continue;
      }
      for (int64_t c = 0; c < channels; ++c) {
        const T* plane = in + (batch * channels + c) * height * width;
        T* dst = out + (n * channels + c) * pooled_h * pooled_w;
        const Sample<T>* s = samples.data();
        for (int64_t bin = 0; bin < pooled_h * pooled_w; ++bin) {
          T value = 0.;
          for (int64_t k = 0; k < per_bin; ++k, ++s)
            value += s->w[0] * plane[s->pos[0]] + s->w[1] * plane[s->pos[1]] + s->w[2] * plane[s->pos[2]] +
                     s->w[3] * plane[s->pos[3]];
          dst[bin] = value / count;
        }
      }
    }
  });
}

}  // namespace

torch::Tensor nms(const torch::Tensor& boxes, const torch::Tensor& scores, double iou_threshold) {
  check_boxes(boxes, "boxes");
  check_scores(boxes, scores);
  if (boxes.numel() == 0) return torch::empty({0}, torch::kLong);
  const torch::Tensor b = boxes.contiguous(), s = scores.contiguous();
  std::vector<int64_t> rows(b.size(0)), keep;
  std::iota(rows.begin(), rows.end(), int64_t{0});
  AT_DISPATCH_FLOATING_TYPES(b.scalar_type(), "mz::ops::nms", [&] {
    keep = nms_rows(b.data_ptr<scalar_t>(), s.data_ptr<scalar_t>(), rows.data(), b.size(0), iou_threshold);
  });
  return torch::tensor(keep, torch::kLong);
}

torch::Tensor batched_nms(const torch::Tensor& boxes, const torch::Tensor& scores, const torch::Tensor& idxs,
                          double iou_threshold) {
  check_boxes(boxes, "boxes");
  check_idxs(boxes, idxs);
  return boxes.numel() > 4000 ? batched_nms_vanilla(boxes, scores, idxs, iou_threshold)
                              : batched_nms_coordinate_trick(boxes, scores, idxs, iou_threshold);
}

torch::Tensor batched_nms_coordinate_trick(const torch::Tensor& boxes, const torch::Tensor& scores,
                                           const torch::Tensor& idxs, double iou_threshold) {
  check_boxes(boxes, "boxes");
  check_idxs(boxes, idxs);
  if (boxes.numel() == 0) return torch::empty({0}, torch::kLong);
  // Offsets large enough that boxes of different categories never overlap.
  const torch::Tensor max_coordinate = boxes.max();
  const torch::Tensor offsets = idxs.to(boxes.options()) * (max_coordinate + torch::tensor(1).to(boxes.options()));
  return nms(boxes + offsets.unsqueeze(1), scores, iou_threshold);
}

torch::Tensor batched_nms_vanilla(const torch::Tensor& boxes, const torch::Tensor& scores, const torch::Tensor& idxs,
                                  double iou_threshold) {
  check_boxes(boxes, "boxes");
  check_scores(boxes, scores);
  check_idxs(boxes, idxs);
  // Upstream runs nms on boxes[idxs == c] for each category c in ascending order and marks what each
  // keeps. The members of every category, in index order, come here from one counting sort.
  const int64_t n = boxes.size(0);
  const auto [classes, inverse_t] = torch::_unique(idxs, /*sorted=*/true, /*return_inverse=*/true);
  const torch::Tensor inverse = inverse_t.to(torch::kLong).contiguous();
  const int64_t* category = inverse.data_ptr<int64_t>();
  std::vector<int64_t> start(classes.size(0) + 1, 0), members(n);
  for (int64_t i = 0; i < n; ++i) ++start[category[i] + 1];
  for (size_t k = 1; k < start.size(); ++k) start[k] += start[k - 1];
  std::vector<int64_t> next(start.begin(), start.end() - 1);
  for (int64_t i = 0; i < n; ++i) members[next[category[i]]++] = i;
  const torch::Tensor b = boxes.contiguous(), s = scores.contiguous();
  torch::Tensor keep_mask = torch::zeros({n}, torch::kBool);
  bool* mask = keep_mask.data_ptr<bool>();
  AT_DISPATCH_FLOATING_TYPES(b.scalar_type(), "mz::ops::batched_nms_vanilla", [&] {
    for (size_t k = 0; k + 1 < start.size(); ++k)
      for (int64_t row : nms_rows(b.data_ptr<scalar_t>(), s.data_ptr<scalar_t>(), members.data() + start[k],
                                  start[k + 1] - start[k], iou_threshold))
        mask[row] = true;
  });
  const torch::Tensor keep = torch::where(keep_mask)[0];
  return keep.index({std::get<1>(scores.index({keep}).sort(0, /*descending=*/true))});
}

torch::Tensor convert_boxes_to_roi_format(const std::vector<torch::Tensor>& boxes) {
  std::vector<torch::Tensor> ids;
  for (size_t i = 0; i < boxes.size(); ++i) {
    check_boxes(boxes[i], "boxes");
    ids.push_back(torch::full_like(boxes[i].narrow(1, 0, 1), static_cast<int64_t>(i)));
  }
  if (boxes.empty()) throw UsageError("boxes", "the list of box tensors is empty");
  const auto cat = [](const std::vector<torch::Tensor>& t) { return t.size() == 1 ? t[0] : torch::cat(t, 0); };
  return torch::cat({cat(ids), cat(boxes)}, 1);
}

torch::Tensor roi_align(const torch::Tensor& input, const torch::Tensor& rois, std::array<int64_t, 2> output_size,
                        double spatial_scale, int64_t sampling_ratio, bool aligned) {
  if (!input.defined() || input.dim() != 4)
    throw UsageError("input", "roi_align needs a feature map [N, C, H, W], got " +
                                  (input.defined() ? c10::str(input.sizes()) : "undefined"));
  if (!rois.defined() || rois.dim() != 2 || rois.size(1) != 5)
    throw UsageError("rois", "rois must be [K, 5] (batch index, x1, y1, x2, y2), got " +
                                 (rois.defined() ? c10::str(rois.sizes()) : "undefined"));
  if (!input.is_floating_point() || input.scalar_type() != rois.scalar_type())
    throw UsageError("rois", std::string("input and rois must have one floating-point type, got ") +
                                 c10::toString(input.scalar_type()) + " and " + c10::toString(rois.scalar_type()));
  if (output_size[0] <= 0 || output_size[1] <= 0)
    throw UsageError("output_size", "must be positive, got " + c10::str(output_size[0], "x", output_size[1]));
  torch::Tensor output = torch::zeros({rois.size(0), input.size(1), output_size[0], output_size[1]}, input.options());
  if (output.numel() == 0) return output;
  if (input.size(2) == 0 || input.size(3) == 0) throw UsageError("input", "the feature map is empty");
  // Channels-last where the map is, or where the samples outnumber the map's values enough to pay for the copy.
  const std::int64_t samples = rois.size(0) * input.size(1) * output_size[0] * output_size[1] *
                               (sampling_ratio > 0 ? sampling_ratio * sampling_ratio : 4);
  const bool channels_last = input.is_contiguous(torch::MemoryFormat::ChannelsLast) || samples > 2 * input.numel();
  const torch::Tensor in = input.contiguous(channels_last ? torch::MemoryFormat::ChannelsLast
                                                          : torch::MemoryFormat::Contiguous),
                      r = rois.contiguous();
  const torch::Tensor batch = r.select(1, 0);
  if (batch.min().item<double>() < 0 || batch.max().item<double>() >= static_cast<double>(input.size(0)))
    throw UsageError("rois", "a batch index is outside [0, " + std::to_string(input.size(0)) + ")");
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "mz::ops::roi_align", [&] {
    roi_align_impl<scalar_t>(in, r, output, static_cast<scalar_t>(spatial_scale), output_size[0], output_size[1],
                             sampling_ratio, aligned);
  });
  return output;
}

torch::Tensor roi_align(const torch::Tensor& input, const std::vector<torch::Tensor>& boxes,
                        std::array<int64_t, 2> output_size, double spatial_scale, int64_t sampling_ratio,
                        bool aligned) {
  return roi_align(input, convert_boxes_to_roi_format(boxes), output_size, spatial_scale, sampling_ratio, aligned);
}

namespace {
torch::Tensor upcast(const torch::Tensor& t) {
  if (t.is_floating_point())
    return t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kDouble ? t : t.to(torch::kFloat);
  return t.scalar_type() == torch::kInt || t.scalar_type() == torch::kLong ? t : t.to(torch::kInt);
}
}  // namespace

torch::Tensor box_area(const torch::Tensor& boxes) {
  check_boxes(boxes, "boxes");
  const torch::Tensor b = upcast(boxes);
  return (b.select(1, 2) - b.select(1, 0)) * (b.select(1, 3) - b.select(1, 1));
}

torch::Tensor box_iou(const torch::Tensor& boxes1, const torch::Tensor& boxes2) {
  check_boxes(boxes1, "boxes1");
  check_boxes(boxes2, "boxes2");
  using torch::indexing::Slice;
  const torch::Tensor area1 = box_area(boxes1), area2 = box_area(boxes2);
  const torch::Tensor lt = torch::max(boxes1.index({Slice(), torch::indexing::None, Slice(0, 2)}),
                                      boxes2.index({Slice(), Slice(0, 2)}));
  const torch::Tensor rb = torch::min(boxes1.index({Slice(), torch::indexing::None, Slice(2)}),
                                      boxes2.index({Slice(), Slice(2)}));
  const torch::Tensor wh = upcast(rb - lt).clamp_min(0);
  const torch::Tensor inter = wh.select(2, 0) * wh.select(2, 1);
  const torch::Tensor uni = area1.unsqueeze(1) + area2 - inter;
  return inter / uni;
}

torch::Tensor clip_boxes_to_image(const torch::Tensor& boxes, std::pair<int64_t, int64_t> size) {
  if (!boxes.defined() || boxes.dim() < 1 || boxes.size(-1) != 4)
    throw UsageError("boxes", "boxes must be [..., 4], got " + (boxes.defined() ? c10::str(boxes.sizes()) : "undefined"));
  const int64_t dim = boxes.dim();
  const torch::Tensor x = boxes.slice(-1, 0, c10::nullopt, 2).clamp(0, size.second);
  const torch::Tensor y = boxes.slice(-1, 1, c10::nullopt, 2).clamp(0, size.first);
  return torch::stack({x, y}, dim).reshape(boxes.sizes());
}

torch::Tensor remove_small_boxes(const torch::Tensor& boxes, double min_size) {
  check_boxes(boxes, "boxes");
  const torch::Tensor ws = boxes.select(1, 2) - boxes.select(1, 0), hs = boxes.select(1, 3) - boxes.select(1, 1);
  return torch::where((ws >= min_size).logical_and(hs >= min_size))[0];
}

torch::Tensor box_convert(const torch::Tensor& boxes, const std::string& in_fmt, const std::string& out_fmt) {
  const auto known = [](const std::string& f) { return f == "xyxy" || f == "xywh" || f == "cxcywh"; };
  if (!known(in_fmt) || !known(out_fmt))
    throw UsageError("box_convert", "formats are 'xyxy', 'xywh' and 'cxcywh', got '" + in_fmt + "' -> '" + out_fmt + "'");
  if (!boxes.defined() || boxes.dim() < 1 || boxes.size(-1) != 4)
    throw UsageError("boxes", "boxes must be [..., 4], got " + (boxes.defined() ? c10::str(boxes.sizes()) : "undefined"));
  if (in_fmt == out_fmt) return boxes.clone();
  torch::Tensor b = boxes;
  auto parts = b.unbind(-1);
  if (in_fmt == "xywh") {
    b = torch::stack({parts[0], parts[1], parts[0] + parts[2], parts[1] + parts[3]}, -1);
  } else if (in_fmt == "cxcywh") {
    b = torch::stack({parts[0] - 0.5 * parts[2], parts[1] - 0.5 * parts[3], parts[0] + 0.5 * parts[2],
                      parts[1] + 0.5 * parts[3]},
                     -1);
  }
  if (out_fmt == "xyxy") return b;
  parts = b.unbind(-1);
  const torch::Tensor w = parts[2] - parts[0], h = parts[3] - parts[1];
  if (out_fmt == "xywh") return torch::stack({parts[0], parts[1], w, h}, -1);
  return torch::stack({(parts[0] + parts[2]) / 2, (parts[1] + parts[3]) / 2, w, h}, -1);
}

}  // namespace mz::ops
