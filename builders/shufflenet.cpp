// ShuffleNetV2: block -> model -> worker -> builders, as in torchvision.models.shufflenetv2.
#include "modelzoo/models/shufflenet.h"

#include <torch/nn/modules/activation.h>

#include "builders/common.h"
#include "registry/register.h"

namespace mz {
namespace shufflenetv2 {
namespace {

nn::Conv2d conv(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride = 1,
                std::int64_t padding = 0, std::int64_t groups = 1) {
  return nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).groups(groups).bias(false));
}

nn::Conv2d depthwise_conv(std::int64_t channels, std::int64_t stride) { return conv(channels, channels, 3, stride, 1, channels); }

torch::nn::ReLU relu() { return torch::nn::ReLU(torch::nn::ReLUOptions(true)); }

}  // namespace

InvertedResidualImpl::InvertedResidualImpl(std::int64_t inp, std::int64_t oup, std::int64_t s) : stride(s) {
  if (stride < 1 || stride > 3) throw UsageError("ShuffleNetV2", "illegal stride value");
  const std::int64_t branch_features = oup / 2;
  if (stride == 1 && inp != branch_features * 2)
    throw UsageError("ShuffleNetV2", "Invalid combination of stride " + std::to_string(stride) + ", inp " +
                                         std::to_string(inp) + " and oup " + std::to_string(oup) +
                                         " values. If stride == 1 then inp should be equal to oup // 2 << 1.");
  if (stride > 1)
    branch1 = register_module("branch1", torch::nn::Sequential(depthwise_conv(inp, stride), nn::BatchNorm2d(inp),
                                                               conv(inp, branch_features, 1),
                                                               nn::BatchNorm2d(branch_features), relu()));
  branch2 = register_module(
      "branch2", torch::nn::Sequential(conv(stride > 1 ? inp : branch_features, branch_features, 1),
                                       nn::BatchNorm2d(branch_features), relu(),
                                       depthwise_conv(branch_features, stride), nn::BatchNorm2d(branch_features),
                                       conv(branch_features, branch_features, 1), nn::BatchNorm2d(branch_features),
                                       relu()));
}

torch::Tensor InvertedResidualImpl::forward(const torch::Tensor& x) {
  torch::Tensor out;
  if (stride == 1) {
    auto halves = x.chunk(2, 1);
    out = torch::cat({halves[0], branch2->forward(halves[1])}, 1);
  } else {
    out = torch::cat({branch1->forward(x), branch2->forward(x)}, 1);
  }
  return ops::channel_shuffle(out, 2);
}

}  // namespace shufflenetv2

ShuffleNetV2Impl::ShuffleNetV2Impl(std::vector<std::int64_t> repeats, std::vector<std::int64_t> out_channels,
                                   const ShuffleNetV2Options& options) {
  using shufflenetv2::conv;
  using shufflenetv2::relu;
  if (repeats.size() != 3) throw UsageError("ShuffleNetV2", "expected stages_repeats as list of 3 positive ints");
  if (out_channels.size() != 5)
    throw UsageError("ShuffleNetV2", "expected stages_out_channels as list of 5 positive ints");
  std::int64_t input_channels = out_channels[0];
  conv1 = register_module("conv1", torch::nn::Sequential(conv(3, input_channels, 3, 2, 1),
                                                         nn::BatchNorm2d(input_channels), relu()));
  torch::nn::Sequential* stages[] = {&stage2, &stage3, &stage4};
  for (std::size_t i = 0; i < 3; ++i) {
    const std::int64_t output_channels = out_channels[i + 1];
    torch::nn::Sequential seq(shufflenetv2::InvertedResidual(input_channels, output_channels, 2));
    for (std::int64_t r = 1; r < repeats[i]; ++r)
      seq->push_back(shufflenetv2::InvertedResidual(output_channels, output_channels, 1));
    *stages[i] = register_module("stage" + std::to_string(i + 2), seq);
    input_channels = output_channels;
  }
  const std::int64_t last = out_channels.back();
  conv5 = register_module("conv5", torch::nn::Sequential(conv(input_channels, last, 1), nn::BatchNorm2d(last), relu()));
  fc = register_module("fc", nn::Linear(last, options.num_classes.value_or(1000)));
}

std::vector<Step> ShuffleNetV2Impl::steps() {
  return {step("conv1", conv1),
          {"maxpool", [](torch::Tensor x) { return torch::max_pool2d(x, 3, 2, 1); }},
          step("stage2", stage2),
          step("stage3", stage3),
          step("stage4", stage4),
          step("conv5", conv5),
          {"mean", [](torch::Tensor x) { return x.mean({2, 3}); }},  // global average pool
          step("fc", fc)};
}

namespace {

// ShuffleNetV2 has no init of its own: PyTorch's default init of each layer.
ShuffleNetV2 make_shufflenetv2(const std::optional<Weights>& weights, std::vector<std::int64_t> out_channels,
                               ShuffleNetV2Options options) {
  options.num_classes = detail::num_classes(options.num_classes, weights);
  ShuffleNetV2 model(std::vector<std::int64_t>{4, 8, 4}, std::move(out_channels), options);
  detail::load_or_init(*model, weights);
  return model;
}

}  // namespace

ShuffleNetV2 shufflenet_v2_x0_5(std::optional<ShuffleNet_V2_X0_5_Weights> w, ShuffleNetV2Options o) {
  return make_shufflenetv2(w, {24, 48, 96, 192, 1024}, o);
}
ShuffleNetV2 shufflenet_v2_x1_0(std::optional<ShuffleNet_V2_X1_0_Weights> w, ShuffleNetV2Options o) {
  return make_shufflenetv2(w, {24, 116, 232, 464, 1024}, o);
}
ShuffleNetV2 shufflenet_v2_x1_5(std::optional<ShuffleNet_V2_X1_5_Weights> w, ShuffleNetV2Options o) {
  return make_shufflenetv2(w, {24, 176, 352, 704, 1024}, o);
}
ShuffleNetV2 shufflenet_v2_x2_0(std::optional<ShuffleNet_V2_X2_0_Weights> w, ShuffleNetV2Options o) {
  return make_shufflenetv2(w, {24, 244, 488, 976, 2048}, o);
}

MZ_REGISTER_MODEL(shufflenet_v2_x0_5);
MZ_REGISTER_MODEL(shufflenet_v2_x1_0);
MZ_REGISTER_MODEL(shufflenet_v2_x1_5);
MZ_REGISTER_MODEL(shufflenet_v2_x2_0);

}  // namespace mz
