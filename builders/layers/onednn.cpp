#include "builders/layers/onednn.h"

#include <ideep.hpp>
#include <ATen/ops/mkldnn_reorder_conv2d_weight.h>
#include <ATen/record_function.h>
#include <torch/library.h>

// Defined in LibTorch (aten/src/ATen/native/mkldnn/MKLDNNCommon.cpp) and exported, but not in its installed headers.
namespace at::native {
ideep::tensor& itensor_from_mkldnn(const at::Tensor& mkldnn_tensor);
at::Tensor new_with_itensor_mkldnn(ideep::tensor&& it, c10::optional<c10::ScalarType> dtype,
                                   c10::optional<c10::Device> device);
}  // namespace at::native

namespace mz::onednn {
namespace {

using ideep::algorithm;

ideep::tensor& view(const torch::Tensor& x) { return at::native::itensor_from_mkldnn(x); }

// An activation as a oneDNN eltwise algorithm; none for Hardsigmoid, which oneDNN 2.6 lacks.
struct Eltwise {
  algorithm alg;
  float alpha = 0, beta = 0;
};
std::optional<Eltwise> eltwise(ops::Act act) {
  using ops::Act;
  switch (act) {
    case Act::ReLU: return Eltwise{algorithm::eltwise_relu};
    case Act::ReLU6: return Eltwise{algorithm::eltwise_clip, 0, 6};
    case Act::Hardswish: return Eltwise{algorithm::eltwise_hardswish};
    case Act::SiLU: return Eltwise{algorithm::eltwise_swish, 1};
    case Act::Sigmoid: return Eltwise{algorithm::eltwise_logistic};
    case Act::GELU: return Eltwise{algorithm::eltwise_gelu_erf};  // torch's default GELU is the erf one
    case Act::Tanh: return Eltwise{algorithm::eltwise_tanh};
    case Act::Hardsigmoid: return std::nullopt;
  }
  return std::nullopt;
}

torch::Tensor wrap(ideep::tensor&& t, const torch::Tensor& like) {
  return at::native::new_with_itensor_mkldnn(std::move(t), like.scalar_type(), like.device());
}

void dense_arguments(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const auto& args = op.schema().arguments();
  const std::size_t first = stack->size() - args.size();
  for (std::size_t i = 0; i < args.size(); ++i) {
    const auto converted = [&](const torch::Tensor& t) {
      if (!t.defined() || !t.is_mkldnn()) return t;
      TORCH_CHECK(!args[i].alias_info() || !args[i].alias_info()->isWrite(), op.schema().name(),
                  " cannot write into a tensor in oneDNN's blocked layout");
      return dense(t);
    };
    c10::IValue& v = (*stack)[first + i];
    if (v.isTensor()) {
      v = converted(v.toTensor());
    } else if (v.isTensorList()) {
      c10::List<torch::Tensor> list;
      for (const torch::Tensor& t : v.toTensorList()) list.push_back(converted(t));
      v = list;
    } else if (v.isOptionalTensorList()) {
      c10::List<c10::optional<torch::Tensor>> list;
      for (const c10::optional<torch::Tensor>& t : v.toOptionalTensorList())
        list.push_back(t ? c10::optional<torch::Tensor>(converted(*t)) : c10::nullopt);
      v = list;
    }
  }
  op.callBoxed(stack);
}

}  // namespace

torch::Tensor dense(const torch::Tensor& x) {
  if (!x.is_mkldnn()) return x;
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  return x.to_dense();
}

torch::Tensor blocked(const torch::Tensor& x) {
  if (x.is_mkldnn()) return x;
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  return x.to_mkldnn();
}

torch::Tensor activate(ops::Act act, const torch::Tensor& x, bool inplace) {
  TORCH_CHECK(x.is_mkldnn() && x.scalar_type() == torch::kFloat, "mz::onednn::activate takes a float mkldnn tensor");
  const std::optional<Eltwise> e = eltwise(act);
  if (!e) return {};
  RECORD_FUNCTION("mz::onednn::activate", std::vector<c10::IValue>());
  at::AutoDispatchBelowADInplaceOrView below_autograd;  // LibTorch's accessors assert it
  ideep::tensor& src = view(x);
  if (inplace) {
    ideep::eltwise_forward::compute(src, src, e->alg, ideep::prop_kind::forward_inference, e->alpha, e->beta);
    return x;
  }
  ideep::tensor y;
  ideep::eltwise_forward::compute(src, y, e->alg, ideep::prop_kind::forward_inference, e->alpha, e->beta);
  return wrap(std::move(y), x);
}

torch::Tensor multiply(const torch::Tensor& a, const torch::Tensor& b) {
  TORCH_CHECK(a.is_mkldnn() && a.scalar_type() == torch::kFloat && b.scalar_type() == torch::kFloat,
              "mz::onednn::multiply takes a float mkldnn tensor and a float tensor");
  TORCH_CHECK(a.dim() == b.dim(), "mz::onednn::multiply cannot broadcast ", b.sizes(), " to ", a.sizes());
  for (std::int64_t i = 0; i < a.dim(); ++i)
    TORCH_CHECK(b.size(i) == a.size(i) || b.size(i) == 1, "mz::onednn::multiply cannot broadcast ", b.sizes(),
                " to ", a.sizes());
  RECORD_FUNCTION("mz::onednn::multiply", std::vector<c10::IValue>());
  const torch::Tensor b_mkldnn = blocked(b.is_mkldnn() ? b : b.contiguous());
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  // oneDNN's fast kernels want b blocked as a is (else its reference kernel runs, 300x slower here).
  const ideep::tensor& a_view = view(a);
  ideep::tensor b_like_a;
  b_like_a.init(a_view.get_desc().to_dims(b.sizes().vec()));
  b_like_a.feed_from(view(b_mkldnn));
  ideep::tensor y;
  ideep::binary::compute(a_view, b_like_a, y, algorithm::binary_mul);
  return wrap(std::move(y), a);
}

// A primitive for one input layout and one kind of fusion; `fused` is false where oneDNN cannot fuse them
// (or only in its reference kernel, far slower than the steps apart).
struct Convolution::Plan {
  ideep::tensor::desc src, residual;  // the key, with bias and act; residual: zero when there is none
  bool bias;
  std::optional<ops::Act> act;
  bool fused = true;
  ideep::tensor::desc summand;  // the layout the primitive reads the residual in
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward primitive;
  ideep::tensor weights;  // in pd's layout
};

Convolution::Convolution(const torch::Tensor& weight, const torch::nn::Conv2dOptions& o)
    : out_channels_(weight.size(0)),
      kernel_(weight.sizes().slice(2).vec()),
      stride_(torch::IntArrayRef(o.stride()).vec()),
      dilation_(torch::IntArrayRef(o.dilation()).vec()),
      groups_(o.groups()) {
  const auto* pad = c10::get_if<torch::ExpandingArray<2>>(&o.padding());
  TORCH_CHECK(pad, "mz::onednn::Convolution supports explicit padding only");
  padding_ = torch::IntArrayRef(*pad).vec();
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  weight_ = torch::mkldnn_reorder_conv2d_weight(weight.detach().contiguous().to_mkldnn(), padding_, stride_,
                                                dilation_, groups_);
}

Convolution::~Convolution() = default;

std::shared_ptr<const Convolution::Plan> Convolution::plan(const torch::Tensor& x, bool bias,
                                                           std::optional<ops::Act> act,
                                                           const torch::Tensor& residual) const {
  const ideep::tensor::desc src = view(x).get_desc();
  const ideep::tensor::desc res = residual.defined() ? view(residual).get_desc() : ideep::tensor::desc();
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& p : plans_)
    if (p->src == src && p->residual == res && p->bias == bias && p->act == act) return p;
  auto p = std::make_shared<Plan>();
  p->src = src, p->residual = res, p->bias = bias, p->act = act;
  const ideep::tensor& w = view(weight_);
  ideep::tensor b;  // its desc, for the primitive
  if (bias) b.init({{out_channels_}, ideep::data_type::f32, ideep::format_tag::x});
  ideep::dims dst_dims{x.size(0), out_channels_};
  for (int i = 0; i < 2; ++i)
    dst_dims.push_back((x.size(2 + i) + 2 * padding_[i] - dilation_[i] * (kernel_[i] - 1) - 1) / stride_[i] + 1);
  const auto prepare = [&](const dnnl::post_ops& post_ops) {
    ideep::attr_t attr;
    attr.set_post_ops(post_ops);
    ideep::convolution_forward_params params;
    ideep::tensor dst;
    ideep::convolution_forward::prepare(params, view(x), w, b, dst_dims, dst, stride_, dilation_, padding_, padding_,
                                        static_cast<int>(groups_), {}, {}, {}, attr, algorithm::convolution_direct,
                                        ideep::prop_kind::forward_inference);
    return params.pd;
  };
  p->pd = prepare({});
  if (act || residual.defined()) {
    dnnl::post_ops post_ops;
    // The residual in the output's own layout, as the fast kernels want it.
    p->summand = p->pd.dst_desc();
    if (residual.defined()) post_ops.append_binary(algorithm::binary_add, p->summand);
    const std::optional<Eltwise> e = act ? eltwise(*act) : std::nullopt;
    if (e) post_ops.append_eltwise(1.f, e->alg, e->alpha, e->beta);
    p->fused = !act || e;
    if (p->fused) {
      p->pd = prepare(post_ops);
      p->fused = std::string(p->pd.impl_info_str()).rfind("ref", 0) != 0;
    }
  }
  if (p->fused) {
    p->primitive = dnnl::convolution_forward(p->pd);
    p->weights = w.make_grouped_weights(static_cast<int>(groups_)).reorder_if_differ_in(p->pd.weights_desc());
  }
  if (plans_.size() == 32) plans_.erase(plans_.begin());
  plans_.push_back(p);
  return p;
}

