#include "modelzoo/layers/nn.h"
#include "builders/layers/amx.h"
#include "builders/layers/init.h"
#include "builders/layers/onednn.h"

#include <cmath>

#include <torch/nn/init.h>
#include <torch/nn/functional/conv.h>
#include <torch/nn/functional/normalization.h>

namespace mz::nn {
namespace {

torch::Tensor uninitialised(torch::IntArrayRef shape) { return torch::empty(shape); }

}  // namespace

void init::reset_affine(torch::Tensor& weight, torch::Tensor& bias) {
  torch::NoGradGuard no_grad;
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (bias.defined()) {
    const auto fan_in = std::get<0>(torch::nn::init::_calculate_fan_in_and_fan_out(weight));
    const double bound = fan_in > 0 ? 1.0 / std::sqrt(static_cast<double>(fan_in)) : 0.0;
    bias.uniform_(-bound, bound);
  }
}

detail::TraceProbe*& detail::trace_probe() {
  thread_local TraceProbe* probe = nullptr;
  return probe;
}

Conv2dImpl::Conv2dImpl(torch::nn::Conv2dOptions o) : options(std::move(o)) {
  const auto& k = options.kernel_size();
  weight = register_parameter(
      "weight", uninitialised({options.out_channels(), options.in_channels() / options.groups(), k->at(0), k->at(1)}));
  if (options.bias()) bias = register_parameter("bias", uninitialised({options.out_channels()}));
}

// Prepacked, for a float input while no adapter is active and the weight is the one packed.
bool Conv2dImpl::runs_prepacked(const torch::Tensor& x) const {
  return convolution && !delta && weight._version() == packed_version && x.scalar_type() == torch::kFloat &&
         x.dim() == 4 && !x.requires_grad();
}

torch::Tensor Conv2dImpl::forward(const torch::Tensor& x) {
  const auto* pad = c10::get_if<torch::ExpandingArray<2>>(&options.padding());
  TORCH_CHECK(pad, "mz::nn::Conv2d supports explicit padding only");
  torch::Tensor y;
  if (runs_prepacked(x)) {
    if (blocked) {
      y = (*convolution)(x, bias);
    } else {
      y = convolution->dense(onednn::dense(x), bias);  // an ordinary output
    }
  } else {
    y = torch::conv2d(onednn::dense(x), adapted(weight), bias, options.stride(), *pad,
                      options.dilation(), options.groups());
  }
  if (detail::TraceProbe* probe = detail::trace_probe()) probe->produced(*this, y);
  return y;
}

torch::Tensor Conv2dImpl::fused(const torch::Tensor& x, std::optional<ops::Act> act, const torch::Tensor& residual) {
  if (!blocked || !runs_prepacked(x) || detail::trace_probe()) return {};
  return (*convolution)(x, bias, act, residual);
}

void Conv2dImpl::reset_parameters() { init::reset_affine(weight, bias); }

void Conv2dImpl::prepack() {
  onednn::accept_blocked_inputs();
  torch::NoGradGuard no_grad;
  convolution = std::make_shared<const onednn::Convolution>(weight, options);
  packed_version = weight._version();
}

void Conv2dImpl::unpack() {
  convolution.reset();
  blocked = false;
}

namespace {

// torch::linear, with the bias fused into the product (addmm) for contiguous inputs of 4 dimensions and
// more too, as at::linear does for 2 and 3: it takes matmul and then adds the bias in a second pass over the
// output. That pass was 1.5% of ConvNeXt's forward, whose blocks apply their Linear maps channels-last.
torch::Tensor fused_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  if (x.dim() <= 3 || x.numel() == 0 || !bias.defined() || !x.is_contiguous() || x.is_mkldnn() || weight.dim() != 2)
    return torch::linear(x, weight, bias);
  std::vector<int64_t> sizes = x.sizes().vec();
  sizes.back() = weight.size(0);
  return torch::addmm(bias, x.view({-1, x.size(-1)}), weight.t()).view(sizes);
}

}  // namespace

