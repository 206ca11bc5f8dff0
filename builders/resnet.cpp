// ResNet family: blocks -> model -> worker -> builders, as in torchvision.models.resnet.
#include "modelzoo/models/resnet.h"

#include <torch/nn/init.h>

#include "builders/common.h"
#include "registry/register.h"

namespace mz {
namespace {

nn::Conv2d conv3x3(std::int64_t in, std::int64_t out, std::int64_t stride = 1, std::int64_t groups = 1,
                   std::int64_t dilation = 1) {
  return nn::Conv2d(torch::nn::Conv2dOptions(in, out, 3).stride(stride).padding(dilation).groups(groups).dilation(
      dilation).bias(false));
}

nn::Conv2d conv1x1(std::int64_t in, std::int64_t out, std::int64_t stride = 1) {
  return nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1).stride(stride).bias(false));
}

// The norm_layer's module as the typed BatchNorm2d member it fills (nn.BatchNorm2d by default).
nn::BatchNorm2d norm2d(const ops::NormLayer& norm, std::int64_t features) {
  if (!norm) return nn::BatchNorm2d(features);
  auto bn = std::dynamic_pointer_cast<nn::BatchNorm2dImpl>(norm(features).ptr());
  if (!bn) throw UsageError("ResNet", "norm_layer must make a BatchNorm2d or FrozenBatchNorm2d");
  return nn::BatchNorm2d(bn);
}

// The downsample branch: torchvision's Sequential(conv1x1, norm), one conv_norm_act when it is that.
torch::Tensor shortcut(torch::nn::Sequential downsample, torch::Tensor x) {
  if (!downsample) return x;
  auto* conv = downsample->size() == 2 ? downsample->ptr(0)->as<nn::Conv2dImpl>() : nullptr;
  auto* norm = conv ? dynamic_cast<nn::BatchNorm2dImpl*>(downsample->ptr(1).get()) : nullptr;
  return norm ? ops::conv_norm_act(*conv, norm, x, std::nullopt) : downsample->forward(x);
}

}  // namespace

BasicBlockImpl::BasicBlockImpl(std::int64_t inplanes, std::int64_t planes, std::int64_t stride,
                               torch::nn::Sequential ds, std::int64_t groups, std::int64_t base_width,
                               std::int64_t dilation, const ops::NormLayer& norm) {
  if (groups != 1 || base_width != 64) throw UsageError("BasicBlock", "only supports groups=1 and width_per_group=64");
  if (dilation > 1) throw UsageError("BasicBlock", "dilation > 1 not supported");
  conv1 = register_module("conv1", conv3x3(inplanes, planes, stride));
  bn1 = register_module("bn1", norm2d(norm, planes));
  conv2 = register_module("conv2", conv3x3(planes, planes));
  bn2 = register_module("bn2", norm2d(norm, planes));
  if (ds) downsample = register_module("downsample", ds);
}

// In place where torchvision is (ReLU(inplace=True), out += identity): at detection sizes every fresh
// temporary of a block is tens of MB that the kernel must map and zero.
torch::Tensor BasicBlockImpl::forward(torch::Tensor x) {
  const auto out = ops::conv_norm_act(*conv1, bn1.get(), x, ops::Act::ReLU);
  return ops::conv_norm_act(*conv2, bn2.get(), out, ops::Act::ReLU, shortcut(downsample, x));
}

BottleneckImpl::BottleneckImpl(std::int64_t inplanes, std::int64_t planes, std::int64_t stride,
                               torch::nn::Sequential ds, std::int64_t groups, std::int64_t base_width,
                               std::int64_t dilation, const ops::NormLayer& norm) {
  const std::int64_t width = static_cast<std::int64_t>(planes * (base_width / 64.0)) * groups;
  conv1 = register_module("conv1", conv1x1(inplanes, width));
  bn1 = register_module("bn1", norm2d(norm, width));
  conv2 = register_module("conv2", conv3x3(width, width, stride, groups, dilation));
  bn2 = register_module("bn2", norm2d(norm, width));
  conv3 = register_module("conv3", conv1x1(width, planes * expansion));
  bn3 = register_module("bn3", norm2d(norm, planes * expansion));
  if (ds) downsample = register_module("downsample", ds);
}

