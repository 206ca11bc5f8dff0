// GoogLeNet: blocks -> model -> builder, as in torchvision.models.googlenet.
#include "modelzoo/models/googlenet.h"

#include <cmath>

#include "builders/common.h"
#include "registry/register.h"

namespace mz {

InceptionImpl::InceptionImpl(std::int64_t in_channels, std::int64_t ch1x1, std::int64_t ch3x3red, std::int64_t ch3x3,
                             std::int64_t ch5x5red, std::int64_t ch5x5, std::int64_t pool_proj) {
  branch1 = register_module("branch1", ops::BasicConv2d(in_channels, ch1x1, 1));
  branch2 = register_module(
      "branch2", torch::nn::Sequential(ops::BasicConv2d(in_channels, ch3x3red, 1), ops::BasicConv2d(ch3x3red, ch3x3, 3, 1, 1)));
  // kernel_size 3 instead of 5 is torchvision's known bug (pytorch/vision#906), kept for the weights.
  branch3 = register_module(
      "branch3", torch::nn::Sequential(ops::BasicConv2d(in_channels, ch5x5red, 1), ops::BasicConv2d(ch5x5red, ch5x5, 3, 1, 1)));
  branch4 = register_module(
      "branch4",
      torch::nn::Sequential(torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(3).stride(1).padding(1).ceil_mode(true)),
                            ops::BasicConv2d(in_channels, pool_proj, 1)));
}

torch::Tensor InceptionImpl::forward(torch::Tensor x) {
  return torch::cat({branch1(x), branch2->forward(x), branch3->forward(x), branch4->forward(x)}, 1);
}

InceptionAuxImpl::InceptionAuxImpl(std::int64_t in_channels, std::int64_t num_classes, double p) {
  conv = register_module("conv", ops::BasicConv2d(in_channels, 128, 1));
  fc1 = register_module("fc1", nn::Linear(2048, 1024));
  fc2 = register_module("fc2", nn::Linear(1024, num_classes));
  dropout = register_module("dropout", torch::nn::Dropout(p));
}

torch::Tensor InceptionAuxImpl::forward(torch::Tensor x) {
  x = conv(torch::adaptive_avg_pool2d(x, {4, 4})).flatten(1);
  return fc2(dropout(torch::relu(fc1(x))));
}

GoogLeNetImpl::GoogLeNetImpl(const GoogLeNetOptions& options)
    : transform_input(options.transform_input.value_or(false)) {
  const std::int64_t num_classes = options.num_classes.value_or(1000);
  auto pool = [](std::int64_t k) {
    return torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(k).stride(2).ceil_mode(true));
  };
  conv1 = register_module("conv1", ops::BasicConv2d(3, 64, 7, 2, 3));
  maxpool1 = register_module("maxpool1", pool(3));
  conv2 = register_module("conv2", ops::BasicConv2d(64, 64, 1));
  conv3 = register_module("conv3", ops::BasicConv2d(64, 192, 3, 1, 1));
  maxpool2 = register_module("maxpool2", pool(3));
  inception3a = register_module("inception3a", Inception(192, 64, 96, 128, 16, 32, 32));
  inception3b = register_module("inception3b", Inception(256, 128, 128, 192, 32, 96, 64));
  maxpool3 = register_module("maxpool3", pool(3));
  inception4a = register_module("inception4a", Inception(480, 192, 96, 208, 16, 48, 64));
  inception4b = register_module("inception4b", Inception(512, 160, 112, 224, 24, 64, 64));
  inception4c = register_module("inception4c", Inception(512, 128, 128, 256, 24, 64, 64));
  inception4d = register_module("inception4d", Inception(512, 112, 144, 288, 32, 64, 64));
  inception4e = register_module("inception4e", Inception(528, 256, 160, 320, 32, 128, 128));
  maxpool4 = register_module("maxpool4", pool(2));
  inception5a = register_module("inception5a", Inception(832, 256, 160, 320, 32, 128, 128));
  inception5b = register_module("inception5b", Inception(832, 384, 192, 384, 48, 128, 128));
  if (options.aux_logits.value_or(true)) {
    aux1 = register_module("aux1", InceptionAux(512, num_classes, options.dropout_aux));
    aux2 = register_module("aux2", InceptionAux(528, num_classes, options.dropout_aux));
  }
  avgpool = register_module("avgpool", torch::nn::AdaptiveAvgPool2d(1));
  dropout = register_module("dropout", torch::nn::Dropout(options.dropout));
  fc = register_module("fc", nn::Linear(1024, num_classes));
}

