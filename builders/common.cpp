#include "builders/common.h"

#include <algorithm>

#include <torch/nn/init.h>

#include "modelzoo/layers/nn.h"
#include "modelzoo/layers/ops.h"

namespace mz::detail {

std::int64_t num_classes(const std::optional<std::int64_t>& given, const std::optional<Weights>& w,
                         std::int64_t fallback) {
  if (given && *given < 1) throw UsageError("num_classes", "must be at least 1, not " + std::to_string(*given));
  if (!w || !w->meta().categories) return given.value_or(fallback);  // no weights, or no categories (features)
  return override_param<std::int64_t>(given, static_cast<std::int64_t>(w->meta().categories->size()), "num_classes",
                                      w->name());
}

void reset_parameters_except(torch::nn::Module& module, const std::vector<std::string>& keep) {
  if (keep.empty()) return nn::reset_parameters(module);
  for (const auto& child : module.named_children())
    if (std::find(keep.begin(), keep.end(), child.key()) == keep.end()) nn::reset_parameters(*child.value());
}

void init_mobilenet(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  nn::for_each<nn::Conv2dImpl>(model, [](nn::Conv2dImpl& c) {
    torch::nn::init::kaiming_normal_(c.weight, 0, torch::kFanOut);
    if (c.bias.defined()) c.bias.zero_();
  });
  nn::for_each<nn::LinearImpl>(model, [](nn::LinearImpl& l) {
    l.weight.normal_(0, 0.01);
    l.bias.zero_();
  });
}

torch::Tensor inception_transform_input(const torch::Tensor& x) {
  auto channel = [&](std::int64_t c, double mean, double std) {
    return x.select(1, c).unsqueeze(1) * (std / 0.5) + (mean - 0.5) / 0.5;
  };
  return torch::cat({channel(0, 0.485, 0.229), channel(1, 0.456, 0.224), channel(2, 0.406, 0.225)}, 1);
}

Step avgpool_step() {
  return {"avgpool", [](torch::Tensor x) { return torch::adaptive_avg_pool2d(x, {1, 1}); }};
}
Step flatten_step() {
  return {"flatten", [](torch::Tensor x) { return x.flatten(1); }};
}
Step relu_step() {
  return {"relu", [](torch::Tensor x) { return ops::activate(ops::Act::ReLU, x, ops::unshared(x)); }};
}

}  // namespace mz::detail
