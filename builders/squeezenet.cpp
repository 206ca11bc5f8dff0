// SqueezeNet family: block -> model -> worker -> builders, as in torchvision.models.squeezenet.
#include "modelzoo/models/squeezenet.h"

#include <torch/nn/init.h>

#include "builders/common.h"
#include "registry/register.h"

namespace mz {

FireImpl::FireImpl(std::int64_t inplanes, std::int64_t squeeze_planes, std::int64_t expand1x1_planes,
                   std::int64_t expand3x3_planes) {
  using torch::nn::Conv2dOptions;
  squeeze = register_module("squeeze", nn::Conv2d(Conv2dOptions(inplanes, squeeze_planes, 1)));
  squeeze_activation = register_module("squeeze_activation", torch::nn::ReLU());
  expand1x1 = register_module("expand1x1", nn::Conv2d(Conv2dOptions(squeeze_planes, expand1x1_planes, 1)));
  expand1x1_activation = register_module("expand1x1_activation", torch::nn::ReLU());
  expand3x3 =
      register_module("expand3x3", nn::Conv2d(Conv2dOptions(squeeze_planes, expand3x3_planes, 3).padding(1)));
  expand3x3_activation = register_module("expand3x3_activation", torch::nn::ReLU());
}

torch::Tensor FireImpl::forward(torch::Tensor x) {
  x = squeeze_activation(squeeze(x));
  return torch::cat({expand1x1_activation(expand1x1(x)), expand3x3_activation(expand3x3(x))}, 1);
}

SqueezeNetImpl::SqueezeNetImpl(const std::string& version, const SqueezeNetOptions& options) {
  using torch::nn::Conv2dOptions;
  auto pool = [] { return torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(3).stride(2).ceil_mode(true)); };
  if (version == "1_0") {
    features = torch::nn::Sequential(nn::Conv2d(Conv2dOptions(3, 96, 7).stride(2)), torch::nn::ReLU(), pool(),
                                     Fire(96, 16, 64, 64), Fire(128, 16, 64, 64), Fire(128, 32, 128, 128), pool(),
                                     Fire(256, 32, 128, 128), Fire(256, 48, 192, 192), Fire(384, 48, 192, 192),
                                     Fire(384, 64, 256, 256), pool(), Fire(512, 64, 256, 256));
  } else if (version == "1_1") {
    features = torch::nn::Sequential(nn::Conv2d(Conv2dOptions(3, 64, 3).stride(2)), torch::nn::ReLU(), pool(),
                                     Fire(64, 16, 64, 64), Fire(128, 16, 64, 64), pool(), Fire(128, 32, 128, 128),
                                     Fire(256, 32, 128, 128), pool(), Fire(256, 48, 192, 192),
                                     Fire(384, 48, 192, 192), Fire(384, 64, 256, 256), Fire(512, 64, 256, 256));
  } else {
    throw UsageError("SqueezeNet", "unsupported version " + version + ": 1_0 or 1_1 expected");
  }
  register_module("features", features);
  final_conv = nn::Conv2d(Conv2dOptions(512, options.num_classes.value_or(1000), 1));
  classifier = register_module("classifier", torch::nn::Sequential(torch::nn::Dropout(options.dropout), final_conv,
                                                                    torch::nn::ReLU(),
                                                                    torch::nn::AdaptiveAvgPool2d(1)));
}

std::vector<Step> SqueezeNetImpl::steps() {
  return {step("features", features),
          step("classifier", classifier),
          detail::flatten_step()};
}

namespace {

// torchvision's SqueezeNet init: kaiming_uniform_ for convs, N(0, 0.01) for the final conv, zero biases.
void init_squeezenet(SqueezeNetImpl& model) {
  torch::NoGradGuard no_grad;
  nn::for_each<nn::Conv2dImpl>(model, [&](nn::Conv2dImpl& c) {
    if (&c == model.final_conv.get()) c.weight.normal_(0, 0.01);
    else torch::nn::init::kaiming_uniform_(c.weight);
    c.bias.zero_();
  });
}

SqueezeNet make_squeezenet(const std::string& version, const std::optional<Weights>& weights,
                           SqueezeNetOptions options) {
  options.num_classes = detail::num_classes(options.num_classes, weights);
  SqueezeNet model(version, options);
  detail::load_or_init(*model, weights, [&] { init_squeezenet(*model); });
  return model;
}

}  // namespace

SqueezeNet squeezenet1_0(std::optional<SqueezeNet1_0_Weights> w, SqueezeNetOptions o) {
  return make_squeezenet("1_0", w, o);
}
SqueezeNet squeezenet1_1(std::optional<SqueezeNet1_1_Weights> w, SqueezeNetOptions o) {
  return make_squeezenet("1_1", w, o);
}

MZ_REGISTER_MODEL(squeezenet1_0);
MZ_REGISTER_MODEL(squeezenet1_1);

}  // namespace mz
