#include "builders/layers/onednn.h"

#include <algorithm>
#include <chrono>

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

// Adds a new plan to a cache of the 32 most recent (the oldest goes first), with its owner's mutex held.
template <typename Plan>
std::shared_ptr<Plan> keep_recent(std::vector<std::shared_ptr<const Plan>>& plans, std::shared_ptr<Plan> plan) {
  if (plans.size() == 32) plans.erase(plans.begin());
  plans.push_back(plan);
  return plan;
}

// A matmul of src [rows, in] by weights [in, out] (their desc: a layout, or any; src has their data type) into float
// dst [rows, out], with a float bias [1, out] or none, adding to what dst holds if `accumulate`, then applying `act`
// (one eltwise() has) if given, whose scratchpad the caller passes (safe from several threads at once).
dnnl::matmul::primitive_desc matmul_desc(std::int64_t rows, const dnnl::memory::desc& weights, bool bias,
                                         bool accumulate = false, std::optional<ops::Act> act = std::nullopt) {
  using tag = dnnl::memory::format_tag;
  const auto f32 = dnnl::memory::data_type::f32;
  const auto in = weights.dims()[0], out = weights.dims()[1];
  const dnnl::memory::desc src({rows, in}, weights.data_type(), tag::ab), dst({rows, out}, f32, tag::ab);
  const auto& engine = ideep::engine::cpu_engine();
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::post_ops post;
  if (accumulate) post.append_sum(1.f);
  if (act) {
    const Eltwise e = eltwise(*act).value();
    post.append_eltwise(1.f, e.alg, e.alpha, e.beta);
  }
  attr.set_post_ops(post);
  return bias ? dnnl::matmul::primitive_desc({src, weights, dnnl::memory::desc({1, out}, f32, tag::ab), dst}, attr,
                                             engine)
              : dnnl::matmul::primitive_desc({src, weights, dst}, attr, engine);
}

// Runs a matmul of matmul_desc (or any matmul) on `in` into y, each laid out as the primitive's descriptions say.
void run_matmul(const dnnl::matmul::primitive_desc& pd, const dnnl::matmul& primitive, const torch::Tensor& in,
                const dnnl::memory& weights, const torch::Tensor& bias, torch::Tensor& y) {
  const auto& engine = ideep::engine::cpu_engine();
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, dnnl::memory(pd.src_desc(), engine, in.data_ptr())},
                                             {DNNL_ARG_WEIGHTS, weights},
                                             {DNNL_ARG_DST, dnnl::memory(pd.dst_desc(), engine, y.data_ptr())}};
  if (bias.defined()) args.emplace(DNNL_ARG_BIAS, dnnl::memory(pd.bias_desc(), engine, bias.data_ptr()));
  ideep::tensor scratchpad(pd.scratchpad_desc());
  args.emplace(DNNL_ARG_SCRATCHPAD, scratchpad);
  primitive.execute(ideep::stream::default_stream(), args);
}

// The activation if oneDNN can apply it in a matmul's pass (eltwise() has it), else none: the caller applies it after.
std::optional<ops::Act> fusable(std::optional<ops::Act> act) { return act && eltwise(*act) ? act : std::nullopt; }

// A float tensor on the CPU in the ordinary layout (any strides), and its oneDNN description.
bool strided_float(const torch::Tensor& t) {
  return t.scalar_type() == torch::kFloat && t.layout() == torch::kStrided && t.device().is_cpu() && !t.is_nested() &&
         !t.is_mkldnn();
}
dnnl::memory::desc strided_desc(const torch::Tensor& t) {
  return {t.sizes().vec(), dnnl::memory::data_type::f32, t.strides().vec()};
}

// An empty tensor of x's shape with its last dimension `out`.
torch::Tensor linear_output(const torch::Tensor& x, std::int64_t out) {
  std::vector<std::int64_t> shape = x.sizes().vec();
  shape.back() = out;
  return torch::empty(shape, x.options());
}

}  // namespace

