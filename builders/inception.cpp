// Inception v3: blocks -> model -> builder, as in torchvision.models.inception.
#include "modelzoo/models/inception.h"

#include "builders/common.h"
#include "registry/register.h"

namespace mz {
namespace {

using torch::nn::Conv2dOptions;

// A ops::BasicConv2d with a k x 1 or 1 x k kernel and the padding that keeps the size.
ops::BasicConv2d conv_kx1(std::int64_t in, std::int64_t out, std::int64_t kh, std::int64_t kw) {
  return ops::BasicConv2d(Conv2dOptions(in, out, {kh, kw}).padding({(kh - 1) / 2, (kw - 1) / 2}));
}

torch::Tensor avg_pool_3x3(const torch::Tensor& x) { return torch::avg_pool2d(x, 3, 1, 1); }
torch::Tensor max_pool_3x3_s2(const torch::Tensor& x) { return torch::max_pool2d(x, 3, 2); }

}  // namespace

InceptionAImpl::InceptionAImpl(std::int64_t in_channels, std::int64_t pool_features) {
  branch1x1 = register_module("branch1x1", ops::BasicConv2d(in_channels, 64, 1));
  branch5x5_1 = register_module("branch5x5_1", ops::BasicConv2d(in_channels, 48, 1));
  branch5x5_2 = register_module("branch5x5_2", ops::BasicConv2d(48, 64, 5, 1, 2));
  branch3x3dbl_1 = register_module("branch3x3dbl_1", ops::BasicConv2d(in_channels, 64, 1));
  branch3x3dbl_2 = register_module("branch3x3dbl_2", ops::BasicConv2d(64, 96, 3, 1, 1));
  branch3x3dbl_3 = register_module("branch3x3dbl_3", ops::BasicConv2d(96, 96, 3, 1, 1));
  branch_pool = register_module("branch_pool", ops::BasicConv2d(in_channels, pool_features, 1));
}

torch::Tensor InceptionAImpl::forward(torch::Tensor x) {
  return torch::cat({branch1x1(x), branch5x5_2(branch5x5_1(x)), branch3x3dbl_3(branch3x3dbl_2(branch3x3dbl_1(x))),
                     branch_pool(avg_pool_3x3(x))},
                    1);
}

InceptionBImpl::InceptionBImpl(std::int64_t in_channels) {
  branch3x3 = register_module("branch3x3", ops::BasicConv2d(in_channels, 384, 3, 2));
  branch3x3dbl_1 = register_module("branch3x3dbl_1", ops::BasicConv2d(in_channels, 64, 1));
  branch3x3dbl_2 = register_module("branch3x3dbl_2", ops::BasicConv2d(64, 96, 3, 1, 1));
  branch3x3dbl_3 = register_module("branch3x3dbl_3", ops::BasicConv2d(96, 96, 3, 2));
}

torch::Tensor InceptionBImpl::forward(torch::Tensor x) {
  return torch::cat(
      {branch3x3(x), branch3x3dbl_3(branch3x3dbl_2(branch3x3dbl_1(x))), max_pool_3x3_s2(x)}, 1);
}

InceptionCImpl::InceptionCImpl(std::int64_t in_channels, std::int64_t c7) {
  branch1x1 = register_module("branch1x1", ops::BasicConv2d(in_channels, 192, 1));
  branch7x7_1 = register_module("branch7x7_1", ops::BasicConv2d(in_channels, c7, 1));
  branch7x7_2 = register_module("branch7x7_2", conv_kx1(c7, c7, 1, 7));
  branch7x7_3 = register_module("branch7x7_3", conv_kx1(c7, 192, 7, 1));
  branch7x7dbl_1 = register_module("branch7x7dbl_1", ops::BasicConv2d(in_channels, c7, 1));
  branch7x7dbl_2 = register_module("branch7x7dbl_2", conv_kx1(c7, c7, 7, 1));
  branch7x7dbl_3 = register_module("branch7x7dbl_3", conv_kx1(c7, c7, 1, 7));
  branch7x7dbl_4 = register_module("branch7x7dbl_4", conv_kx1(c7, c7, 7, 1));
  branch7x7dbl_5 = register_module("branch7x7dbl_5", conv_kx1(c7, 192, 1, 7));
  branch_pool = register_module("branch_pool", ops::BasicConv2d(in_channels, 192, 1));
}

torch::Tensor InceptionCImpl::forward(torch::Tensor x) {
  auto b7 = branch7x7_3(branch7x7_2(branch7x7_1(x)));
  auto b7dbl = branch7x7dbl_5(branch7x7dbl_4(branch7x7dbl_3(branch7x7dbl_2(branch7x7dbl_1(x)))));
  return torch::cat({branch1x1(x), b7, b7dbl, branch_pool(avg_pool_3x3(x))}, 1);
}

InceptionDImpl::InceptionDImpl(std::int64_t in_channels) {
  branch3x3_1 = register_module("branch3x3_1", ops::BasicConv2d(in_channels, 192, 1));
  branch3x3_2 = register_module("branch3x3_2", ops::BasicConv2d(192, 320, 3, 2));
  branch7x7x3_1 = register_module("branch7x7x3_1", ops::BasicConv2d(in_channels, 192, 1));
  branch7x7x3_2 = register_module("branch7x7x3_2", conv_kx1(192, 192, 1, 7));
  branch7x7x3_3 = register_module("branch7x7x3_3", conv_kx1(192, 192, 7, 1));
  branch7x7x3_4 = register_module("branch7x7x3_4", ops::BasicConv2d(192, 192, 3, 2));
}

torch::Tensor InceptionDImpl::forward(torch::Tensor x) {
  auto b7 = branch7x7x3_4(branch7x7x3_3(branch7x7x3_2(branch7x7x3_1(x))));
  return torch::cat({branch3x3_2(branch3x3_1(x)), b7, max_pool_3x3_s2(x)}, 1);
}

InceptionEImpl::InceptionEImpl(std::int64_t in_channels) {
  branch1x1 = register_module("branch1x1", ops::BasicConv2d(in_channels, 320, 1));
  branch3x3_1 = register_module("branch3x3_1", ops::BasicConv2d(in_channels, 384, 1));
  branch3x3_2a = register_module("branch3x3_2a", conv_kx1(384, 384, 1, 3));
  branch3x3_2b = register_module("branch3x3_2b", conv_kx1(384, 384, 3, 1));
  branch3x3dbl_1 = register_module("branch3x3dbl_1", ops::BasicConv2d(in_channels, 448, 1));
  branch3x3dbl_2 = register_module("branch3x3dbl_2", ops::BasicConv2d(448, 384, 3, 1, 1));
  branch3x3dbl_3a = register_module("branch3x3dbl_3a", conv_kx1(384, 384, 1, 3));
  branch3x3dbl_3b = register_module("branch3x3dbl_3b", conv_kx1(384, 384, 3, 1));
  branch_pool = register_module("branch_pool", ops::BasicConv2d(in_channels, 192, 1));
}

torch::Tensor InceptionEImpl::forward(torch::Tensor x) {
  auto b3 = branch3x3_1(x);
  b3 = torch::cat({branch3x3_2a(b3), branch3x3_2b(b3)}, 1);
  auto b3dbl = branch3x3dbl_2(branch3x3dbl_1(x));
  b3dbl = torch::cat({branch3x3dbl_3a(b3dbl), branch3x3dbl_3b(b3dbl)}, 1);
  return torch::cat({branch1x1(x), b3, b3dbl, branch_pool(avg_pool_3x3(x))}, 1);
}

Inception3AuxImpl::Inception3AuxImpl(std::int64_t in_channels, std::int64_t num_classes) {
  conv0 = register_module("conv0", ops::BasicConv2d(in_channels, 128, 1));
  conv1 = register_module("conv1", ops::BasicConv2d(128, 768, 5));
  fc = register_module("fc", nn::Linear(768, num_classes));
}

torch::Tensor Inception3AuxImpl::forward(torch::Tensor x) {
  x = conv1(conv0(torch::avg_pool2d(x, 5, 3)));
  return fc(torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1));
}

