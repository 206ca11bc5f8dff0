// MNASNet: block -> stack -> model -> worker -> builders, as in torchvision.models.mnasnet.
#include "modelzoo/models/mnasnet.h"

#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/dropout.h>

#include "builders/common.h"
#include "registry/register.h"

namespace mz {
namespace mnasnet {
namespace {

nn::Conv2d conv(std::int64_t in, std::int64_t out, std::int64_t kernel, std::int64_t stride = 1,
                std::int64_t groups = 1) {
  return nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).groups(groups).bias(false));
}

nn::BatchNorm2d bn(std::int64_t channels, double momentum = kBnMomentum) {
  return nn::BatchNorm2d(torch::nn::BatchNormOptions(channels).momentum(momentum));
}

torch::nn::ReLU relu() { return torch::nn::ReLU(torch::nn::ReLUOptions(true)); }

// _stack: `repeats` inverted residuals; only the first changes stride and channels.
ops::SequentialBlock stack(std::int64_t in_ch, std::int64_t out_ch, std::int64_t kernel, std::int64_t stride,
                           std::int64_t exp_factor, std::int64_t repeats) {
  if (repeats < 1) throw UsageError("MNASNet", "repeats should be >= 1, instead got " + std::to_string(repeats));
  ops::SequentialBlock seq;
  seq->push_back(InvertedResidual(in_ch, out_ch, kernel, stride, exp_factor, kBnMomentum));
  for (std::int64_t i = 1; i < repeats; ++i)
    seq->push_back(InvertedResidual(out_ch, out_ch, kernel, 1, exp_factor, kBnMomentum));
  return seq;
}

// Layers 0..8: regular conv to c0, depthwise-separable conv to c1 (no skip), first stack to d2.
void push_stem(torch::nn::Sequential& layers, std::int64_t c0, std::int64_t c1, std::int64_t d2) {
  layers->push_back(conv(3, c0, 3, 2));
  layers->push_back(bn(c0));
  layers->push_back(relu());
  layers->push_back(conv(c0, c0, 3, 1, c0));
  layers->push_back(bn(c0));
  layers->push_back(relu());
  layers->push_back(conv(c0, c1, 1));
  layers->push_back(bn(c1));
  layers->push_back(stack(c1, d2, 3, 2, 3, 3));
}

// _round_to_multiple_of with round_up_bias 0.9.
std::int64_t round_to_multiple_of(double val, std::int64_t divisor) {
  const std::int64_t new_val =
      std::max(divisor, static_cast<std::int64_t>(val + static_cast<double>(divisor) / 2) / divisor * divisor);
  return static_cast<double>(new_val) >= 0.9 * val ? new_val : new_val + divisor;
}

}  // namespace

InvertedResidualImpl::InvertedResidualImpl(std::int64_t in_ch, std::int64_t out_ch, std::int64_t kernel_size,
                                           std::int64_t stride, std::int64_t expansion_factor, double bn_momentum)
    : apply_residual(in_ch == out_ch && stride == 1) {
  if (stride != 1 && stride != 2)
    throw UsageError("MNASNet", "stride should be 1 or 2 instead of " + std::to_string(stride));
  if (kernel_size != 3 && kernel_size != 5)
    throw UsageError("MNASNet", "kernel_size should be 3 or 5 instead of " + std::to_string(kernel_size));
  const std::int64_t mid = in_ch * expansion_factor;
  layers = register_module("layers", torch::nn::Sequential(
                                         conv(in_ch, mid, 1), bn(mid, bn_momentum), relu(),         // pointwise
                                         conv(mid, mid, kernel_size, stride, mid), bn(mid, bn_momentum), relu(),  // depthwise
                                         conv(mid, out_ch, 1), bn(out_ch, bn_momentum)));  // linear pointwise
}

std::vector<std::int64_t> depths(double alpha) {
  std::vector<std::int64_t> out;
  for (const std::int64_t d : {32, 16, 24, 40, 80, 96, 192, 320})
    out.push_back(round_to_multiple_of(static_cast<double>(d) * alpha, 8));
  return out;
}

}  // namespace mnasnet

