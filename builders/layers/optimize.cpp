#include "modelzoo/optimize.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <malloc.h>

#include <torch/torch.h>

#include "builders/layers/amx.h"
#include "builders/layers/onednn.h"
#include "modelzoo/errors.h"
#include "modelzoo/layers/nn.h"

namespace mz {
namespace {

// Traces one forward pass: which convolution's output each foldable norm reads, and the shape of each linear map's
// input. A pair is foldable when the norm only ever reads that convolution's fresh output (not modified in place
// since), and the convolution's output only ever goes to that norm among the norms (other readers are invisible
// here; the before/after comparison catches them).
struct Tracer : nn::detail::TraceProbe {
  // Weak references keep the outputs' TensorImpl objects allocated, so no later tensor reuses their addresses, but
  // not their data: a detector's activations alone would take gigabytes.
  std::vector<c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>> outputs;
  std::map<const c10::TensorImpl*, std::pair<nn::Conv2dImpl*, std::uint32_t>> producer;  // output -> conv, version
  std::map<nn::Conv2dImpl*, std::set<nn::FoldableNorm*>> readers;
  std::map<nn::FoldableNorm*, std::set<nn::Conv2dImpl*>> sources;  // nullptr: something else
  std::map<const nn::PackedWeight*, std::vector<std::int64_t>> linear_inputs;  // the first call's input shape