torch::Tensor PackedWeight::linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                                   std::optional<ops::Act> act) const {
  if (detail::TraceProbe* probe = detail::trace_probe()) probe->linear_input(*this, x);
  const bool needs_grad = torch::GradMode::is_enabled() &&
                          (x.requires_grad() || weight.requires_grad() || (bias.defined() && bias.requires_grad()));
  const bool usable = (packed || split) && weight.unsafeGetTensorImpl() == source.unsafeGetTensorImpl() &&
                      weight.storage().unsafeGetStorageImpl() == storage.unsafeGetStorageImpl() &&
                      weight._version() == version && x.scalar_type() == torch::kFloat && x.dim() >= 1 &&
                      !x.is_mkldnn() && !needs_grad;
  if (usable) return split ? (*split)(x, bias, act) : (*packed)(x, bias, act);
  if (!needs_grad && onednn::linear_takes(x, weight, bias)) return onednn::linear(x, weight, bias, act);
  const torch::Tensor y = fused_linear(x, weight, bias);
  return act ? ops::activate(*act, y, /*inplace=*/!needs_grad) : y;
}

void PackedWeight::pack(const torch::Tensor& weight, bool bf16x3) {
  torch::NoGradGuard no_grad;
  reset();
  if (bf16x3 && amx::available())
    split = std::make_shared<const amx::Linear>(weight);
  else
    packed = std::make_shared<const onednn::Linear>(weight);
  source = weight;
  storage = weight.storage();
  version = weight._version();
}

void PackedWeight::reset() {
  packed.reset();
  split.reset();
  source = torch::Tensor();
  storage = c10::Storage();
}

void Conv2dImpl::pretty_print(std::ostream& s) const {
  s << "Conv2d(" << options.in_channels() << ", " << options.out_channels() << ", kernel_size="
    << options.kernel_size() << ", stride=" << options.stride() << ")";
}

LinearImpl::LinearImpl(torch::nn::LinearOptions o) : options(std::move(o)) {
  weight = register_parameter("weight", uninitialised({options.out_features(), options.in_features()}));
  if (options.bias()) bias = register_parameter("bias", uninitialised({options.out_features()}));
}

// An input in oneDNN's blocked layout (see Conv2dImpl::blocked) gives an ordinary output.
torch::Tensor LinearImpl::forward(const torch::Tensor& x) { return packed.linear(onednn::dense(x), adapted(weight), bias); }

torch::Tensor LinearImpl::activated(const torch::Tensor& x, ops::Act act) {
  return packed.linear(onednn::dense(x), adapted(weight), bias, act);
}

void LinearImpl::reset_parameters() { init::reset_affine(weight, bias); }

void LinearImpl::pretty_print(std::ostream& s) const {
  s << "Linear(in_features=" << options.in_features() << ", out_features=" << options.out_features() << ")";
}

BatchNorm2dImpl::BatchNorm2dImpl(torch::nn::BatchNormOptions o) : options(std::move(o)) {
  const auto n = options.num_features();
  if (options.affine()) {
    weight = register_parameter("weight", uninitialised({n}));
    bias = register_parameter("bias", uninitialised({n}));
  }
  if (options.track_running_stats()) {
    running_mean = register_buffer("running_mean", torch::zeros({n}));
    running_var = register_buffer("running_var", torch::ones({n}));
    num_batches_tracked = register_buffer("num_batches_tracked", torch::zeros({}, torch::kLong));
  }
}

torch::Tensor BatchNorm2dImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4, "BatchNorm2d expects a 4-D input, got ", x.dim(), "-D");
  if (folded) return x;
  if (detail::TraceProbe* probe = detail::trace_probe()) probe->consumed(*this, x);
  const bool use_batch_stats = is_training() || !options.track_running_stats();
  if (is_training() && options.track_running_stats()) num_batches_tracked.add_(1);
  const double momentum = options.momentum().value_or(0.0);
  return torch::batch_norm(x, weight, bias, running_mean, running_var, use_batch_stats, momentum, options.eps(),
                           /*cudnn_enabled=*/true);
}

void BatchNorm2dImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  if (weight.defined()) weight.fill_(1);
  if (bias.defined()) bias.zero_();
  if (running_mean.defined()) {
    running_mean.zero_();
    running_var.fill_(1);
    if (num_batches_tracked.defined()) num_batches_tracked.zero_();
  }
}