torch::Tensor packed_linear_output(const char* who, const torch::Tensor& x, const torch::Tensor& bias,
                                   std::int64_t in_features, std::int64_t out_features) {
  TORCH_CHECK(x.scalar_type() == torch::kFloat && x.dim() >= 1 && x.size(-1) == in_features && !x.is_mkldnn(), who,
              " takes an ordinary float input whose last dimension is ", in_features);
  TORCH_CHECK(!bias.defined() ||
                  (bias.scalar_type() == torch::kFloat && bias.sizes() == torch::IntArrayRef{out_features}),
              who, " takes a float bias of ", out_features, " elements");
  return linear_output(x, out_features);
}

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

namespace {

bool reference_kernel(const dnnl::primitive_desc& pd) { return std::string(pd.impl_info_str()).rfind("ref", 0) == 0; }

// Runs a convolution primitive on src (reordered to its layout if need be) into dst (allocated in its layout if
// empty). bias may be undefined; summand (the residual, already in the layout the primitive reads) may be empty.
void run(const dnnl::convolution_forward::primitive_desc& pd, const dnnl::convolution_forward& primitive,
         const ideep::tensor& weights, const ideep::tensor& src, const torch::Tensor& bias,
         const ideep::tensor& summand, ideep::tensor& dst) {
  const ideep::tensor in = src.reorder_if_differ_in(pd.src_desc());
  if (dst.is_empty()) dst.init(pd.dst_desc());
  ideep::tensor scratchpad(pd.scratchpad_desc());
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, in}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}, {DNNL_ARG_SCRATCHPAD, scratchpad}};
  if (bias.defined()) args.emplace(DNNL_ARG_BIAS, ideep::tensor(pd.bias_desc(), bias.data_ptr()));
  if (!summand.is_empty()) args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, summand);
  primitive.execute(ideep::stream::default_stream(), args);
}

}  // namespace

Convolution::Convolution(const torch::Tensor& weight, const torch::nn::Conv2dOptions& o)
    : out_channels_(weight.size(0)),
      kernel_(weight.sizes().slice(2).vec()),
      stride_(torch::IntArrayRef(o.stride()).vec()),
      dilation_(torch::IntArrayRef(o.dilation()).vec()),
      groups_(o.groups()),
      channels_last_(weight.suggest_memory_format() == torch::MemoryFormat::ChannelsLast) {
  const auto* pad = c10::get_if<torch::ExpandingArray<2>>(&o.padding());
  TORCH_CHECK(pad, "mz::onednn::Convolution supports explicit padding only");
  padding_ = torch::IntArrayRef(*pad).vec();
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  weight_ = torch::mkldnn_reorder_conv2d_weight(weight.detach().contiguous().to_mkldnn(), padding_, stride_,
                                                dilation_, groups_);
}

Convolution::~Convolution() = default;