  void produced(nn::Conv2dImpl& conv, const torch::Tensor& output) override {
    outputs.emplace_back(output.getIntrusivePtr());
    producer[output.unsafeGetTensorImpl()] = {&conv, output._version()};
    readers[&conv];
  }
  void consumed(nn::FoldableNorm& norm, const torch::Tensor& input) override {
    auto it = producer.find(input.unsafeGetTensorImpl());
    nn::Conv2dImpl* conv = it != producer.end() && it->second.second == input._version() ? it->second.first : nullptr;
    sources[&norm].insert(conv);
    if (conv) readers[conv].insert(&norm);
  }
  void linear_input(const nn::PackedWeight& weight, const torch::Tensor& input) override {
    linear_inputs.emplace(&weight, input.sizes().vec());
  }
};

// The median of n timed calls after a warm-up, in milliseconds; `before` runs untimed before each call.
template <class F, class B = void (*)()>
double median_ms(F&& run, int n, B&& before = [] {}) {
  run();
  std::vector<double> ms;
  for (int i = 0; i < n; ++i) {
    before();
    const auto t0 = std::chrono::steady_clock::now();
    run();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[n / 2];
}

struct ProbeScope {
  explicit ProbeScope(nn::detail::TraceProbe* p) { nn::detail::trace_probe() = p; }
  ~ProbeScope() { nn::detail::trace_probe() = nullptr; }
};

// The largest |got - want| over the largest finite |want|, across the outputs. Infinite when an output is missing,
// has another shape or type, or has a NaN or infinity where the other has not. Floating outputs are compared in their
// own type, without double copies (a detector's scores are tens of megabytes).
double relative_error(const TensorDict& got, const TensorDict& want) {
  double worst = 0;
  for (const auto& item : want) {
    if (!got.contains(item.key())) return INFINITY;
    const torch::Tensor& a = got.at(item.key());
    const torch::Tensor& b = item.value();
    if (a.is_mkldnn() || a.sizes() != b.sizes() || a.scalar_type() != b.scalar_type()) return INFINITY;
    if (!b.numel()) continue;
    const bool floating = b.is_floating_point();
    const torch::Tensor x = floating ? a : a.to(torch::kDouble), y = floating ? b : b.to(torch::kDouble);
    // Equal values (infinities included) and NaN in both count as no difference; any other NaN as an infinite one.
    const torch::Tensor same = (x == y).logical_or_(x.isnan().logical_and_(y.isnan()));
    const double diff = (x - y).abs_().masked_fill_(same, 0).nan_to_num_(INFINITY).max().item<double>();
    const double scale = y.abs().nan_to_num_(0, 0, 0).max().item<double>();
    worst = std::max(worst, diff / std::max(scale, 1e-12));
  }
  return worst;
}

// A foldable pair, with the convolution's parameters as they were (to put back).
struct Saved {
  nn::Conv2dImpl* conv;
  torch::Tensor weight, bias;
  nn::FoldableNorm* norm;
};

}  // namespace

OptimizeReport optimize_for_inference(torch::nn::Module& model, const std::function<TensorDict()>& run_example,
                                      const OptimizeOptions& options) {
  if (model.is_training())
    throw Error("optimize_for_inference", "the model is in training mode; call eval() first (the result is for "
                                          "inference only)");
  c10::InferenceMode normal_tensors(false);  // the trace needs version counters, which inference tensors lack
  torch::NoGradGuard no_grad;
  for (auto& p : model.parameters()) p.requires_grad_(false);
  Tracer tracer;
  TensorDict before;
  {
    ProbeScope scope(&tracer);
    before = run_example();
  }
  // The foldable pairs. A convolution whose output also feeds something other than the norm (a residual
  // branch, say) cannot be folded, and the trace cannot see that reader: if folding every pair changes the
  // outputs, each pair is tried on its own and kept only if the outputs stay within tolerance.
  std::vector<Saved> pairs;
  for (const auto& [norm, convs] : tracer.sources) {
    if (!options.fold_norms || convs.size() != 1 || *convs.begin() == nullptr) continue;
    nn::Conv2dImpl* conv = *convs.begin();
    if (tracer.readers[conv].size() != 1) continue;
    pairs.push_back({conv, conv->weight.clone(), conv->bias.defined() ? conv->bias.clone() : torch::Tensor(), norm});
  }
  const auto fold = [](const Saved& p) {
    const auto [scale, shift] = p.norm->scale_shift();
    p.conv->weight.mul_(scale.reshape({-1, 1, 1, 1}));
    // A convolution without a bias gets one as a plain member: its state-dict keys stay those of the original.
    if (p.conv->bias.defined())
      p.conv->bias.mul_(scale).add_(shift);
    else
      p.conv->bias = shift.clone();
    p.norm->folded = true;
  };
  const auto unfold = [](const Saved& p) {
    p.conv->weight.set_data(p.weight.clone());
    if (p.bias.defined())
      p.conv->bias.set_data(p.bias.clone());
    else
      p.conv->bias = torch::Tensor();
    p.norm->folded = false;
  };
  const auto error = [&] { return relative_error(run_example(), before); };
  std::vector<bool> kept(pairs.size(), true);
  for (const Saved& p : pairs) fold(p);
  if (!pairs.empty() && !(error() <= options.tolerance)) {
    for (const Saved& p : pairs) unfold(p);
    for (std::size_t i = 0; i < pairs.size(); ++i) {
      fold(pairs[i]);
      if (!(error() <= options.tolerance)) unfold(pairs[i]), kept[i] = false;
    }
  }
  OptimizeReport report;
  for (bool k : kept) report.folded += k;
  if (options.channels_last) {
    nn::for_each<nn::Conv2dImpl>(model, [&](nn::Conv2dImpl& conv) {
      if (conv.weight.dim() != 4) return;
      conv.weight.set_data(conv.weight.contiguous(torch::MemoryFormat::ChannelsLast));
      ++report.channels_last;
    });
  }
  // Each linear map on a weight packed for oneDNN's matmul where that is faster, timed on its own on an input of
  // the shape it had in the example; on CPUs with bfloat16 matrix units, also split for them (bf16x3), where
  // faster still.
  std::vector<nn::PackedWeight*> packed_linears;
  std::vector<std::pair<nn::PackedWeight*, torch::Tensor>> split_linears;  // with their weights
  const bool try_split = options.bf16x3 && options.prepack && at::hasMKLDNN() && amx::available();
  if (options.prepack && at::hasMKLDNN()) {
    // Each timed call reads its weight from beyond the cores' own caches, as it will in the model's forward, where
    // other layers run in between: timed from the cache the previous call left it in, a split map of vit_b_16 at
    // batch 1 took 0.56-0.93 of float's time, 0.69-1.16 otherwise (the 3072 -> 768 map slower than float; measured
    // with oneDNN's bfloat16 matmuls, before amx::Linear).
    const torch::Tensor scratch = torch::empty({std::int64_t{16} << 20}, torch::kByte);  // 8x a Xeon core's 2 MB L2
    const auto evict = [&] { scratch.fill_(1); };
    nn::for_each<nn::PackableLinear>(model, [&](nn::PackableLinear& layer) {
      for (const auto& [weight, packed] : layer.linear_weights()) {
        const auto input = tracer.linear_inputs.find(packed);
        if (weight.dim() != 2 || weight.scalar_type() != torch::kFloat || weight.numel() == 0 ||
            input == tracer.linear_inputs.end())
          continue;
        const torch::Tensor x = torch::randn(input->second);
        const auto time = [&] { return median_ms([&] { packed->linear(x, weight, {}); }, 5, evict); };
        packed->reset();  // (packed by an earlier call)
        const double plain = time();
        packed->pack(weight);
        const double float_packed = time();
        double split = INFINITY;
        if (try_split) {
          packed->pack(weight, true);
          split = time();
        }
        if (std::min(float_packed, split) >= plain) {
          packed->reset();
          continue;
        }
        packed_linears.push_back(packed);
        if (split < float_packed)
          split_linears.emplace_back(packed, weight);
        else if (try_split)
          packed->pack(weight);
      }
    });
  }
  // The split maps together: kept if the example's outputs stay within tolerance (each map is about 3e-6 off,
  // against float's 3e-7) and its whole forward is faster than with them in float. Faster alone is not enough:
  // convnext_tiny at batch 1 ran no faster with them, although most of its maps measured faster on their own.
  const auto timed = [&] { return median_ms(run_example, 3); };
  if (!split_linears.empty()) {
    const double split = error() <= options.tolerance ? timed() : INFINITY;
    const auto repack = [&](bool bf16x3) {
      for (auto& [packed, weight] : split_linears) packed->pack(weight, bf16x3);
    };
    repack(false);
    if (split < timed())
      repack(true);
    else
      split_linears.clear();
  }
  report.packed_linear = static_cast<std::int64_t>(packed_linears.size());
  report.bf16x3_linear = static_cast<std::int64_t>(split_linears.size());
  const auto unpack_linears = [&] {
    for (nn::PackedWeight* packed : packed_linears) packed->reset();
  };
  if (options.prepack && at::hasMKLDNN()) {
    std::vector<nn::Conv2dImpl*> convs;
    nn::for_each<nn::Conv2dImpl>(model, [&](nn::Conv2dImpl& conv) {
      if (conv.weight.dim() == 4 && conv.weight.scalar_type() == torch::kFloat) convs.push_back(&conv);
    });
    if (!convs.empty()) {
      const auto set_blocked = [&](bool on) {
        for (nn::Conv2dImpl* conv : convs) conv->blocked = on;
      };
      const double plain = timed();
      for (nn::Conv2dImpl* conv : convs) conv->prepack();
      const double packed = timed();
      // Then the activations in oneDNN's layout too, where the outputs still come out as ordinary tensors equal
      // to before (an operator that cannot take them throws).
      double blocked = INFINITY;
      if (options.blocked_layout) {
        set_blocked(true);
        bool same = false;
        try {
          same = error() <= options.tolerance;
        } catch (const std::exception&) {
        }
        if (same) blocked = timed();
        set_blocked(false);
      }
      const auto n = static_cast<std::int64_t>(convs.size());
      if (blocked < std::min(plain, packed)) {
        set_blocked(true);
        report.prepacked = report.blocked = n;
      } else if (packed < plain) {
        report.prepacked = n;
      } else {
        for (nn::Conv2dImpl* conv : convs) conv->unpack();
      }
    }
  }
  report.max_relative_error = error();
  if (!(report.max_relative_error <= options.tolerance)) {
    for (std::size_t i = 0; i < pairs.size(); ++i)
      if (kept[i]) unfold(pairs[i]);
    unpack_linears();
    nn::for_each<nn::Conv2dImpl>(model, [](nn::Conv2dImpl& conv) {
      conv.unpack();
      conv.weight.set_data(conv.weight.contiguous());
    });
    throw Error("optimize_for_inference", "the optimised model's outputs differ from the original's by " +
                                              std::to_string(report.max_relative_error) + " (relative; tolerance " +
                                              std::to_string(options.tolerance) + "); the model was restored");
  }
  return report;
}

OptimizeReport optimize_for_inference(Model& model, const TensorDict& example_inputs, const OptimizeOptions& options) {
  const auto& run = model.dense ? model.dense : model.run;
  return optimize_for_inference(*model.module, [&] { return run(example_inputs); }, options);
}

namespace {
bool freed_memory_kept = false;
}  // namespace

bool keep_freed_memory() {
#if defined(__GLIBC__)
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables && std::string(tunables).find("glibc.malloc.") != std::string::npos) return false;
  freed_memory_kept = mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
#endif
  return freed_memory_kept;
}

bool keeping_freed_memory() { return freed_memory_kept; }

}  // namespace mz
