// Shared blocks (torchvision.ops.misc, models._utils): see include/modelzoo/layers/ops.h.
#include "modelzoo/layers/ops.h"

#include <algorithm>

#include <ATen/Parallel.h>
#include <torch/nn/functional/activation.h>

#include "builders/layers/onednn.h"
#include "modelzoo/errors.h"

namespace mz::ops {

std::int64_t make_divisible(double v, std::int64_t divisor, std::optional<std::int64_t> min_value) {
  const std::int64_t floor_min = min_value.value_or(divisor);
  std::int64_t new_v =
      std::max(floor_min, static_cast<std::int64_t>(v + static_cast<double>(divisor) / 2) / divisor * divisor);
  if (static_cast<double>(new_v) < 0.9 * v) new_v += divisor;
  return new_v;
}

torch::Tensor channel_shuffle(const torch::Tensor& x, std::int64_t groups) {
  const auto n = x.size(0), c = x.size(1), h = x.size(2), w = x.size(3);
  return x.view({n, groups, c / groups, h, w}).transpose(1, 2).contiguous().view({n, -1, h, w});
}

torch::Tensor activate(Act act, const torch::Tensor& x, bool inplace) {
  if (x.is_mkldnn()) {  // a convolution's output in oneDNN's layout (mz::optimize_for_inference)
    const torch::Tensor y = onednn::activate(act, x, inplace);
    return y.defined() ? y : activate(act, onednn::dense(x));
  }
  if (inplace) {
    torch::Tensor y = x;
    switch (act) {
      case Act::ReLU: return y.relu_();
      case Act::ReLU6: return torch::hardtanh_(y, 0.0, 6.0);
      case Act::Hardswish: return torch::hardswish_(y);
      case Act::Hardsigmoid: return torch::hardsigmoid_(y);
      case Act::SiLU: return torch::silu_(y);
      case Act::Sigmoid: return y.sigmoid_();
      case Act::GELU: return torch::gelu_(y);
      case Act::Tanh: return y.tanh_();
    }
  }
  switch (act) {
    case Act::ReLU: return torch::relu(x);
    case Act::ReLU6: return torch::hardtanh(x, 0.0, 6.0);
    case Act::Hardswish: return torch::hardswish(x);
    case Act::Hardsigmoid: return torch::hardsigmoid(x);
    case Act::SiLU: return torch::silu(x);
    case Act::Sigmoid: return torch::sigmoid(x);
    case Act::GELU: return torch::gelu(x);
    case Act::Tanh: return torch::tanh(x);
  }
  throw std::logic_error("unknown activation");
}

namespace {

bool plain_float(const torch::Tensor& t) {
  return t.scalar_type() == torch::kFloat && !t.is_mkldnn() && t.is_contiguous() && !t.requires_grad();
}

// In inference, y = y * scale + shift per channel (norm's affine map) + residual, then a ReLU, in one pass over y's
// memory, which the caller owns: [N, C, ...] contiguous float, no gradient. Where it does not apply (training, a
// norm without running statistics, gradients, other layouts, the trace of mz::optimize_for_inference, which sees the
// norms through their forward), false and y untouched.
bool norm_in_place(torch::Tensor& y, nn::BatchNorm2dImpl& norm, const torch::Tensor& residual, bool relu) {
  if (norm.is_training() || !norm.running_mean.defined() || nn::detail::trace_probe() || y.dim() < 2 ||
      !plain_float(y) || (residual.defined() && (!plain_float(residual) || residual.sizes() != y.sizes())))
    return false;
  const auto [scale, shift] = norm.scale_shift();
  if (scale.requires_grad() || shift.requires_grad() || scale.numel() != y.size(1)) return false;
  const torch::Tensor s = scale.to(torch::kFloat).contiguous(), t = shift.to(torch::kFloat).contiguous();
  const std::int64_t channels = y.size(1), planes = y.size(0) * channels;
  const std::int64_t plane = y.numel() / std::max<std::int64_t>(planes, 1);
  float* out = y.data_ptr<float>();
  const float* add = residual.defined() ? residual.data_ptr<float>() : nullptr;
  const float *scales = s.data_ptr<float>(), *shifts = t.data_ptr<float>();
  at::parallel_for(0, planes, std::max<std::int64_t>(1, 32768 / std::max<std::int64_t>(plane, 1)),
                   [&](std::int64_t begin, std::int64_t end) {
                     for (std::int64_t p = begin; p < end; ++p) {
                       const float a = scales[p % channels], b = shifts[p % channels];
                       float* v = out + p * plane;
                       const float* r = add ? add + p * plane : nullptr;
                       for (std::int64_t i = 0; i < plane; ++i) {
                         float z = v[i] * a + b;
                         if (r) z += r[i];
                         v[i] = relu ? std::max(z, 0.f) : z;  // std::max keeps a NaN, as relu does
                       }
                     }
                   });
  return true;
}

}  // namespace

torch::Tensor conv_norm_act(nn::Conv2dImpl& conv, nn::BatchNorm2dImpl* norm, const torch::Tensor& x,
                            std::optional<Act> act, const torch::Tensor& residual) {
  if (!norm || norm->folded) {
    torch::Tensor y = conv.fused(x, act, residual);
    if (y.defined()) return y;
  }
  torch::Tensor y = conv.forward(x);
  if (norm && !norm->folded && norm_in_place(y, *norm, residual, act == Act::ReLU))
    return act && act != Act::ReLU ? activate(*act, y, /*inplace=*/true) : y;
  if (norm) y = norm->forward(y);
  if (residual.defined()) y.add_(y.is_mkldnn() ? onednn::blocked(residual) : onednn::dense(residual));
  return act ? activate(*act, y, /*inplace=*/true) : y;
}

bool unshared(const torch::Tensor& x) {
  if (!x.defined() || x.use_count() != 1) return false;
  return x.is_mkldnn() || (x.has_storage() && x.storage().use_count() == 1);
}

const char* act_name(Act act) {
  switch (act) {
    case Act::ReLU: return "ReLU";
    case Act::ReLU6: return "ReLU6";
    case Act::Hardswish: return "Hardswish";
    case Act::Hardsigmoid: return "Hardsigmoid";
    case Act::SiLU: return "SiLU";
    case Act::Sigmoid: return "Sigmoid";
    case Act::GELU: return "GELU";
    case Act::Tanh: return "Tanh";
  }
  return "?";
}

NormLayer batch_norm2d(double eps, double momentum) {
  return [eps, momentum](std::int64_t n) {
    return torch::nn::AnyModule(nn::BatchNorm2d(torch::nn::BatchNormOptions(n).eps(eps).momentum(momentum)));
  };
}

NormLayer frozen_batch_norm2d(double eps) {
  return [eps](std::int64_t n) { return torch::nn::AnyModule(nn::FrozenBatchNorm2d(n, eps)); };
}

Conv2dNormActivationImpl::Conv2dNormActivationImpl(Conv2dNormActivationOptions o) : options(std::move(o)) {
  const auto& k = options.kernel_size();
  const auto& d = options.dilation();
  const torch::ExpandingArray<2> padding =
      options.padding().value_or(torch::ExpandingArray<2>({(k->at(0) - 1) / 2 * d->at(0), (k->at(1) - 1) / 2 * d->at(1)}));
  const bool has_norm = static_cast<bool>(options.norm_layer());
  push_back(nn::Conv2d(torch::nn::Conv2dOptions(options.in_channels(), options.out_channels(), k)
                           .stride(options.stride())
                           .padding(padding)
                           .dilation(d)
                           .groups(options.groups())
                           .bias(options.bias().value_or(!has_norm))));
  if (has_norm) push_back(options.norm_layer()(options.out_channels()));
  if (options.activation_layer()) push_back(Activation(*options.activation_layer(), options.inplace()));
}

torch::Tensor SequentialBlockImpl::forward(torch::Tensor x) {
  for (std::size_t i = 0; i < size(); ++i) {
    auto* linear = dynamic_cast<nn::LinearImpl*>(ptr(i).get());
    auto* act = linear && i + 1 < size() ? dynamic_cast<ActivationImpl*>(ptr(i + 1).get()) : nullptr;
    if (act)
      x = linear->activated(x, act->act), ++i;
    else
      x = (begin() + static_cast<std::ptrdiff_t>(i))->forward(std::move(x));
  }
  return x;
}

torch::Tensor Conv2dNormActivationImpl::forward(torch::Tensor x) {
  const bool has_norm = static_cast<bool>(options.norm_layer()), has_act = options.activation_layer().has_value();
  if (size() == static_cast<std::size_t>(1 + has_norm + has_act)) {
    auto* conv = dynamic_cast<nn::Conv2dImpl*>(ptr(0).get());
    auto* norm = has_norm ? dynamic_cast<nn::BatchNorm2dImpl*>(ptr(1).get()) : nullptr;
    auto* act = has_act ? dynamic_cast<ActivationImpl*>(ptr(size() - 1).get()) : nullptr;
    if (conv && (norm != nullptr) == has_norm && (act != nullptr) == has_act && (!act || act->inplace))
      return conv_norm_act(*conv, norm, x, act ? std::optional<Act>(act->act) : std::nullopt);
  }
  return SequentialBlockImpl::forward(std::move(x));
}

SqueezeExcitationImpl::SqueezeExcitationImpl(SqueezeExcitationOptions o) : options(o) {
  fc1 = register_module("fc1", nn::Conv2d(torch::nn::Conv2dOptions(o.input_channels(), o.squeeze_channels(), 1)));
  fc2 = register_module("fc2", nn::Conv2d(torch::nn::Conv2dOptions(o.squeeze_channels(), o.input_channels(), 1)));
}

torch::Tensor SqueezeExcitationImpl::forward(const torch::Tensor& x) {
  auto scale = torch::adaptive_avg_pool2d(x, {1, 1});
  scale = activate(options.activation(), fc1(scale));
  scale = activate(options.scale_activation(), fc2(scale));
  return x.is_mkldnn() ? onednn::multiply(x, scale) : scale * x;
}

torch::Tensor stochastic_depth(const torch::Tensor& x, double p, const std::string& mode, bool training) {
  TORCH_CHECK(p >= 0.0 && p <= 1.0, "drop probability has to be between 0 and 1, but got ", p);
  TORCH_CHECK(mode == "row" || mode == "batch", "mode has to be either 'batch' or 'row', but got ", mode);
  if (!training || p == 0.0) return x;
  const double survival = 1.0 - p;
  std::vector<std::int64_t> shape(x.dim(), 1);
  if (mode == "row") shape[0] = x.size(0);
  auto noise = torch::empty(shape, x.options()).bernoulli_(survival);
  if (survival > 0.0) noise.div_(survival);
  return x * noise;
}

MLPImpl::MLPImpl(MLPOptions o) : options(std::move(o)) {
  std::int64_t in = options.in_channels();
  const auto& hidden = options.hidden_channels();
  TORCH_CHECK(!hidden.empty(), "MLP needs at least one layer");
  for (std::size_t i = 0; i + 1 < hidden.size(); ++i) {
    push_back(nn::Linear(torch::nn::LinearOptions(in, hidden[i]).bias(options.bias())));
    if (options.norm_layer()) push_back(options.norm_layer()(hidden[i]));
    push_back(Activation(options.activation_layer()));
    push_back(torch::nn::Dropout(options.dropout()));
    in = hidden[i];
  }
  push_back(nn::Linear(torch::nn::LinearOptions(in, hidden.back()).bias(options.bias())));
  push_back(torch::nn::Dropout(options.dropout()));
}

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& bias, double dropout, bool training, double scale) {
  const bool differentiable =
      torch::GradMode::is_enabled() &&
      (q.requires_grad() || k.requires_grad() || v.requires_grad() || (bias.defined() && bias.requires_grad()));
  if (!(training && dropout > 0.0) && !differentiable && onednn::attention_takes(q, k, v, bias)) {
    torch::Tensor out = onednn::attention(q, k, v, bias, scale);
    if (out.defined()) return out;
  }
  auto scores = torch::matmul(scale == 1.0 ? q : q * scale, k.transpose(-2, -1));
  if (bias.defined()) scores = scores + bias;
  scores = torch::softmax(scores, -1);
  if (training && dropout > 0.0) scores = torch::dropout(scores, dropout, /*train=*/true);
  return torch::matmul(scores, v);
}