std::shared_ptr<const Convolution::Plan> Convolution::plan(const ideep::tensor& x, bool bias,
                                                           std::optional<ops::Act> act,
                                                           const torch::Tensor& residual) const {
  const ideep::tensor::desc src = x.get_desc();
  const ideep::tensor::desc res = residual.defined() ? view(residual).get_desc() : ideep::tensor::desc();
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& p : plans_)
    if (p->src == src && p->residual == res && p->bias == bias && p->act == act) return p;
  auto p = std::make_shared<Plan>();
  p->src = src, p->residual = res, p->bias = bias, p->act = act;
  const ideep::tensor& w = view(weight_);
  ideep::tensor b;  // its desc, for the primitive
  if (bias) b.init({{out_channels_}, ideep::data_type::f32, ideep::format_tag::x});
  const ideep::dims x_dims = x.get_dims();
  ideep::dims dst_dims{x_dims[0], out_channels_};
  for (int i = 0; i < 2; ++i)
    dst_dims.push_back((x_dims[2 + i] + 2 * padding_[i] - dilation_[i] * (kernel_[i] - 1) - 1) / stride_[i] + 1);
  const auto prepare = [&](const dnnl::post_ops& post_ops) {
    ideep::attr_t attr;
    attr.set_post_ops(post_ops);
    ideep::convolution_forward_params params;
    ideep::tensor dst;
    ideep::convolution_forward::prepare(params, x, w, b, dst_dims, dst, stride_, dilation_, padding_, padding_,
                                        static_cast<int>(groups_), {}, {}, {}, attr, algorithm::convolution_direct,
                                        ideep::prop_kind::forward_inference);
    return params.pd;
  };
  p->pd = prepare({});
  // The weight in a plan's layout: another plan's copy when one has that layout (a convolution run on several input
  // shapes, as a detector's heads on each pyramid level, mostly reads one), else a new one, reordered from the plain
  // layout if via_plain (oneDNN has no reorder from a blocked weight into Winograd's layout).
  const auto weights_in = [&](const ideep::tensor::desc& desc, bool via_plain) {
    for (const auto& other : plans_)
      if (other->weights.get_desc() == desc) return other->weights;
    return via_plain ? w.to_public().reorder_if_differ_in(desc)
                     : w.make_grouped_weights(static_cast<int>(groups_)).reorder_if_differ_in(desc);
  };
  dnnl::post_ops post_ops;
  if (act || residual.defined()) {
    // The residual in the output's own layout, as the fast kernels want it.
    p->summand = p->pd.dst_desc();
    if (residual.defined()) post_ops.append_binary(algorithm::binary_add, p->summand);
    const std::optional<Eltwise> e = act ? eltwise(*act) : std::nullopt;
    if (e) post_ops.append_eltwise(1.f, e->alg, e->alpha, e->beta);
    p->fused = !act || e;
    if (p->fused) {
      p->pd = prepare(post_ops);
      p->fused = !reference_kernel(p->pd);
    }
  }
  if (!p->fused) return keep_recent(plans_, p);
  p->primitive = dnnl::convolution_forward(p->pd);
  p->weights = weights_in(p->pd.weights_desc(), false);
  // Winograd's algorithm for 3x3 convolutions of stride 1 (oneDNN's F(4x4, 3x3): 1.6-1.8x as fast as the direct
  // one on AVX-512 here, with the same rounding error against float64), where oneDNN has it and it measures faster
  // on this input: the fastest of three runs each, layout conversions included.
  const bool winograd = kernel_ == std::vector<std::int64_t>{3, 3} && stride_ == std::vector<std::int64_t>{1, 1} &&
                        dilation_ == std::vector<std::int64_t>{1, 1} && groups_ == 1 && !residual.defined();
  if (winograd) {
    try {
      const auto any = [](const ideep::dims& dims) {
        return dnnl::memory::desc(dims, dnnl::memory::data_type::f32, dnnl::memory::format_tag::any);
      };
      dnnl::primitive_attr attr;
      attr.set_post_ops(post_ops);
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      const dnnl::memory::dims strides(stride_.begin(), stride_.end()), pads(padding_.begin(), padding_.end());
      const auto kind = dnnl::prop_kind::forward_inference;
      const auto desc = bias ? dnnl::convolution_forward::desc(kind, algorithm::convolution_winograd, any(x_dims),
                                                                any(w.get_dims()), any({out_channels_}),
                                                                any(dst_dims), strides, pads, pads)
                             : dnnl::convolution_forward::desc(kind, algorithm::convolution_winograd, any(x_dims),
                                                                any(w.get_dims()), any(dst_dims), strides, pads, pads);
      const dnnl::convolution_forward::primitive_desc pd(desc, attr, ideep::engine::cpu_engine());
      if (!reference_kernel(pd)) {
        const dnnl::convolution_forward primitive(pd);
        const ideep::tensor weights = weights_in(pd.weights_desc(), true);
        const torch::Tensor zero_bias = bias ? torch::zeros({out_channels_}) : torch::Tensor();
        const auto seconds = [&](const dnnl::convolution_forward::primitive_desc& pd,
                                 const dnnl::convolution_forward& primitive, const ideep::tensor& weights) {
          double best = INFINITY;
          for (int i = 0; i < 3; ++i) {
            const auto t0 = std::chrono::steady_clock::now();
            ideep::tensor y;
            run(pd, primitive, weights, x, zero_bias, {}, y);
            best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
          }
          return best;
        };
        if (seconds(pd, primitive, weights) < seconds(p->pd, p->primitive, p->weights))
          p->pd = pd, p->primitive = primitive, p->weights = weights;
      }
    } catch (const dnnl::error&) {  // no Winograd kernel here for this shape or fusion
    }
  }
  return keep_recent(plans_, p);
}