torch::Tensor BottleneckImpl::forward(torch::Tensor x) {
  auto out = ops::conv_norm_act(*conv1, bn1.get(), x, ops::Act::ReLU);
  out = ops::conv_norm_act(*conv2, bn2.get(), out, ops::Act::ReLU);
  return ops::conv_norm_act(*conv3, bn3.get(), out, ops::Act::ReLU, shortcut(downsample, x));
}

ResNetImpl::ResNetImpl(ResNetBlock block, std::vector<std::int64_t> layers, const ResNetOptions& options)
    : groups_(options.groups.value_or(1)), base_width_(options.width_per_group.value_or(64)), norm_(options.norm_layer) {
  auto dilate = options.replace_stride_with_dilation;
  if (dilate.empty()) dilate = {false, false, false};
  if (dilate.size() != 3)
    throw UsageError("ResNet", "replace_stride_with_dilation should be empty or a 3-element list, got " +
                                   std::to_string(dilate.size()) + " elements");
  const std::int64_t expansion = block == ResNetBlock::Basic ? BasicBlockImpl::expansion : BottleneckImpl::expansion;
  conv1 = register_module("conv1", nn::Conv2d(torch::nn::Conv2dOptions(3, 64, 7).stride(2).padding(3).bias(false)));
  bn1 = register_module("bn1", norm2d(norm_, 64));
  layer1 = register_module("layer1", make_layer(block, 64, layers.at(0), 1, false));
  layer2 = register_module("layer2", make_layer(block, 128, layers.at(1), 2, dilate[0]));
  layer3 = register_module("layer3", make_layer(block, 256, layers.at(2), 2, dilate[1]));
  layer4 = register_module("layer4", make_layer(block, 512, layers.at(3), 2, dilate[2]));
  fc = register_module("fc", nn::Linear(512 * expansion, options.num_classes.value_or(1000)));
}

torch::nn::Sequential ResNetImpl::make_layer(ResNetBlock block, std::int64_t planes, std::int64_t blocks,
                                             std::int64_t stride, bool dilate) {
  const std::int64_t expansion = block == ResNetBlock::Basic ? BasicBlockImpl::expansion : BottleneckImpl::expansion;
  const std::int64_t previous_dilation = dilation_;
  if (dilate) {
    dilation_ *= stride;
    stride = 1;
  }
  torch::nn::Sequential downsample{nullptr};
  if (stride != 1 || inplanes_ != planes * expansion)
    downsample = torch::nn::Sequential(conv1x1(inplanes_, planes * expansion, stride),
                                       norm2d(norm_, planes * expansion));
  torch::nn::Sequential layer;
  auto add = [&](std::int64_t s, torch::nn::Sequential ds, std::int64_t d) {
    if (block == ResNetBlock::Basic) layer->push_back(BasicBlock(inplanes_, planes, s, ds, groups_, base_width_, d, norm_));
    else layer->push_back(Bottleneck(inplanes_, planes, s, ds, groups_, base_width_, d, norm_));
    inplanes_ = planes * expansion;
  };
  add(stride, downsample, previous_dilation);
  for (std::int64_t i = 1; i < blocks; ++i) add(1, nullptr, dilation_);
  return layer;
}

std::vector<Step> ResNetImpl::steps() {
  return {step("conv1", conv1),
          step("bn1", bn1),
          detail::relu_step(),
          {"maxpool", [](torch::Tensor x) { return torch::max_pool2d(x, 3, 2, 1); }},
          step("layer1", layer1),
          step("layer2", layer2),
          step("layer3", layer3),
          step("layer4", layer4),
          detail::avgpool_step(),
          detail::flatten_step(),
          step("fc", fc)};
}