SelfAttentionImpl::SelfAttentionImpl(std::int64_t embed_dim, std::int64_t num_heads, double dropout)
    : embed_dim(embed_dim), num_heads(num_heads), dropout(dropout) {
  if (num_heads <= 0 || embed_dim % num_heads != 0)
    throw UsageError("MultiheadAttention", "embed_dim (" + std::to_string(embed_dim) +
                                               ") must be divisible by num_heads (" + std::to_string(num_heads) + ")");
  in_proj_weight = register_parameter("in_proj_weight", torch::empty({3 * embed_dim, embed_dim}));
  in_proj_bias = register_parameter("in_proj_bias", torch::empty({3 * embed_dim}));
  out_proj = register_module("out_proj", nn::Linear(embed_dim, embed_dim));
}

void SelfAttentionImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  torch::nn::init::xavier_uniform_(in_proj_weight);
  in_proj_bias.zero_();
  out_proj->bias.zero_();
}

torch::Tensor SelfAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& key_padding_mask) {
  TORCH_CHECK(x.dim() == 3, "Expected (batch_size, seq_length, embed_dim) got ", x.sizes());
  static const bool has_onednn = at::hasMKLDNN();
  if (!is_training() && !torch::GradMode::is_enabled() && !key_padding_mask.defined() && !has_onednn)
    return std::get<0>(at::_native_multi_head_attention(x, x, x, embed_dim, num_heads, adapted(in_proj_weight),
                                                        in_proj_bias, out_proj->adapted(out_proj->weight),
                                                        out_proj->bias, {}, /*need_weights=*/false));
  const auto b = x.size(0), t = x.size(1), head_dim = embed_dim / num_heads;
  auto qkv = in_proj_packed.linear(x, adapted(in_proj_weight), in_proj_bias)
                 .view({b, t, 3, num_heads, head_dim})
                 .permute({2, 0, 3, 1, 4});
  torch::Tensor bias;  // -inf at the padded keys
  if (key_padding_mask.defined())
    bias = torch::zeros({b, 1, 1, t}, x.options())
               .masked_fill_(key_padding_mask.view({b, 1, 1, t}), -std::numeric_limits<float>::infinity());
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  auto out = attention(qkv[0], qkv[1], qkv[2], bias, dropout, is_training(), scale);
  return out_proj(out.transpose(1, 2).reshape({b, t, embed_dim}));
}

BasicConv2dImpl::BasicConv2dImpl(torch::nn::Conv2dOptions options) {
  const auto out = options.out_channels();
  conv = register_module("conv", nn::Conv2d(options.bias(false)));
  bn = register_module("bn", nn::BatchNorm2d(torch::nn::BatchNormOptions(out).eps(0.001)));
}

torch::Tensor BasicConv2dImpl::forward(torch::Tensor x) { return torch::relu(bn(conv(x))); }

torch::Tensor relative_position_index(std::int64_t wh, std::int64_t ww) {
  auto grids = torch::meshgrid({torch::arange(wh), torch::arange(ww)}, "ij");
  auto coords = torch::stack({grids[0], grids[1]}).flatten(1);                             // 2, Wh*Ww
  auto rel = (coords.unsqueeze(2) - coords.unsqueeze(1)).permute({1, 2, 0}).contiguous();  // Wh*Ww, Wh*Ww, 2
  rel.select(2, 0).add_(wh - 1).mul_(2 * ww - 1);
  rel.select(2, 1).add_(ww - 1);
  return rel.sum(-1).flatten();
}

}  // namespace mz::ops
