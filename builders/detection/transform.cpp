// GeneralizedRCNNTransform, as in torchvision.models.detection.transform (and roi_heads' mask pasting).
#include "modelzoo/detection/transform.h"

#include <cmath>
#include <ostream>

#include "modelzoo/errors.h"
#include "weights/json_number.h"

namespace mz {

void to_json(nlohmann::json& j, const SizeList& s) {
  if (s.size() == 1) j = s.front();
  else j = static_cast<const std::vector<std::int64_t>&>(s);
}
void from_json(const nlohmann::json& j, SizeList& s) {
  const nlohmann::json list = j.is_array() ? j : nlohmann::json::array({j});
  if (!detail::integers_fit<std::vector<std::int64_t>>(list))  // a type_error, so that options_from_json names the option
    throw nlohmann::json::type_error::create(302, "sizes must be integers within range", &j);
  const auto sizes = list.get<std::vector<std::int64_t>>();
  s = SizeList(sizes.begin(), sizes.end());
}

GeneralizedRCNNTransformImpl::GeneralizedRCNNTransformImpl(std::vector<std::int64_t> min_size_, std::int64_t max_size_,
                                                           std::vector<double> mean, std::vector<double> std,
                                                           std::int64_t divisible,
                                                           std::optional<std::array<std::int64_t, 2>> fixed)
    : min_size(std::move(min_size_)),
      max_size(max_size_),
      image_mean(std::move(mean)),
      image_std(std::move(std)),
      size_divisible(divisible),
      fixed_size(fixed) {
  if (min_size.empty()) throw UsageError("GeneralizedRCNNTransform", "min_size must not be empty");
  if (size_divisible < 1) throw UsageError("GeneralizedRCNNTransform", "size_divisible must be at least 1");
}

ImageList GeneralizedRCNNTransformImpl::forward(const std::vector<torch::Tensor>& images) {
  if (images.empty()) throw UsageError("images", "the image list is empty");
  std::vector<torch::Tensor> resized;
  ImageList out;
  for (std::size_t i = 0; i < images.size(); ++i) {
    const torch::Tensor& image = images[i];
    const std::string name = "images[" + std::to_string(i) + "]";
    if (image.dim() != 3 || image.size(0) != 3)
      throw UsageError(name, "an image must be 3 x H x W, got " + c10::str(image.sizes()));
    if (!image.is_floating_point())
      throw UsageError(name, std::string("an image must be floating point, got ") + c10::toString(image.scalar_type()));
    resized.push_back(resize(normalize(image)));
    out.image_sizes.push_back({resized.back().size(1), resized.back().size(2)});
  }
  out.tensors = batch_images(resized);
  return out;
}

torch::Tensor GeneralizedRCNNTransformImpl::normalize(const torch::Tensor& image) const {
  const auto opts = image.options();
  const auto mean = torch::tensor(image_mean, torch::kFloat64).to(opts.dtype()).reshape({-1, 1, 1});
  const auto std = torch::tensor(image_std, torch::kFloat64).to(opts.dtype()).reshape({-1, 1, 1});
  return (image - mean) / std;
}

torch::Tensor GeneralizedRCNNTransformImpl::resize(const torch::Tensor& image) const {
  const std::int64_t h = image.size(-2), w = image.size(-1);
  std::vector<std::int64_t> size;
  if (fixed_size) {
    size = {(*fixed_size)[1], (*fixed_size)[0]};
  } else {
    std::int64_t target = min_size.back();
    if (is_training()) {
      const auto k = static_cast<std::int64_t>(torch::empty({1}).uniform_(0.0, static_cast<double>(min_size.size())).item<double>());
      target = min_size.at(k);
    }
    // torch.min(self_min_size / min_size_f32, self_max_size / max_size_f32): Python's float / Tensor is
    // reciprocal() * float, in float32; F.interpolate then floors double(in) * scale.
    const auto shape = torch::tensor({h, w}, torch::kFloat32);
    const auto scale = torch::min(shape.min().reciprocal() * static_cast<double>(target),
                                  shape.max().reciprocal() * static_cast<double>(max_size));
    const double s = scale.item<double>();
    size = {static_cast<std::int64_t>(std::floor(static_cast<double>(h) * s)),
            static_cast<std::int64_t>(std::floor(static_cast<double>(w) * s))};
  }
  return torch::upsample_bilinear2d(image.unsqueeze(0), size, /*align_corners=*/false)[0];
}

torch::Tensor GeneralizedRCNNTransformImpl::batch_images(const std::vector<torch::Tensor>& images) const {
  std::int64_t c = 0, h = 0, w = 0;
  for (const auto& img : images) {
    c = std::max(c, img.size(0));
    h = std::max(h, img.size(1));
    w = std::max(w, img.size(2));
  }
  const double stride = static_cast<double>(size_divisible);
  h = static_cast<std::int64_t>(std::ceil(static_cast<double>(h) / stride) * stride);
  w = static_cast<std::int64_t>(std::ceil(static_cast<double>(w) / stride) * stride);
  auto batch = images.front().new_full({static_cast<std::int64_t>(images.size()), c, h, w}, 0);
  for (std::size_t i = 0; i < images.size(); ++i) {
    const auto& img = images[i];
    batch[static_cast<std::int64_t>(i)]
        .narrow(0, 0, img.size(0))
        .narrow(1, 0, img.size(1))
        .narrow(2, 0, img.size(2))
        .copy_(img);
  }
  return batch;
}

std::vector<Detection> GeneralizedRCNNTransformImpl::postprocess(std::vector<Detection> result,
                                                                 const std::vector<ImageSize>& image_sizes,
                                                                 const std::vector<ImageSize>& original_sizes) const {
  if (is_training()) return result;
  for (std::size_t i = 0; i < result.size(); ++i) {
    Detection& d = result[i];
    d.boxes = resize_boxes(d.boxes, image_sizes.at(i), original_sizes.at(i));
    if (d.masks.defined()) d.masks = paste_masks_in_image(d.masks, d.boxes, original_sizes.at(i));
    if (d.keypoints.defined()) d.keypoints = resize_keypoints(d.keypoints, image_sizes.at(i), original_sizes.at(i));
  }
  return result;
}

void GeneralizedRCNNTransformImpl::pretty_print(std::ostream& s) const {
  s << "GeneralizedRCNNTransform(min_size=" << c10::IntArrayRef(min_size) << ", max_size=" << max_size
    << ", mean=" << image_mean << ", std=" << image_std << ")";
}

namespace {
// [ratio_height, ratio_width]: new / original, each a float32 division as torchvision computes it.
std::array<torch::Tensor, 2> ratios(const ImageSize& original, const ImageSize& now) {
  auto r = [](std::int64_t a, std::int64_t b) {
    return torch::tensor(static_cast<float>(a)) / torch::tensor(static_cast<float>(b));
  };
  return {r(now[0], original[0]), r(now[1], original[1])};
}
}  // namespace

torch::Tensor resize_boxes(const torch::Tensor& boxes, const ImageSize& original_size, const ImageSize& new_size) {
  const auto [rh, rw] = ratios(original_size, new_size);
  const auto b = boxes.unbind(1);
  return torch::stack({b[0] * rw, b[1] * rh, b[2] * rw, b[3] * rh}, 1);
}

torch::Tensor resize_keypoints(const torch::Tensor& keypoints, const ImageSize& original_size,
                               const ImageSize& new_size) {
  const auto [rh, rw] = ratios(original_size, new_size);
  auto out = keypoints.clone();
  out.select(-1, 0).mul_(rw);
  out.select(-1, 1).mul_(rh);
  return out;
}

namespace {

torch::Tensor expand_boxes(const torch::Tensor& boxes, double scale) {
  auto w_half = (boxes.select(1, 2) - boxes.select(1, 0)) * 0.5;
  auto h_half = (boxes.select(1, 3) - boxes.select(1, 1)) * 0.5;
  const auto x_c = (boxes.select(1, 2) + boxes.select(1, 0)) * 0.5;
  const auto y_c = (boxes.select(1, 3) + boxes.select(1, 1)) * 0.5;
  w_half *= scale;
  h_half *= scale;
  return torch::stack({x_c - w_half, y_c - h_half, x_c + w_half, y_c + h_half}, 1);
}

torch::Tensor paste_mask_in_image(const torch::Tensor& mask, const std::int64_t* box, std::int64_t im_h,
                                  std::int64_t im_w) {
  const std::int64_t w = std::max<std::int64_t>(box[2] - box[0] + 1, 1);
  const std::int64_t h = std::max<std::int64_t>(box[3] - box[1] + 1, 1);
  const auto resized = torch::upsample_bilinear2d(mask.expand({1, 1, -1, -1}), {h, w}, false)[0][0];
  auto im_mask = torch::zeros({im_h, im_w}, mask.options());
  const std::int64_t x0 = std::max<std::int64_t>(box[0], 0), x1 = std::min<std::int64_t>(box[2] + 1, im_w);
  const std::int64_t y0 = std::max<std::int64_t>(box[1], 0), y1 = std::min<std::int64_t>(box[3] + 1, im_h);
  if (x1 > x0 && y1 > y0)
    im_mask.slice(0, y0, y1).slice(1, x0, x1).copy_(
        resized.slice(0, y0 - box[1], y1 - box[1]).slice(1, x0 - box[0], x1 - box[0]));
  return im_mask;
}

}  // namespace

torch::Tensor paste_masks_in_image(const torch::Tensor& masks, const torch::Tensor& boxes, const ImageSize& image_size,
                                   std::int64_t padding) {
  const std::int64_t m = masks.size(-1);
  const double scale = static_cast<double>(m + 2 * padding) / static_cast<double>(m);
  const auto padded = torch::constant_pad_nd(masks, {padding, padding, padding, padding}, 0);
  const auto int_boxes = expand_boxes(boxes, scale).to(torch::kInt64).contiguous();
  if (masks.size(0) == 0) return masks.new_empty({0, 1, image_size[0], image_size[1]});
  std::vector<torch::Tensor> res;
  const std::int64_t* b = int_boxes.data_ptr<std::int64_t>();
  for (std::int64_t i = 0; i < padded.size(0); ++i)
    res.push_back(paste_mask_in_image(padded[i][0], b + 4 * i, image_size[0], image_size[1]));
  return torch::stack(res, 0).unsqueeze(1);
}

}  // namespace mz