Inception3Impl::Inception3Impl(const Inception3Options& options)
    : transform_input(options.transform_input.value_or(false)) {
  const std::int64_t num_classes = options.num_classes.value_or(1000);
  auto pool = [] { return torch::nn::MaxPool2d(torch::nn::MaxPool2dOptions(3).stride(2)); };
  Conv2d_1a_3x3 = register_module("Conv2d_1a_3x3", ops::BasicConv2d(3, 32, 3, 2));
  Conv2d_2a_3x3 = register_module("Conv2d_2a_3x3", ops::BasicConv2d(32, 32, 3));
  Conv2d_2b_3x3 = register_module("Conv2d_2b_3x3", ops::BasicConv2d(32, 64, 3, 1, 1));
  maxpool1 = register_module("maxpool1", pool());
  Conv2d_3b_1x1 = register_module("Conv2d_3b_1x1", ops::BasicConv2d(64, 80, 1));
  Conv2d_4a_3x3 = register_module("Conv2d_4a_3x3", ops::BasicConv2d(80, 192, 3));
  maxpool2 = register_module("maxpool2", pool());
  Mixed_5b = register_module("Mixed_5b", InceptionA(192, 32));
  Mixed_5c = register_module("Mixed_5c", InceptionA(256, 64));
  Mixed_5d = register_module("Mixed_5d", InceptionA(288, 64));
  Mixed_6a = register_module("Mixed_6a", InceptionB(288));
  Mixed_6b = register_module("Mixed_6b", InceptionC(768, 128));
  Mixed_6c = register_module("Mixed_6c", InceptionC(768, 160));
  Mixed_6d = register_module("Mixed_6d", InceptionC(768, 160));
  Mixed_6e = register_module("Mixed_6e", InceptionC(768, 192));
  if (options.aux_logits.value_or(true)) AuxLogits = register_module("AuxLogits", Inception3Aux(768, num_classes));
  Mixed_7a = register_module("Mixed_7a", InceptionD(768));
  Mixed_7b = register_module("Mixed_7b", InceptionE(1280));
  Mixed_7c = register_module("Mixed_7c", InceptionE(2048));
  avgpool = register_module("avgpool", torch::nn::AdaptiveAvgPool2d(1));
  dropout = register_module("dropout", torch::nn::Dropout(options.dropout));
  fc = register_module("fc", nn::Linear(2048, num_classes));
}

