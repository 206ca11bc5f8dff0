// AlexNet: model -> builder, as in torchvision.models.alexnet.
#include "modelzoo/models/alexnet.h"

#include "builders/common.h"
#include "registry/register.h"

namespace mz {

AlexNetImpl::AlexNetImpl(const AlexNetOptions& options) {
  using torch::nn::Conv2dOptions;
  using torch::nn::MaxPool2dOptions;
  auto relu = [] { return torch::nn::ReLU(); };
  auto pool = [] { return torch::nn::MaxPool2d(MaxPool2dOptions(3).stride(2)); };
  features = register_module(
      "features", torch::nn::Sequential(nn::Conv2d(Conv2dOptions(3, 64, 11).stride(4).padding(2)), relu(), pool(),
                                        nn::Conv2d(Conv2dOptions(64, 192, 5).padding(2)), relu(), pool(),
                                        nn::Conv2d(Conv2dOptions(192, 384, 3).padding(1)), relu(),
                                        nn::Conv2d(Conv2dOptions(384, 256, 3).padding(1)), relu(),
                                        nn::Conv2d(Conv2dOptions(256, 256, 3).padding(1)), relu(), pool()));
  avgpool = register_module("avgpool", torch::nn::AdaptiveAvgPool2d(6));
  auto dropout = [&] { return torch::nn::Dropout(options.dropout); };
  classifier = register_module(
      "classifier", torch::nn::Sequential(dropout(), nn::Linear(256 * 6 * 6, 4096), relu(), dropout(),
                                          nn::Linear(4096, 4096), relu(),
                                          nn::Linear(4096, options.num_classes.value_or(1000))));
}

std::vector<Step> AlexNetImpl::steps() {
  return {step("features", features),
          step("avgpool", avgpool),
          detail::flatten_step(),
          step("classifier", classifier)};
}

// torchvision's AlexNet has no init of its own: PyTorch's defaults.
AlexNet alexnet(std::optional<AlexNet_Weights> weights, AlexNetOptions options) {
  const std::optional<Weights> w = weights;
  options.num_classes = detail::num_classes(options.num_classes, w);
  AlexNet model(options);
  detail::load_or_init(*model, w);
  return model;
}

MZ_REGISTER_MODEL(alexnet);

}  // namespace mz