MNASNetImpl::MNASNetImpl(double a, const MNASNetOptions& options) : alpha(a) {
  using mnasnet::stack;
  if (alpha <= 0.0) throw UsageError("MNASNet", "alpha should be greater than 0.0 instead of " + std::to_string(alpha));
  const auto d = mnasnet::depths(alpha);
  layers = torch::nn::Sequential();
  mnasnet::push_stem(layers, d[0], d[1], d[2]);
  layers->push_back(stack(d[2], d[3], 5, 2, 3, 3));
  layers->push_back(stack(d[3], d[4], 5, 2, 6, 3));
  layers->push_back(stack(d[4], d[5], 3, 1, 6, 2));
  layers->push_back(stack(d[5], d[6], 5, 2, 6, 4));
  layers->push_back(stack(d[6], d[7], 3, 1, 6, 1));
  layers->push_back(mnasnet::conv(d[7], 1280, 1));  // final mapping to the classifier's input
  layers->push_back(mnasnet::bn(1280));
  layers->push_back(mnasnet::relu());
  register_module("layers", layers);
  classifier = register_module("classifier", torch::nn::Sequential(
                                                 torch::nn::Dropout(torch::nn::DropoutOptions(options.dropout)),
                                                 nn::Linear(1280, options.num_classes.value_or(1000))));
}

void MNASNetImpl::use_v1_stem() {
  if (version == 1) return;
  version = 1;
  if (alpha == 1.0) return;
  torch::nn::Sequential v1;
  mnasnet::push_stem(v1, 32, 16, mnasnet::depths(alpha)[2]);
  const auto stem_size = static_cast<std::ptrdiff_t>(v1->size());
  for (auto it = layers->begin() + stem_size; it != layers->end(); ++it) v1->push_back(*it);  // shared, not copied
  replace_module("layers", v1);
  layers = v1;
}

std::vector<Step> MNASNetImpl::steps() {
  return {step("layers", layers),
          {"mean", [](torch::Tensor x) { return x.mean({2, 3}); }},  // global average pool
          step("classifier", classifier)};
}

void MNASNetImpl::adapt_checkpoint(IncomingState& state, const std::string& prefix) {
  const std::string first = prefix + "layers.0.weight", pointwise = prefix + "layers.6.weight";
  if (!state.contains(first) || !state.contains(pointwise)) return;
  const auto f = state.shape(first), p = state.shape(pointwise);
  const bool v1_stem = f.size() == 4 && p.size() == 4 && f[0] == 32 && p[0] == 16 && p[1] == 32;
  const auto d = mnasnet::depths(alpha);
  if (v1_stem && (d[0] != 32 || d[1] != 16)) use_v1_stem();
}

namespace {

// torchvision's MNASNet init: kaiming_normal_(fan_out, relu) for convs, norms to (1, 0), linears
// kaiming_uniform_(fan_out, sigmoid) with zero bias.
void init_mnasnet(MNASNetImpl& model) {
  torch::NoGradGuard no_grad;
  nn::for_each<nn::Conv2dImpl>(model, [](nn::Conv2dImpl& c) {
    torch::nn::init::kaiming_normal_(c.weight, 0, torch::kFanOut, torch::kReLU);
    if (c.bias.defined()) c.bias.zero_();
  });
  nn::for_each<nn::LinearImpl>(model, [](nn::LinearImpl& l) {
    torch::nn::init::kaiming_uniform_(l.weight, 0, torch::kFanOut, torch::kSigmoid);
    l.bias.zero_();
  });
}

MNASNet make_mnasnet(double alpha, const std::optional<Weights>& weights, MNASNetOptions options) {
  options.num_classes = detail::num_classes(options.num_classes, weights);
  MNASNet model(alpha, options);
  detail::load_or_init(*model, weights, [&] { init_mnasnet(*model); });
  return model;
}

}  // namespace

MNASNet mnasnet0_5(std::optional<MNASNet0_5_Weights> w, MNASNetOptions o) { return make_mnasnet(0.5, w, o); }
MNASNet mnasnet0_75(std::optional<MNASNet0_75_Weights> w, MNASNetOptions o) { return make_mnasnet(0.75, w, o); }
MNASNet mnasnet1_0(std::optional<MNASNet1_0_Weights> w, MNASNetOptions o) { return make_mnasnet(1.0, w, o); }
MNASNet mnasnet1_3(std::optional<MNASNet1_3_Weights> w, MNASNetOptions o) { return make_mnasnet(1.3, w, o); }

MZ_REGISTER_MODEL(mnasnet0_5);
MZ_REGISTER_MODEL(mnasnet0_75);
MZ_REGISTER_MODEL(mnasnet1_0);
MZ_REGISTER_MODEL(mnasnet1_3);

}  // namespace mz
