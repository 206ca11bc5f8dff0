// MZ_REGISTER_MODEL(builder): the one registration line per builder. The weights enum and the
// options struct are deduced from the builder's signature
//   Holder builder(std::optional<Weights>, Options)
// and the task comes from the weights records (through the generated enum), so nothing is stated
// twice. A builder registered with another model's weights type does not compile.
#pragma once

#include <type_traits>

#include "modelzoo/heads/compose.h"
#include "modelzoo/options.h"
#include "modelzoo/registry.h"

namespace mz::detail {

// A builder's forward output as named outputs: a tensor is "output".
inline TensorDict to_dict(torch::Tensor t) {
  TensorDict out;
  out.insert("output", std::move(t));
  return out;
}
inline TensorDict to_dict(TensorDict d) { return d; }

// A module takes named inputs through its own `run(const TensorDict&)` when it has one (detection,
// text, audio), and otherwise is an image model: forward(inputs["input"]) on a float32 batch.
template <class M, class = void>
struct has_run : std::false_type {};
template <class M>
struct has_run<M, std::void_t<decltype(std::declval<M&>().run(std::declval<const TensorDict&>()))>> : std::true_type {};

template <class M>
TensorDict run_named(M& module, const TensorDict& inputs) {
  if constexpr (has_run<M>::value) {
    return to_dict(module.run(inputs));
  } else {
    if (!inputs.contains("input")) throw UsageError("input", "no tensor named 'input' (an image batch [N, 3, H, W])");
    const torch::Tensor& input = inputs.at("input");
    if (!input.is_floating_point())
      throw UsageError("input", std::string("must be floating point (an image batch), got ") +
                                    c10::toString(input.scalar_type()));
    return to_dict(module.forward(input.to(torch::kFloat32)));
  }
}

// A module's raw outputs before any selection (Model::dense): its own `dense(const TensorDict&)` if any.
template <class M, class = void>
struct has_dense : std::false_type {};
template <class M>
struct has_dense<M, std::void_t<decltype(std::declval<M&>().dense(std::declval<const TensorDict&>()))>>
    : std::true_type {};

// Random inputs for mz bench: the module's static `example_inputs(batch, size)` when it has one, else
// an image batch [batch, 3, size, size].
template <class M, class = void>
struct has_example_inputs : std::false_type {};
template <class M>
struct has_example_inputs<M, std::void_t<decltype(M::example_inputs(std::int64_t{}, std::int64_t{}))>>
    : std::true_type {};

template <class M>
TensorDict example_inputs(std::int64_t batch, std::int64_t size) {
  if constexpr (has_example_inputs<M>::value) {
    return M::example_inputs(batch, size);
  } else {
    TensorDict out;
    out.insert("input", torch::randn({batch, 3, size, size}));
    return out;
  }
}

// "mz::ResNetImpl" -> "ResNet".
inline std::string module_name(std::string type) {
  if (type.rfind("mz::", 0) == 0) type.erase(0, 4);
  if (type.size() > 4 && type.compare(type.size() - 4, 4, "Impl") == 0) type.resize(type.size() - 4);
  return type;
}

// Compile-time string equality (a registration line checks its builder against its weights enum).
constexpr bool same_name(const char* a, const char* b) { return *a == *b && (*a == '\0' || same_name(a + 1, b + 1)); }

// The weights enum of a builder's signature.
template <class Fn>
struct weights_of;
template <class Holder, class W, class O>
struct weights_of<Holder (*)(std::optional<W>, O)> {
  using type = W;
};

template <class Holder, class W, class O>
bool register_builder(const char* name, Holder (*builder)(std::optional<W>, O)) {
  ModelInfo info;
  info.name = name;
  info.task = W::task;
  info.weights_enum = W::enum_name;
  info.module = module_name(c10::demangle_type<typename Holder::ContainedType>());
  info.default_options = O{};
  info.default_weights = [] { return W::DEFAULT.name(); };
  info.build = [builder, model = std::string(name)](const std::string& weights, const nlohmann::json& options) {
    std::optional<W> w;
    if (!weights.empty()) w = W::from_name(weights);
    Holder holder = builder(w, options_from_json<O>(options, model));
    auto module = holder.ptr();
    Model m{model, module, [module](const TensorDict& inputs) { return run_named(*module, inputs); }, {}};
    if constexpr (has_dense<typename Holder::ContainedType>::value)
      m.dense = [module](const TensorDict& inputs) { return module->dense(inputs); };
    return m;
  };
  info.example_inputs = &example_inputs<typename Holder::ContainedType>;
  register_model(std::move(info));
  return true;
}

}  // namespace mz::detail

#define MZ_REGISTER_MODEL(builder)                                                                                  \
  static_assert(::mz::detail::same_name(::mz::detail::weights_of<decltype(&::mz::builder)>::type::model, #builder), \
                #builder ": its weights enum belongs to another model");                                            \
  static const bool mz_registered_##builder = ::mz::detail::register_builder(#builder, &::mz::builder)