std::vector<Step> GoogLeNetImpl::steps() {
  std::vector<Step> s = {step("conv1", conv1),
                         step("maxpool1", maxpool1),
                         step("conv2", conv2),
                         step("conv3", conv3),
                         step("maxpool2", maxpool2),
                         step("inception3a", inception3a),
                         step("inception3b", inception3b),
                         step("maxpool3", maxpool3),
                         step("inception4a", inception4a),
                         step("inception4b", inception4b),
                         step("inception4c", inception4c),
                         step("inception4d", inception4d),
                         step("inception4e", inception4e),
                         step("maxpool4", maxpool4),
                         step("inception5a", inception5a),
                         step("inception5b", inception5b),
                         step("avgpool", avgpool),
                         detail::flatten_step(),
                         step("dropout", dropout),
                         step("fc", fc)};
  if (transform_input) s.insert(s.begin(), {"transform_input", detail::inception_transform_input});
  return s;
}

GoogLeNetOutputs GoogLeNetImpl::forward_outputs(torch::Tensor x) {
  GoogLeNetOutputs out;
  const bool aux = is_training() && aux_logits();
  for (auto& s : steps()) {
    x = s.fn(std::move(x));
    if (aux && s.name == "inception4a") out.aux_logits1 = aux1(x);
    if (aux && s.name == "inception4d") out.aux_logits2 = aux2(x);
  }
  out.logits = x;
  return out;
}

void GoogLeNetImpl::drop_aux() {
  if (!aux1) return;
  unregister_module("aux1");
  unregister_module("aux2");
  aux1 = nullptr;
  aux2 = nullptr;
}

namespace {

// torchvision's GoogLeNet init (init_weights): truncated N(0, 0.01) for conv and linear weights,
// on top of PyTorch's defaults.
void init_googlenet(GoogLeNetImpl& model) {
  torch::NoGradGuard no_grad;
  nn::for_each<nn::Conv2dImpl>(model, [](nn::Conv2dImpl& c) { nn::init::trunc_normal_(c.weight, 0, 0.01, -2, 2); });
  nn::for_each<nn::LinearImpl>(model, [](nn::LinearImpl& l) { nn::init::trunc_normal_(l.weight, 0, 0.01, -2, 2); });
}

}  // namespace

// torchvision's builder: with weights, transform_input defaults to true, the aux heads are built so
// that the checkpoint loads strictly, and then removed unless the caller asked for them.
GoogLeNet googlenet(std::optional<GoogLeNet_Weights> weights, GoogLeNetOptions options) {
  const std::optional<Weights> w = weights;
  const bool keep_aux = options.aux_logits.value_or(false);
  if (w) {
    if (!options.transform_input) options.transform_input = true;
    options.aux_logits = detail::override_param(options.aux_logits, true, "aux_logits", w->name());
    options.init_weights = detail::override_param(options.init_weights, false, "init_weights", w->name());
  }
  options.num_classes = detail::num_classes(options.num_classes, w);
  GoogLeNet model(options);
  detail::load_or_init(*model, w, [&] {
    if (options.init_weights.value_or(true)) init_googlenet(*model);
  });
  if (w && !keep_aux) model->drop_aux();
  return model;
}

MZ_REGISTER_MODEL(googlenet);

}  // namespace mz