torch::Tensor Convolution::operator()(const torch::Tensor& x, const torch::Tensor& bias, std::optional<ops::Act> act,
                                      const torch::Tensor& residual) const {
  check(x, bias);
  RECORD_FUNCTION("mz::onednn::Convolution", std::vector<c10::IValue>());
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  const torch::Tensor in = blocked(x), res = residual.defined() ? blocked(residual) : residual;
  const std::shared_ptr<const Plan> p = plan(view(in), bias.defined(), act, res);
  if (!p->fused) return {};
  ideep::tensor summand;  // owns its buffer when reordered
  if (res.defined()) {
    TORCH_CHECK(res.sizes() == torch::IntArrayRef(p->summand.get_dims()), "mz::onednn::Convolution: the residual's shape ",
                res.sizes(), " is not the output's");
    summand = view(res).reorder_if_differ_in(p->summand);
  }
  ideep::tensor y;
  run(p->pd, p->primitive, p->weights, view(in), bias.defined() ? bias.contiguous() : bias, summand, y);
  return wrap(std::move(y), x);
}

torch::Tensor Convolution::dense(const torch::Tensor& x, const torch::Tensor& bias) const {
  check(x, bias);
  TORCH_CHECK(!x.is_mkldnn(), "mz::onednn::Convolution::dense takes an ordinary tensor");
  RECORD_FUNCTION("mz::onednn::Convolution", std::vector<c10::IValue>());
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  // Channels-last if the input or the weight is (as torch::mkldnn_convolution decides).
  const auto format = channels_last_ ? torch::MemoryFormat::ChannelsLast : x.suggest_memory_format();
  const auto tag = format == torch::MemoryFormat::ChannelsLast ? ideep::format_tag::nhwc : ideep::format_tag::nchw;
  const torch::Tensor in = x.contiguous(format);
  const ideep::tensor src({in.sizes().vec(), ideep::data_type::f32, tag}, in.data_ptr());
  const std::shared_ptr<const Plan> p = plan(src, bias.defined(), {}, {});
  const ideep::dims dims = ideep::tensor::desc(p->pd.dst_desc()).get_dims();
  torch::Tensor out = torch::empty(dims, x.options().memory_format(format));
  ideep::tensor plain({dims, ideep::data_type::f32, tag}, out.data_ptr());
  ideep::tensor y;  // in the primitive's layout, unless that is the output's
  if (p->pd.dst_desc() == plain.get_desc()) y = plain;
  run(p->pd, p->primitive, p->weights, src, bias.defined() ? bias.contiguous() : bias, {}, y);
  if (y.get_data_handle() != out.data_ptr()) y.reorder_to(plain);
  return out;
}

void Convolution::check(const torch::Tensor& x, const torch::Tensor& bias) const {
  TORCH_CHECK(x.scalar_type() == torch::kFloat && x.dim() == 4, "mz::onednn::Convolution takes a float 4-d input");
  TORCH_CHECK(!bias.defined() || (bias.scalar_type() == torch::kFloat && bias.sizes() == torch::IntArrayRef{out_channels_}),
              "mz::onednn::Convolution takes a float bias of ", out_channels_, " elements");
}

// The primitive for one number of rows, with the weight in the layout it reads.
struct Linear::Plan {
  std::int64_t rows;
  bool bias;
  std::optional<ops::Act> act;  // applied in the matmul's pass
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul primitive;
  ideep::tensor weights;  // in pd's layout, shared by the plans that read the same layout
  torch::Tensor owner;  // the original weight, if `weights` is its memory (no reorder needed)
};

