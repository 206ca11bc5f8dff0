// Layers whose parameters are allocated but not initialised: a builder that loads a checkpoint
// never pays for random initialisation. Without weights, a builder's one init path (load_or_init,
// builders/common.h) applies mz::nn::reset_parameters() (PyTorch's default init for every layer
// here) and then the family's own init, as torchvision does.
// State-dict names equal PyTorch's: weight, bias, running_mean, running_var, num_batches_tracked.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/options/batchnorm.h>
#include <torch/nn/options/conv.h>
#include <torch/nn/options/linear.h>
#include <torch/nn/options/normalization.h>
#include <torch/nn/pimpl.h>

#include "modelzoo/checkpoint.h"

namespace mz::ops {
enum class Act;  // <modelzoo/layers/ops.h>
}
namespace mz::onednn {
class Convolution;  // builders/layers/onednn.h
class Linear;
}
namespace mz::amx {
class Linear;  // builders/layers/amx.h
}

namespace mz::nn {

// Implemented by every layer with parameters; reset_parameters() applies PyTorch's default init.
class Resettable {
 public:
  virtual ~Resettable() = default;
  virtual void reset_parameters() = 0;
};

// A normalisation that is a per-channel affine map at inference (BatchNorm2d in eval mode, and any
// frozen norm): mz::optimize_for_inference (<modelzoo/optimize.h>) folds it into the convolution
// that feeds it, and the norm's forward becomes the identity.
class FoldableNorm {
 public:
  virtual ~FoldableNorm() = default;
  // (scale, shift), each [C]: the norm's output is x * scale + shift per channel.
  virtual std::pair<torch::Tensor, torch::Tensor> scale_shift() const = 0;
  bool folded = false;
};

// A layer whose weight an adapter (mz::lora, <modelzoo/lora.h>) patches without replacing the layer,
// which its parent holds by type and calls without virtual dispatch: the forward uses
// adapted(weight), which is the weight plus the active adapter's delta while one is set (a low-rank
// product, computed at each call so that gradients reach the adapter), and the weight itself otherwise.
class Adaptable {
 public:
  virtual ~Adaptable() = default;
  torch::Tensor adapted(const torch::Tensor& weight) const { return delta ? weight + delta() : weight; }
  std::function<torch::Tensor()> delta;  // set by mz::lora
};

class Conv2dImpl;
class PackedWeight;
namespace detail {
// While mz::optimize_for_inference traces a forward pass, convolutions report their outputs, foldable
// norms their inputs and linear maps theirs to the probe of the running thread (null otherwise).
struct TraceProbe {
  virtual ~TraceProbe() = default;
  virtual void produced(Conv2dImpl& conv, const torch::Tensor& output) = 0;
  virtual void consumed(FoldableNorm& norm, const torch::Tensor& input) = 0;
  virtual void linear_input(const PackedWeight& weight, const torch::Tensor& input) = 0;
};
TraceProbe*& trace_probe();
}  // namespace detail

class Conv2dImpl : public torch::nn::Module, public Resettable, public Adaptable {
 public:
  explicit Conv2dImpl(torch::nn::Conv2dOptions options);
  torch::Tensor forward(const torch::Tensor& x);
  void reset_parameters() override;
  void pretty_print(std::ostream& stream) const override;
  torch::nn::Conv2dOptions options;
  torch::Tensor weight, bias;  // bias undefined when options.bias() is false
  // Set by mz::optimize_for_inference where it measured faster: the weight reordered once into oneDNN's
  // blocked layout (not in the state dict). Used for float inputs while no adapter is active and the
  // weight has not changed since (its version counter), so a stale copy is never used.
  void prepack();
  void unpack();
  bool prepacked() const { return convolution != nullptr; }
  // With a prepacked weight, also give the output in oneDNN's blocked layout (an mkldnn tensor), so that
  // the next oneDNN operation (a convolution, ReLU, addition, pooling) reads it without converting it back
  // and forth. Set by mz::optimize_for_inference only where the model's outputs still come out as
  // ordinary tensors (Linear takes blocked inputs and gives ordinary outputs), equal to before, faster.
  bool blocked = false;
  // act(forward(x) + residual) in one oneDNN call, the sum and the activation fused into the convolution,
  // where it keeps oneDNN's layout (blocked); an undefined tensor where it does not or cannot (the caller
  // then goes step by step: ops::conv_norm_act does both). residual may be undefined, act empty.
  torch::Tensor fused(const torch::Tensor& x, std::optional<ops::Act> act, const torch::Tensor& residual);

 private:
  bool runs_prepacked(const torch::Tensor& x) const;
  std::shared_ptr<const onednn::Convolution> convolution;  // the prepacked weight
  std::uint32_t packed_version = 0;
};
TORCH_MODULE(Conv2d);

// The weight of a linear map, copied once into the layout oneDNN's matmul reads (not in the state dict) by
// mz::optimize_for_inference, where that measured faster: oneDNN uses every vector instruction the CPU has, where
// the BLAS LibTorch calls may not (Debian's OpenBLAS runs its AVX2 kernels on AVX-512 AMD CPUs).
class PackedWeight {
 public:
  // x @ weight^T + bias: on the packed copy if it was made from this very weight, unchanged since (the same tensor,
  // storage and version counter), for a float input that needs no gradient. Otherwise, when no gradient is needed,
  // by oneDNN's matmul on the weight as it is (contiguous float tensors; faster than the BLAS here), and by
  // torch::linear in every other case (training, say). Then act, if given, in oneDNN's pass where it can.
  torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias,
                       std::optional<ops::Act> act = std::nullopt) const;
  // bf16x3: the copy split into bfloat16 parts for the matrix units of CPUs that have them, Intel AMX's (amx::Linear
  // says how, and how accurate: about 3e-6 relative per map); a float copy on other CPUs.
  void pack(const torch::Tensor& weight, bool bf16x3 = false);
  void reset();
  explicit operator bool() const { return packed || split; }