torch::Tensor Convolution::operator()(const torch::Tensor& x, const torch::Tensor& bias, std::optional<ops::Act> act,
                                      const torch::Tensor& residual) const {
  TORCH_CHECK(x.scalar_type() == torch::kFloat && x.dim() == 4, "mz::onednn::Convolution takes a float 4-d input");
  TORCH_CHECK(!bias.defined() || (bias.scalar_type() == torch::kFloat && bias.sizes() == torch::IntArrayRef{out_channels_}),
              "mz::onednn::Convolution takes a float bias of ", out_channels_, " elements");
  RECORD_FUNCTION("mz::onednn::Convolution", std::vector<c10::IValue>());
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  const torch::Tensor in = blocked(x), res = residual.defined() ? blocked(residual) : residual;
  const std::shared_ptr<const Plan> p = plan(in, bias.defined(), act, res);
  if (!p->fused) return {};
  const ideep::tensor src = view(in).reorder_if_differ_in(p->pd.src_desc());
  ideep::tensor y(p->pd.dst_desc());
  ideep::tensor scratchpad(p->pd.scratchpad_desc());
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, p->weights}, {DNNL_ARG_DST, y}, {DNNL_ARG_SCRATCHPAD, scratchpad}};
  const torch::Tensor bias_data = bias.defined() ? bias.contiguous() : bias;
  if (bias.defined())
    args.emplace(DNNL_ARG_BIAS, ideep::tensor(p->pd.bias_desc(), bias_data.data_ptr()));
  ideep::tensor summand;  // owns its buffer when reordered (the map's dnnl::memory does not)
  if (res.defined()) {
    TORCH_CHECK(res.sizes() == torch::IntArrayRef(y.get_dims()), "mz::onednn::Convolution: the residual's shape ",
                res.sizes(), " is not the output's");
    summand = view(res).reorder_if_differ_in(p->summand);
    args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, summand);
  }
  p->primitive.execute(ideep::stream::default_stream(), args);
  return wrap(std::move(y), x);
}