std::vector<Step> Inception3Impl::steps() {
  std::vector<Step> s = {step("Conv2d_1a_3x3", Conv2d_1a_3x3),
                         step("Conv2d_2a_3x3", Conv2d_2a_3x3),
                         step("Conv2d_2b_3x3", Conv2d_2b_3x3),
                         step("maxpool1", maxpool1),
                         step("Conv2d_3b_1x1", Conv2d_3b_1x1),
                         step("Conv2d_4a_3x3", Conv2d_4a_3x3),
                         step("maxpool2", maxpool2),
                         step("Mixed_5b", Mixed_5b),
                         step("Mixed_5c", Mixed_5c),
                         step("Mixed_5d", Mixed_5d),
                         step("Mixed_6a", Mixed_6a),
                         step("Mixed_6b", Mixed_6b),
                         step("Mixed_6c", Mixed_6c),
                         step("Mixed_6d", Mixed_6d),
                         step("Mixed_6e", Mixed_6e),
                         step("Mixed_7a", Mixed_7a),
                         step("Mixed_7b", Mixed_7b),
                         step("Mixed_7c", Mixed_7c),
                         step("avgpool", avgpool),
                         step("dropout", dropout),
                         detail::flatten_step(),
                         step("fc", fc)};
  if (transform_input) s.insert(s.begin(), {"transform_input", detail::inception_transform_input});
  return s;
}

InceptionOutputs Inception3Impl::forward_outputs(torch::Tensor x) {
  InceptionOutputs out;
  const bool aux = is_training() && aux_logits();
  for (auto& s : steps()) {
    x = s.fn(std::move(x));
    if (aux && s.name == "Mixed_6e") out.aux_logits = AuxLogits(x);
  }
  out.logits = x;
  return out;
}

void Inception3Impl::drop_aux() {
  if (!AuxLogits) return;
  unregister_module("AuxLogits");
  AuxLogits = nullptr;
}

namespace {

// torchvision's Inception3 init (init_weights): truncated N(0, 0.1) for conv and linear weights
// except AuxLogits.fc (N(0, 0.001): its `stddev` attribute; the one on AuxLogits.conv1 sits on the
// ops::BasicConv2d, not on the conv, and so has no effect), on top of PyTorch's defaults.
void init_inception3(Inception3Impl& model) {
  torch::NoGradGuard no_grad;
  nn::for_each<nn::Conv2dImpl>(model, [](nn::Conv2dImpl& c) { nn::init::trunc_normal_(c.weight, 0, 0.1, -2, 2); });
  nn::for_each<nn::LinearImpl>(model, [](nn::LinearImpl& l) { nn::init::trunc_normal_(l.weight, 0, 0.1, -2, 2); });
  if (model.AuxLogits) nn::init::trunc_normal_(model.AuxLogits->fc->weight, 0, 0.001, -2, 2);
}

}  // namespace

// torchvision's builder: with weights, transform_input defaults to true and the aux head is built
// and loaded; it is removed only if aux_logits was false, which weights forbid, so it stays.
Inception3 inception_v3(std::optional<Inception_V3_Weights> weights, Inception3Options options) {
  const std::optional<Weights> w = weights;
  const bool keep_aux = options.aux_logits.value_or(true);
  if (w) {
    if (!options.transform_input) options.transform_input = true;
    options.aux_logits = detail::override_param(options.aux_logits, true, "aux_logits", w->name());
    options.init_weights = detail::override_param(options.init_weights, false, "init_weights", w->name());
  }
  options.num_classes = detail::num_classes(options.num_classes, w);
  Inception3 model(options);
  detail::load_or_init(*model, w, [&] {
    if (options.init_weights.value_or(true)) init_inception3(*model);
  });
  if (w && !keep_aux) model->drop_aux();
  return model;
}

MZ_REGISTER_MODEL(inception_v3);

}  // namespace mz