void BatchNorm2dImpl::adapt_checkpoint(IncomingState& state, const std::string& prefix) {
  const std::string key = prefix + "num_batches_tracked";
  if (options.track_running_stats() && !state.contains(key)) state.set(key, torch::zeros({}, torch::kLong));
}

std::pair<torch::Tensor, torch::Tensor> BatchNorm2dImpl::scale_shift() const {
  TORCH_CHECK(running_mean.defined(), "BatchNorm2d without running statistics is not an affine map");
  torch::Tensor scale = (running_var + options.eps()).rsqrt();
  if (weight.defined()) scale = scale * weight;
  torch::Tensor shift = -running_mean * scale;
  if (bias.defined()) shift = shift + bias;
  return {scale, shift};
}

void BatchNorm2dImpl::pretty_print(std::ostream& s) const {
  s << "BatchNorm2d(" << options.num_features() << ", eps=" << options.eps() << ")";
}

BatchNorm2dImpl::BatchNorm2dImpl(torch::nn::BatchNormOptions o, Frozen) : options(std::move(o)) {
  const auto n = options.num_features();
  weight = register_buffer("weight", torch::ones({n}));
  bias = register_buffer("bias", torch::zeros({n}));
  running_mean = register_buffer("running_mean", torch::zeros({n}));
  running_var = register_buffer("running_var", torch::ones({n}));
}

FrozenBatchNorm2dImpl::FrozenBatchNorm2dImpl(std::int64_t features, double eps)
    : BatchNorm2dImpl(torch::nn::BatchNormOptions(features).eps(eps).affine(false).track_running_stats(false),
                      Frozen{}) {}

torch::Tensor FrozenBatchNorm2dImpl::forward(const torch::Tensor& x) {
  if (folded) return x;
  if (detail::TraceProbe* probe = detail::trace_probe()) probe->consumed(*this, x);
  const auto scale = weight * (running_var + options.eps()).rsqrt();
  const auto shift = bias - running_mean * scale;
  return x * scale.reshape({1, -1, 1, 1}) + shift.reshape({1, -1, 1, 1});
}

void FrozenBatchNorm2dImpl::adapt_checkpoint(IncomingState& state, const std::string& prefix) {
  state.erase(prefix + "num_batches_tracked");
}

void FrozenBatchNorm2dImpl::pretty_print(std::ostream& s) const {
  s << "FrozenBatchNorm2d(" << options.num_features() << ", eps=" << options.eps() << ")";
}

LayerNormImpl::LayerNormImpl(torch::nn::LayerNormOptions o) : options(std::move(o)) {
  if (options.elementwise_affine()) {
    weight = register_parameter("weight", uninitialised(options.normalized_shape()));
    bias = register_parameter("bias", uninitialised(options.normalized_shape()));
  }
}

torch::Tensor LayerNormImpl::forward(const torch::Tensor& x) {
  return torch::layer_norm(x, options.normalized_shape(), weight, bias, options.eps());
}

void LayerNormImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  if (weight.defined()) {
    weight.fill_(1);
    bias.zero_();
  }
}

void LayerNormImpl::pretty_print(std::ostream& s) const {
  s << "LayerNorm(" << options.normalized_shape() << ", eps=" << options.eps() << ")";
}

void init::trunc_normal_(torch::Tensor& tensor, double mean, double std, double a, double b) {
  torch::NoGradGuard no_grad;
  auto cdf = [](double v) { return (1.0 + std::erf(v / std::sqrt(2.0))) / 2.0; };
  const double l = cdf((a - mean) / std), u = cdf((b - mean) / std);
  tensor.uniform_(2 * l - 1, 2 * u - 1).erfinv_().mul_(std * std::sqrt(2.0)).add_(mean).clamp_(a, b);
}

void reset_parameters(torch::nn::Module& module) {
  for_each<Resettable>(module, [](Resettable& r) { r.reset_parameters(); });
}

std::int64_t num_params(const torch::nn::Module& module) {
  std::int64_t n = 0;
  for (const auto& p : module.parameters(/*recurse=*/true)) n += p.numel();
  return n;
}

}  // namespace mz::nn