// A primitive for one number of rows, with the weight in the layout it reads.
struct Linear::Plan {
  std::int64_t rows;
  bool bias;
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul primitive;
  ideep::tensor weights;  // in pd's layout, shared by the plans that read the same layout
  torch::Tensor owner;    // the memory of `weights` where that is the original weight's (no reorder needed)
};

Linear::Linear(const torch::Tensor& weight) : out_features_(weight.size(0)), in_features_(weight.size(1)) {
  TORCH_CHECK(weight.dim() == 2 && weight.scalar_type() == torch::kFloat, "mz::onednn::Linear takes a 2-d float weight");
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  weight_ = weight.detach().contiguous();
}

Linear::~Linear() = default;

std::shared_ptr<const Linear::Plan> Linear::plan(std::int64_t rows, bool bias) const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& p : plans_)
    if (p->rows == rows && p->bias == bias) return p;
  using tag = dnnl::memory::format_tag;
  const auto f32 = dnnl::memory::data_type::f32;
  auto p = std::make_shared<Plan>();
  p->rows = rows, p->bias = bias;
  const dnnl::memory::desc src({rows, in_features_}, f32, tag::ab), dst({rows, out_features_}, f32, tag::ab),
      weights({in_features_, out_features_}, f32, tag::any);
  const auto& engine = ideep::engine::cpu_engine();
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);  // a scratchpad per call: safe from several threads
  p->pd = bias ? dnnl::matmul::primitive_desc(
                     {src, weights, dnnl::memory::desc({1, out_features_}, f32, tag::ab), dst}, attr, engine)
               : dnnl::matmul::primitive_desc({src, weights, dst}, attr, engine);
  p->primitive = dnnl::matmul(p->pd);
  for (const auto& other : plans_)
    if (other->weights.get_desc() == p->pd.weights_desc()) p->weights = other->weights, p->owner = other->owner;
  if (p->weights.is_empty()) {
    const Plan* from = plans_.empty() ? nullptr : plans_.back().get();
    if (!from) p->owner = weight_;
    // [out, in] row-major is [in, out] column-major.
    const ideep::tensor source = from ? from->weights
                                      : ideep::tensor({{in_features_, out_features_}, f32, tag::ba}, weight_.data_ptr());
    p->weights = source.reorder_if_differ_in(p->pd.weights_desc());
    if (p->weights.get_data_handle() != source.get_data_handle()) p->owner = torch::Tensor();
    else if (from) p->owner = from->owner;
  }
  weight_ = torch::Tensor();  // the plans hold it now, in their layouts
  if (plans_.size() == 32) plans_.erase(plans_.begin());
  plans_.push_back(p);
  return p;
}

