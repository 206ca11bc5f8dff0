// AnchorGenerator, as in torchvision.models.detection.anchor_utils.
#include "modelzoo/detection/anchor_utils.h"

#include <ostream>

#include "modelzoo/errors.h"

namespace mz {

AnchorGeneratorImpl::AnchorGeneratorImpl(std::vector<std::vector<double>> sizes_,
                                         std::vector<std::vector<double>> ratios)
    : sizes(std::move(sizes_)), aspect_ratios(std::move(ratios)) {
  if (aspect_ratios.size() == 1 && sizes.size() > 1) aspect_ratios.resize(sizes.size(), aspect_ratios.front());
  if (sizes.empty() || sizes.size() != aspect_ratios.size())
    throw UsageError("AnchorGenerator", "sizes and aspect_ratios should have the same number of elements, got " +
                                            std::to_string(sizes.size()) + " and " +
                                            std::to_string(aspect_ratios.size()));
  for (std::size_t i = 0; i < sizes.size(); ++i) cell_anchors.push_back(generate_anchors(sizes[i], aspect_ratios[i]));
}

torch::Tensor AnchorGeneratorImpl::generate_anchors(const std::vector<double>& scales_,
                                                     const std::vector<double>& ratios_) {
  const auto scales = torch::tensor(scales_, torch::kFloat64).to(torch::kFloat32);
  const auto ratios = torch::tensor(ratios_, torch::kFloat64).to(torch::kFloat32);
  const auto h_ratios = torch::sqrt(ratios);
  const auto w_ratios = h_ratios.reciprocal();  // Python's 1 / tensor
  const auto ws = (w_ratios.unsqueeze(1) * scales.unsqueeze(0)).view(-1);
  const auto hs = (h_ratios.unsqueeze(1) * scales.unsqueeze(0)).view(-1);
  return (torch::stack({-ws, -hs, ws, hs}, 1) / 2).round();
}

std::vector<std::int64_t> AnchorGeneratorImpl::num_anchors_per_location() const {
  std::vector<std::int64_t> out;
  for (std::size_t i = 0; i < sizes.size(); ++i)
    out.push_back(static_cast<std::int64_t>(sizes[i].size() * aspect_ratios[i].size()));
  return out;
}

std::vector<torch::Tensor> AnchorGeneratorImpl::forward(const ImageList& images,
                                                        const std::vector<torch::Tensor>& feature_maps) {
  if (feature_maps.size() != cell_anchors.size())
    throw UsageError("AnchorGenerator", "got " + std::to_string(feature_maps.size()) + " feature maps but " +
                                            std::to_string(cell_anchors.size()) +
                                            " sizes / aspect ratios: there must be one per feature map");
  const std::int64_t image_h = images.tensors.size(-2), image_w = images.tensors.size(-1);
  const auto dtype = feature_maps.front().scalar_type();
  const auto device = feature_maps.front().device();
  std::vector<torch::Tensor> per_level;
  for (std::size_t i = 0; i < feature_maps.size(); ++i) {
    const std::int64_t gh = feature_maps[i].size(-2), gw = feature_maps[i].size(-1);
    const auto base = cell_anchors[i].to(device, dtype);
    const auto int32 = torch::TensorOptions().dtype(torch::kInt32).device(device);
    const auto shifts_x = torch::arange(0, gw, int32) * (image_w / gw);
    const auto shifts_y = torch::arange(0, gh, int32) * (image_h / gh);
    const auto grid = torch::meshgrid({shifts_y, shifts_x}, "ij");
    const auto sy = grid[0].reshape(-1), sx = grid[1].reshape(-1);
    const auto shifts = torch::stack({sx, sy, sx, sy}, 1);
    per_level.push_back((shifts.view({-1, 1, 4}) + base.view({1, -1, 4})).reshape({-1, 4}));
  }
  const auto all = torch::cat(per_level);
  return std::vector<torch::Tensor>(images.image_sizes.size(), all);
}

void AnchorGeneratorImpl::pretty_print(std::ostream& s) const {
  s << "AnchorGenerator(levels=" << sizes.size() << ")";
}

}  // namespace mz