Linear::Linear(const torch::Tensor& weight) : out_features_(weight.size(0)), in_features_(weight.size(1)) {
  TORCH_CHECK(weight.dim() == 2 && weight.scalar_type() == torch::kFloat && weight.numel() > 0,
              "mz::onednn::Linear takes a non-empty 2-d float weight");
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  weight_ = weight.detach().contiguous();
}

Linear::~Linear() = default;

std::shared_ptr<const Linear::Plan> Linear::plan(std::int64_t rows, bool bias, std::optional<ops::Act> act) const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& p : plans_)
    if (p->rows == rows && p->bias == bias && p->act == act) return p;
  const auto f32 = dnnl::memory::data_type::f32;
  auto p = std::make_shared<Plan>();
  p->rows = rows, p->bias = bias, p->act = act;
  p->pd = matmul_desc(rows, dnnl::memory::desc({in_features_, out_features_}, f32, dnnl::memory::format_tag::any),
                      bias, false, act);
  p->primitive = dnnl::matmul(p->pd);
  // An earlier plan's copy in this layout, or one reordered from the original (until the first plan holds it) or
  // from the latest plan's copy.
  for (const auto& other : plans_)
    if (other->weights.get_desc() == p->pd.weights_desc()) {
      p->weights = other->weights, p->owner = other->owner;
      return keep_recent(plans_, p);
    }
  const Plan* from = plans_.empty() ? nullptr : plans_.back().get();
  // [out, in] row-major is [in, out] column-major.
  const ideep::tensor source = from ? from->weights
                                    : ideep::tensor({{in_features_, out_features_}, f32, dnnl::memory::format_tag::ba},
                                                    weight_.data_ptr());
  p->weights = source.reorder_if_differ_in(p->pd.weights_desc());
  if (p->weights.get_data_handle() == source.get_data_handle()) p->owner = from ? from->owner : weight_;
  weight_ = torch::Tensor();  // the plans hold it now, in their layouts
  return keep_recent(plans_, p);
}

torch::Tensor Linear::operator()(const torch::Tensor& x, const torch::Tensor& bias, std::optional<ops::Act> act) const {
  torch::Tensor y = packed_linear_output("mz::onednn::Linear", x, bias, in_features_, out_features_);
  RECORD_FUNCTION("mz::onednn::Linear", std::vector<c10::IValue>());
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  const torch::Tensor in = x.contiguous(), b = bias.defined() ? bias.contiguous() : bias;
  const std::int64_t rows = in.numel() / in_features_;
  if (rows == 0) return y;
  const std::optional<ops::Act> fused = fusable(act);
  const std::shared_ptr<const Plan> p = plan(rows, b.defined(), fused);
  run_matmul(p->pd, p->primitive, in, p->weights, b, y);
  return act && !fused ? ops::activate(*act, y, true) : y;
}

bool linear_takes(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  const auto plain_float = [](const torch::Tensor& t) { return strided_float(t) && t.is_contiguous(); };
  static const bool available = at::hasMKLDNN();
  return available && plain_float(x) && x.dim() >= 1 && plain_float(weight) && weight.dim() == 2 &&
         weight.numel() > 0 && x.size(-1) == weight.size(1) &&
         (!bias.defined() || (plain_float(bias) && bias.dim() == 1 && bias.size(0) == weight.size(0)));
}

torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                     std::optional<ops::Act> act) {
  TORCH_CHECK(linear_takes(x, weight, bias), "mz::onednn::linear takes contiguous float tensors of matching shapes");
  RECORD_FUNCTION("mz::onednn::linear", std::vector<c10::IValue>());
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  const std::int64_t out = weight.size(0), in = weight.size(1), rows = x.numel() / in;
  torch::Tensor y = linear_output(x, out);
  if (rows == 0) return y;
  // [out, in] row-major is [in, out] column-major.
  const dnnl::memory::desc weights({in, out}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::ba);
  const std::optional<ops::Act> fused = fusable(act);
  const dnnl::matmul::primitive_desc pd = matmul_desc(rows, weights, bias.defined(), false, fused);
  run_matmul(pd, dnnl::matmul(pd), x, dnnl::memory(weights, ideep::engine::cpu_engine(), weight.data_ptr()), bias, y);
  return act && !fused ? ops::activate(*act, y, true) : y;
}