torch::Tensor Linear::operator()(const torch::Tensor& x, const torch::Tensor& bias) const {
  TORCH_CHECK(x.scalar_type() == torch::kFloat && x.dim() >= 1 && x.size(-1) == in_features_ && !x.is_mkldnn(),
              "mz::onednn::Linear takes an ordinary float input whose last dimension is ", in_features_);
  TORCH_CHECK(!bias.defined() || (bias.scalar_type() == torch::kFloat && bias.sizes() == torch::IntArrayRef{out_features_}),
              "mz::onednn::Linear takes a float bias of ", out_features_, " elements");
  RECORD_FUNCTION("mz::onednn::Linear", std::vector<c10::IValue>());
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  const torch::Tensor in = x.contiguous(), b = bias.defined() ? bias.contiguous() : bias;
  const std::int64_t rows = in.numel() / in_features_;
  std::vector<std::int64_t> shape = x.sizes().vec();
  shape.back() = out_features_;
  torch::Tensor y = torch::empty(shape, x.options());
  if (rows == 0) return y;
  const std::shared_ptr<const Plan> p = plan(rows, b.defined());
  const auto& engine = ideep::engine::cpu_engine();
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, dnnl::memory(p->pd.src_desc(), engine, in.data_ptr())},
                                             {DNNL_ARG_WEIGHTS, p->weights},
                                             {DNNL_ARG_DST, dnnl::memory(p->pd.dst_desc(), engine, y.data_ptr())}};
  if (b.defined()) args.emplace(DNNL_ARG_BIAS, dnnl::memory(p->pd.bias_desc(), engine, b.data_ptr()));
  ideep::tensor scratchpad(p->pd.scratchpad_desc());
  args.emplace(DNNL_ARG_SCRATCHPAD, scratchpad);
  p->primitive.execute(ideep::stream::default_stream(), args);
  return y;
}

void accept_blocked_inputs() {
  static const auto* library = [] {
    auto* lib = new torch::Library(torch::Library::IMPL, "_", c10::DispatchKey::MkldnnCPU, __FILE__, __LINE__);
    lib->fallback(torch::CppFunction::makeFromBoxedFunction<&dense_arguments>());
    return lib;
  }();
  (void)library;
}

}  // namespace mz::onednn