namespace {

// torchvision's ResNet init: kaiming_normal_(fan_out, relu) for convs, norms to (1, 0), the
// default for fc, and optionally the last BN of every residual branch to zero.
void init_resnet(ResNetImpl& model, bool zero_init_residual) {
  torch::NoGradGuard no_grad;
  nn::for_each<nn::Conv2dImpl>(model, [](nn::Conv2dImpl& c) {
    torch::nn::init::kaiming_normal_(c.weight, 0, torch::kFanOut, torch::kReLU);
  });
  if (!zero_init_residual) return;
  nn::for_each<BottleneckImpl>(model, [](BottleneckImpl& b) { b.bn3->weight.zero_(); });
  nn::for_each<BasicBlockImpl>(model, [](BasicBlockImpl& b) { b.bn2->weight.zero_(); });
}

ResNet make_resnet(ResNetBlock block, std::vector<std::int64_t> layers, const std::optional<Weights>& weights,
                   ResNetOptions options) {
  options.num_classes = detail::num_classes(options.num_classes, weights);
  ResNet model(block, std::move(layers), options);
  detail::load_or_init(*model, weights, [&] { init_resnet(*model, options.zero_init_residual); });
  return model;
}

ResNetOptions fixed(ResNetOptions o, const char* builder, std::int64_t groups, std::int64_t width_per_group) {
  if (groups != 1) o.groups = detail::override_param(o.groups, groups, "groups", builder);
  o.width_per_group = detail::override_param(o.width_per_group, width_per_group, "width_per_group", builder);
  return o;
}

constexpr auto kBasic = ResNetBlock::Basic;
constexpr auto kBottleneck = ResNetBlock::Bottleneck;

}  // namespace

ResNet resnet18(std::optional<ResNet18_Weights> w, ResNetOptions o) { return make_resnet(kBasic, {2, 2, 2, 2}, w, o); }
ResNet resnet34(std::optional<ResNet34_Weights> w, ResNetOptions o) { return make_resnet(kBasic, {3, 4, 6, 3}, w, o); }
ResNet resnet50(std::optional<ResNet50_Weights> w, ResNetOptions o) {
  return make_resnet(kBottleneck, {3, 4, 6, 3}, w, o);
}
ResNet resnet101(std::optional<ResNet101_Weights> w, ResNetOptions o) {
  return make_resnet(kBottleneck, {3, 4, 23, 3}, w, o);
}
ResNet resnet152(std::optional<ResNet152_Weights> w, ResNetOptions o) {
  return make_resnet(kBottleneck, {3, 8, 36, 3}, w, o);
}
ResNet resnext50_32x4d(std::optional<ResNeXt50_32X4D_Weights> w, ResNetOptions o) {
  return make_resnet(kBottleneck, {3, 4, 6, 3}, w, fixed(o, "resnext50_32x4d", 32, 4));
}
ResNet resnext101_32x8d(std::optional<ResNeXt101_32X8D_Weights> w, ResNetOptions o) {
  return make_resnet(kBottleneck, {3, 4, 23, 3}, w, fixed(o, "resnext101_32x8d", 32, 8));
}
ResNet resnext101_64x4d(std::optional<ResNeXt101_64X4D_Weights> w, ResNetOptions o) {
  return make_resnet(kBottleneck, {3, 4, 23, 3}, w, fixed(o, "resnext101_64x4d", 64, 4));
}
ResNet wide_resnet50_2(std::optional<Wide_ResNet50_2_Weights> w, ResNetOptions o) {
  return make_resnet(kBottleneck, {3, 4, 6, 3}, w, fixed(o, "wide_resnet50_2", 1, 128));
}
ResNet wide_resnet101_2(std::optional<Wide_ResNet101_2_Weights> w, ResNetOptions o) {
  return make_resnet(kBottleneck, {3, 4, 23, 3}, w, fixed(o, "wide_resnet101_2", 1, 128));
}

MZ_REGISTER_MODEL(resnet18);
MZ_REGISTER_MODEL(resnet34);
MZ_REGISTER_MODEL(resnet50);
MZ_REGISTER_MODEL(resnet101);
MZ_REGISTER_MODEL(resnet152);
MZ_REGISTER_MODEL(resnext50_32x4d);
MZ_REGISTER_MODEL(resnext101_32x8d);
MZ_REGISTER_MODEL(resnext101_64x4d);
MZ_REGISTER_MODEL(wide_resnet50_2);
MZ_REGISTER_MODEL(wide_resnet101_2);

}  // namespace mz