bool attention_takes(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                     const torch::Tensor& bias) {
  static const bool available = at::hasMKLDNN();
  const std::int64_t d = q.dim();
  if (!available || !strided_float(q) || !strided_float(k) || !strided_float(v) || d < 2 || d > DNNL_MAX_NDIMS ||
      k.dim() != d || v.dim() != d || q.numel() == 0 || k.numel() == 0 || v.numel() == 0)
    return false;
  const auto leading = q.sizes().slice(0, d - 2);
  if (k.sizes().slice(0, d - 2) != leading || v.sizes().slice(0, d - 2) != leading || k.size(-1) != q.size(-1) ||
      v.size(-2) != k.size(-2))
    return false;
  if (!bias.defined()) return true;
  if (!strided_float(bias) || bias.dim() > d) return false;
  std::vector<std::int64_t> scores = q.sizes().vec();
  scores.back() = k.size(-2);
  for (std::int64_t i = 1; i <= bias.dim(); ++i)
    if (bias.size(-i) != 1 && bias.size(-i) != scores[d - i]) return false;
  return true;
}

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& bias, double scale) {
  TORCH_CHECK(attention_takes(q, k, v, bias), "mz::onednn::attention takes float tensors q [..., N, D], k [..., M, D], "
              "v [..., M, Dv] with the same leading dimensions, and a bias that broadcasts to [..., N, M]");
  RECORD_FUNCTION("mz::onednn::attention", std::vector<c10::IValue>());
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  const std::int64_t d = q.dim(), m = k.size(-2);
  torch::Tensor scores = linear_output(q, m);
  std::vector<std::int64_t> shape = q.sizes().vec();
  shape.back() = v.size(-1);
  if (d >= 3) std::swap(shape[d - 3], shape[d - 2]);
  torch::Tensor out = torch::empty(shape, q.options());
  if (d >= 3) out = out.transpose(-3, -2);
  const torch::Tensor kt = k.transpose(-2, -1);
  const auto& engine = ideep::engine::cpu_engine();
  dnnl::primitive_attr plain, scaled;
  plain.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  scaled.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (scale != 1.0) scaled.set_output_scales(0, {static_cast<float>(scale)});
  const dnnl::memory::desc rows({scores.numel() / m, m}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::ab);
  dnnl::matmul::primitive_desc qk, pv;
  dnnl::softmax_forward::primitive_desc softmax;
  try {
    qk = dnnl::matmul::primitive_desc({strided_desc(q), strided_desc(kt), strided_desc(scores)}, scaled, engine);
    pv = dnnl::matmul::primitive_desc({strided_desc(scores), strided_desc(v), strided_desc(out)}, plain, engine);
    softmax = dnnl::softmax_forward::primitive_desc(
        dnnl::softmax_forward::desc(dnnl::prop_kind::forward_inference, rows, 1), plain, engine);
  } catch (const dnnl::error&) {
    return {};  // strides oneDNN does not take (zero ones, of expanded tensors)
  }
  if (reference_kernel(qk) || reference_kernel(pv) || reference_kernel(softmax)) return {};
  run_matmul(qk, dnnl::matmul(qk), q, dnnl::memory(qk.weights_desc(), engine, kt.data_ptr()), {}, scores);
  if (bias.defined()) scores.add_(bias);
  const dnnl::memory probabilities(rows, engine, scores.data_ptr());
  ideep::tensor scratchpad(softmax.scratchpad_desc());
  dnnl::softmax_forward(softmax).execute(ideep::stream::default_stream(), {{DNNL_ARG_SRC, probabilities},
                                                                          {DNNL_ARG_DST, probabilities},
                                                                          {DNNL_ARG_SCRATCHPAD, scratchpad}});
  run_matmul(pv, dnnl::matmul(pv), scores, dnnl::memory(pv.weights_desc(), engine, v.data_ptr()), {}, out);
  return out;
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
