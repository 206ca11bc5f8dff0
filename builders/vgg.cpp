// VGG family: model -> worker -> builders, as in torchvision.models.vgg.
#include "modelzoo/models/vgg.h"

#include <torch/nn/init.h>

#include "builders/common.h"
#include "registry/register.h"

namespace mz {
namespace {

constexpr std::int64_t M = 0;  // a max-pool in a cfg
const std::vector<std::int64_t> kCfgA = {64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M};
const std::vector<std::int64_t> kCfgB = {64, 64, M, 128, 128, M, 256, 256, M, 512, 512, M, 512, 512, M};
const std::vector<std::int64_t> kCfgD = {64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M};
const std::vector<std::int64_t> kCfgE = {64,  64,  M,   128, 128, M,   256, 256, 256, 256, M,
                                         512, 512, 512, 512, M,   512, 512, 512, 512, M};

// torchvision's make_layers: the ReLU and pool modules take Sequential indices too.
torch::nn::Sequential make_layers(const std::vector<std::int64_t>& cfg, bool batch_norm) {
  torch::nn::Sequential layers;
  std::int64_t in_channels = 3;
  for (std::int64_t v : cfg) {
    if (v == M) {
      layers->push_back(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(2).stride(2)));
      continue;
    }
    layers->push_back(nn::Conv2d(torch::nn::Conv2dOptions(in_channels, v, 3).padding(1)));
    if (batch_norm) layers->push_back(nn::BatchNorm2d(v));
    layers->push_back(torch::nn::ReLU());
    in_channels = v;
  }
  return layers;
}

}  // namespace

VGGImpl::VGGImpl(const std::vector<std::int64_t>& cfg, bool batch_norm, const VGGOptions& options) {
  features = register_module("features", make_layers(cfg, batch_norm));
  avgpool = register_module("avgpool", torch::nn::AdaptiveAvgPool2d(7));
  auto dropout = [&] { return torch::nn::Dropout(options.dropout); };
  classifier = register_module(
      "classifier", torch::nn::Sequential(nn::Linear(512 * 7 * 7, 4096), torch::nn::ReLU(), dropout(),
                                          nn::Linear(4096, 4096), torch::nn::ReLU(), dropout(),
                                          nn::Linear(4096, options.num_classes.value_or(1000))));
}

std::vector<Step> VGGImpl::steps() {
  return {step("features", features),
          step("avgpool", avgpool),
          detail::flatten_step(),
          step("classifier", classifier)};
}

namespace {

// torchvision's VGG init (init_weights=True): kaiming_normal_(fan_out, relu) for convs, norms to
// (1, 0), N(0, 0.01) for linear layers, every bias zero.
void init_vgg(VGGImpl& model) {
  torch::NoGradGuard no_grad;
  nn::for_each<nn::Conv2dImpl>(model, [](nn::Conv2dImpl& c) {
    torch::nn::init::kaiming_normal_(c.weight, 0, torch::kFanOut, torch::kReLU);
    c.bias.zero_();
  });
  nn::for_each<nn::LinearImpl>(model, [](nn::LinearImpl& l) {
    l.weight.normal_(0, 0.01);
    l.bias.zero_();
  });
}

VGG make_vgg(const std::vector<std::int64_t>& cfg, bool batch_norm, const std::optional<Weights>& weights,
             VGGOptions options) {
  options.num_classes = detail::num_classes(options.num_classes, weights);
  VGG model(cfg, batch_norm, options);
  detail::load_or_init(*model, weights, [&] {
    if (options.init_weights) init_vgg(*model);
  });
  return model;
}

}  // namespace

VGG vgg11(std::optional<VGG11_Weights> w, VGGOptions o) { return make_vgg(kCfgA, false, w, o); }
VGG vgg11_bn(std::optional<VGG11_BN_Weights> w, VGGOptions o) { return make_vgg(kCfgA, true, w, o); }
VGG vgg13(std::optional<VGG13_Weights> w, VGGOptions o) { return make_vgg(kCfgB, false, w, o); }
VGG vgg13_bn(std::optional<VGG13_BN_Weights> w, VGGOptions o) { return make_vgg(kCfgB, true, w, o); }
VGG vgg16(std::optional<VGG16_Weights> w, VGGOptions o) { return make_vgg(kCfgD, false, w, o); }
VGG vgg16_bn(std::optional<VGG16_BN_Weights> w, VGGOptions o) { return make_vgg(kCfgD, true, w, o); }
VGG vgg19(std::optional<VGG19_Weights> w, VGGOptions o) { return make_vgg(kCfgE, false, w, o); }
VGG vgg19_bn(std::optional<VGG19_BN_Weights> w, VGGOptions o) { return make_vgg(kCfgE, true, w, o); }

MZ_REGISTER_MODEL(vgg11);
MZ_REGISTER_MODEL(vgg11_bn);
MZ_REGISTER_MODEL(vgg13);
MZ_REGISTER_MODEL(vgg13_bn);
MZ_REGISTER_MODEL(vgg16);
MZ_REGISTER_MODEL(vgg16_bn);
MZ_REGISTER_MODEL(vgg19);
MZ_REGISTER_MODEL(vgg19_bn);

}  // namespace mz
