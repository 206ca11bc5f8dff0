#include "builders/layers/onednn.h"

#include <ideep.hpp>
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

const ideep::tensor& view(const torch::Tensor& x) { return at::native::itensor_from_mkldnn(x); }

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
  using ops::Act;
  TORCH_CHECK(x.is_mkldnn() && x.scalar_type() == torch::kFloat, "mz::onednn::activate takes a float mkldnn tensor");
  algorithm alg = algorithm::eltwise_relu;
  float alpha = 0, beta = 0;
  switch (act) {
    case Act::ReLU: break;
    case Act::ReLU6: alg = algorithm::eltwise_clip, beta = 6; break;
    case Act::Hardswish: alg = algorithm::eltwise_hardswish; break;
    case Act::SiLU: alg = algorithm::eltwise_swish, alpha = 1; break;
    case Act::Sigmoid: alg = algorithm::eltwise_logistic; break;
    case Act::GELU: alg = algorithm::eltwise_gelu_erf; break;  // torch's default GELU is the erf one
    case Act::Tanh: alg = algorithm::eltwise_tanh; break;
    case Act::Hardsigmoid: return {};
  }
  RECORD_FUNCTION("mz::onednn::activate", std::vector<c10::IValue>());
  at::AutoDispatchBelowADInplaceOrView below_autograd;  // LibTorch's accessors assert it
  ideep::tensor& src = at::native::itensor_from_mkldnn(x);
  if (inplace) {
    ideep::eltwise_forward::compute(src, src, alg, ideep::prop_kind::forward_inference, alpha, beta);
    return x;
  }
  ideep::tensor y;
  ideep::eltwise_forward::compute(src, y, alg, ideep::prop_kind::forward_inference, alpha, beta);
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

void accept_blocked_inputs() {
  static const auto* library = [] {
    auto* lib = new torch::Library(torch::Library::IMPL, "_", c10::DispatchKey::MkldnnCPU, __FILE__, __LINE__);
    lib->fallback(torch::CppFunction::makeFromBoxedFunction<&dense_arguments>());
    return lib;
  }();
  (void)library;
}

}  // namespace mz::onednn