 private:
  std::shared_ptr<const onednn::Linear> packed;
  std::shared_ptr<const amx::Linear> split;
  torch::Tensor source;   // the weight packed (kept: its identity is the check)
  c10::Storage storage;   // its storage then
  std::uint32_t version = 0;
};

// A layer with linear maps whose weights mz::optimize_for_inference may pack: each weight with its PackedWeight.
class PackableLinear {
 public:
  virtual ~PackableLinear() = default;
  virtual std::vector<std::pair<torch::Tensor, PackedWeight*>> linear_weights() = 0;
};

class LinearImpl : public torch::nn::Module, public Resettable, public Adaptable, public PackableLinear {
 public:
  explicit LinearImpl(torch::nn::LinearOptions options);
  LinearImpl(std::int64_t in, std::int64_t out) : LinearImpl(torch::nn::LinearOptions(in, out)) {}
  torch::Tensor forward(const torch::Tensor& x);
  // act(forward(x)), the activation in the matmul's own pass where oneDNN runs it (ops::SequentialBlock calls it for
  // a Linear followed by an Activation).
  torch::Tensor activated(const torch::Tensor& x, ops::Act act);
  void reset_parameters() override;
  void pretty_print(std::ostream& stream) const override;
  std::vector<std::pair<torch::Tensor, PackedWeight*>> linear_weights() override { return {{weight, &packed}}; }
  torch::nn::LinearOptions options;
  torch::Tensor weight, bias;
  PackedWeight packed;
};
TORCH_MODULE(Linear);

// Checkpoints saved before PyTorch 0.4.1 (torchvision's 2017-2018 files among them) have no
// num_batches_tracked: as PyTorch's _BatchNorm._load_from_state_dict does, a load fills it with 0.
class BatchNorm2dImpl : public torch::nn::Module, public Resettable, public CheckpointAdapter, public FoldableNorm {
 public:
  explicit BatchNorm2dImpl(torch::nn::BatchNormOptions options);
  explicit BatchNorm2dImpl(std::int64_t features) : BatchNorm2dImpl(torch::nn::BatchNormOptions(features)) {}
  virtual torch::Tensor forward(const torch::Tensor& x);  // virtual: FrozenBatchNorm2d has its own
  void reset_parameters() override;
  void adapt_checkpoint(IncomingState& state, const std::string& prefix) override;
  std::pair<torch::Tensor, torch::Tensor> scale_shift() const override;
  void pretty_print(std::ostream& stream) const override;
  torch::nn::BatchNormOptions options;
  torch::Tensor weight, bias, running_mean, running_var, num_batches_tracked;

 protected:
  struct Frozen {};
  BatchNorm2dImpl(torch::nn::BatchNormOptions options, Frozen);
};
TORCH_MODULE(BatchNorm2d);

// torchvision.ops.FrozenBatchNorm2d: BatchNorm2d with fixed statistics and affine parameters, all four
// buffers (weight, bias, running_mean, running_var; no num_batches_tracked, which a load drops), and
// its own formula: scale = weight * (running_var + eps).rsqrt(), x * scale + (bias - running_mean * scale).
// It is a BatchNorm2d to C++ (held by nn::BatchNorm2d members), so a norm_layer option can choose it.
class FrozenBatchNorm2dImpl : public BatchNorm2dImpl {
 public:
  explicit FrozenBatchNorm2dImpl(std::int64_t features, double eps = 1e-5);
  torch::Tensor forward(const torch::Tensor& x) override;
  void adapt_checkpoint(IncomingState& state, const std::string& prefix) override;
  void pretty_print(std::ostream& stream) const override;
};
TORCH_MODULE(FrozenBatchNorm2d);

class LayerNormImpl : public torch::nn::Module, public Resettable {
 public:
  explicit LayerNormImpl(torch::nn::LayerNormOptions options);
  torch::Tensor forward(const torch::Tensor& x);
  void reset_parameters() override;
  void pretty_print(std::ostream& stream) const override;
  torch::nn::LayerNormOptions options;
  torch::Tensor weight, bias;
};
TORCH_MODULE(LayerNorm);

// PyTorch's default initialisation for every Resettable layer in `module` (recursively).
void reset_parameters(torch::nn::Module& module);

// Applies fn to every submodule of type Impl (recursively, the module itself included). Works on
// modules not owned by a shared_ptr too.
template <class Impl, class Fn>
void for_each(torch::nn::Module& module, Fn fn) {
  if (auto* typed = dynamic_cast<Impl*>(&module)) fn(*typed);
  for (const auto& child : module.children()) for_each<Impl>(*child, fn);
}

namespace init {
// torch.nn.init.trunc_normal_: N(mean, std) truncated to [a, b] (absolute bounds).
void trunc_normal_(torch::Tensor& tensor, double mean = 0.0, double std = 1.0, double a = -2.0, double b = 2.0);
}  // namespace init

// Counts parameters (not buffers), as torchvision's num_params does.
std::int64_t num_params(const torch::nn::Module& module);

}  // namespace mz::nn
