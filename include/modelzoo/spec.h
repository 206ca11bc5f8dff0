// Declarative specs: a model as a JSON tree of "call this with these kwargs" nodes, LazyCall-style
// (README "Build models from specs"). Nothing in the model code knows about specs: the engine maps
// names to constructors.
//
//   {"_target_": "FasterRCNN",
//    "backbone": {"_target_": "mobilenet_v2", "weights": null, "_select_": "features"},
//    "num_classes": 2, "out_channels": 1280}
//
//   mz::Model model = mz::build(mz::spec::load("faster_rcnn.json", {"num_classes=3"}));
//
// A node is {"_target_": NAME, kwarg: value, ...}, kwargs by their Python names. NAME is a component
// (MZ_REGISTER_COMPONENT: layers, heads, detectors, ...) or a registered builder (mz::list_models; its
// kwargs are its options, plus "weights"). A value is plain JSON or another node. Keys of the engine:
//   "_select_": "features"        the sub-module of the result at that state-dict path (Python's `.features`)
//   "_replace_": {"layer4": node}  replaces sub-modules of the result by state-dict path (mz::replace)
//   "_args_": [node, ...]          positional arguments (Sequential's layers)
//   "_adapters_": [{"targets": ["*.fc"], "rank": 8, "alpha": 16, "name": "default"}, ...]
//                                  LoRA adapters injected into the result (mz::lora::inject, in order)
// Before building, a spec is resolved (mz::spec::resolve): "_base_" (a file, relative to the file that
// names it, or a registered spec) is deep-merged under the node's own keys (a node with another
// _target_ replaces the base's node instead of merging), then KEY=VALUE overrides apply (a dotted path;
// the value is JSON, or else a string), then references: "${a.b}" (absolute) and "${..b}" (relative,
// as OmegaConf: "${.b}" is a sibling, each further dot one level up). A string that is one reference
// takes the referenced value whatever its type; references inside longer strings are spliced as text.
// Errors are mz::UsageError whose subject is the JSON path ("model.backbone.num_classes").
#pragma once

#include <any>
#include <array>
#include <optional>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <typeindex>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/container/sequential.h>

#include "modelzoo/detection/backbone_utils.h"
#include "modelzoo/errors.h"
#include "modelzoo/options.h"
#include "modelzoo/registry.h"

namespace mz {
namespace spec {

// What a node built: its module, and what the engine knows about running it and passing it on.
struct Part {
  std::string target;                          // the node's _target_
  std::shared_ptr<torch::nn::Module> module;
  std::any holder;                             // the component's own result (a module holder)
  std::function<TensorDict(const TensorDict&)> run;  // mz::Model::run; empty when it takes no named inputs
  std::map<std::type_index, std::function<std::any()>> conversions;  // to mz::Backbone, AnyModule

  // The part as an argument of type T: its holder, a conversion, or its module cast to T's module
  // type. Throws mz::UsageError naming `path` and both types when it is none of these.
  template <class T>
  T as(const std::string& path) const;
};

namespace detail {
template <class T, class = void>
struct is_holder : std::false_type {};
template <class T>
struct is_holder<T, std::void_t<typename T::ContainedType>>
    : std::is_base_of<torch::nn::ModuleHolder<typename T::ContainedType>, T> {};
template <class T>
struct is_module_ptr : std::false_type {};
template <class T>
struct is_module_ptr<std::shared_ptr<T>> : std::is_base_of<torch::nn::Module, T> {};
// A kwarg of type T is a node (built) rather than a JSON value.
template <class T>
constexpr bool is_part_arg = std::is_same_v<T, Part> || std::is_same_v<T, Backbone> ||
                             std::is_same_v<T, torch::nn::AnyModule> || is_holder<T>::value || is_module_ptr<T>::value;

// What M's forward gives for one tensor (void when it takes no single tensor).
template <class M, class = void>
struct tensor_forward {
  using type = void;
};
template <class M>
struct tensor_forward<M, std::void_t<decltype(std::declval<M&>().forward(std::declval<const torch::Tensor&>()))>> {
  using type = std::decay_t<decltype(std::declval<M&>().forward(std::declval<const torch::Tensor&>()))>;
};
template <class M, class = void>
struct has_run : std::false_type {};
template <class M>
struct has_run<M, std::void_t<decltype(std::declval<M&>().run(std::declval<const TensorDict&>()))>> : std::true_type {};
// forward names one non-const function (not a template, not overloaded) with a result and no non-const
// reference argument: what torch::nn::AnyModule takes.
template <class F>
struct any_compatible : std::false_type {};
template <class R, class C, class... A>
struct any_compatible<R (C::*)(A...)>
    : std::bool_constant<!std::is_void_v<R> &&
                         ((!std::is_lvalue_reference_v<A> || std::is_const_v<std::remove_reference_t<A>>) && ...)> {};
template <class M, class = void>
struct has_plain_forward : std::false_type {};
template <class M>
struct has_plain_forward<M, std::void_t<decltype(&M::forward)>> : any_compatible<decltype(&M::forward)> {};

// T holds numbers that JSON may give inexactly (2.5 for an integer): checked by a round trip.
template <class T>
struct numeric : std::is_arithmetic<T> {};
template <class T>
struct numeric<std::optional<T>> : numeric<T> {};
template <class T>
struct numeric<std::vector<T>> : numeric<T> {};
template <class T, std::size_t N>
struct numeric<std::array<T, N>> : numeric<T> {};

inline TensorDict as_dict(torch::Tensor t) {
  TensorDict out;
  out.insert("output", std::move(t));
  return out;
}
inline TensorDict as_dict(TensorDict d) { return d; }
// inputs["input"] as float32; throws mz::UsageError when it is missing or not floating point.
torch::Tensor tensor_input(const TensorDict& inputs);
[[noreturn]] void wrong_part(const std::string& path, const std::type_info& wanted, const Part& got);
}  // namespace detail

// A part from a module holder: run and conversions as far as its type allows.
template <class H>
Part make_part(H holder, std::string target = "") {
  using Impl = typename H::ContainedType;
  using Out = typename detail::tensor_forward<Impl>::type;
  constexpr bool tensor_in = std::is_same_v<Out, torch::Tensor> || std::is_same_v<Out, TensorDict>;
  Part p;
  p.target = std::move(target);
  p.module = holder.ptr();
  p.holder = holder;
  std::shared_ptr<Impl> impl = holder.ptr();
  if constexpr (detail::has_run<Impl>::value) {
    p.run = [impl](const TensorDict& in) { return detail::as_dict(impl->run(in)); };
  } else if constexpr (tensor_in) {
    p.run = [impl](const TensorDict& in) { return detail::as_dict(impl->forward(detail::tensor_input(in))); };
  }
  if constexpr (tensor_in) p.conversions[typeid(Backbone)] = [holder] { return std::any(Backbone(holder)); };
  if constexpr (detail::has_plain_forward<Impl>::value && !std::is_same_v<Impl, torch::nn::SequentialImpl>)
    p.conversions[typeid(torch::nn::AnyModule)] = [holder] { return std::any(torch::nn::AnyModule(holder)); };
  return p;
}

// The part of any module: typed as the component registered for its dynamic type, else module only.
Part part_of(std::shared_ptr<torch::nn::Module> module, std::string target = "");

namespace detail {
struct Context;
}

// The kwargs of one node, as its component's factory reads them. Every kwarg the factory asks for is
// valid; after it returns, any other kwarg is an error listing the valid ones.
class Args {
 public:
  Args(const nlohmann::json& node, std::string path, std::string target, detail::Context& context);
  bool has(const std::string& key);  // present and not null
  // Required kwarg: a JSON value converted to T, or a node built and passed as T (is_part_arg).
  template <class T>
  T get(const std::string& key) {
    if (!has(key)) throw UsageError(path(key), "missing kwarg of " + target_);
    return convert<T>(key);
  }
  // Optional kwarg: `fallback` when absent or null.
  template <class T>
  T get(const std::string& key, T fallback) {
    return has(key) ? convert<T>(key) : fallback;
  }
  // The kwargs that are fields of an options struct (MZ_OPTIONS), parsed as the registry parses them.
  template <class Options>
  Options options() {
    const nlohmann::json defaults = Options{};
    nlohmann::json given = nlohmann::json::object();
    for (const auto& [key, value] : defaults.items()) {
      if (!has(key)) continue;
      given[key] = value_of(key);
      try {  // one key at a time, so that an error names its path
        options_from_json<Options>({{key, given[key]}}, target_);
      } catch (const UsageError& e) {
        throw UsageError(path(key), e.reason());
      }
    }
    return options_from_json<Options>(given, target_);
  }
  std::vector<Part> positional();  // "_args_", each built
  void uses_weights(const std::string& full_name);  // provenance: a weight the component loads
  std::string path(const std::string& key = "") const { return key.empty() ? path_ : path_ + "." + key; }
  const std::string& target() const { return target_; }
  // Throws for a kwarg the factory did not ask for, listing the ones it did.
  void finish() const;

 private:
  template <class T>
  T convert(const std::string& key) {
    if constexpr (detail::is_part_arg<T>) {
      return part(key).template as<T>(path(key));
    } else {
      const nlohmann::json& v = value_of(key);
      T t;
      try {
        t = v.get<T>();
      } catch (const nlohmann::json::exception& e) {
        throw UsageError(path(key), std::string("wrong type for ") + target_ + ": " + e.what());
      }
      if constexpr (detail::numeric<T>::value)
        if (nlohmann::json(t) != v)  // 2.5 for an integer, 300 for a byte
          throw UsageError(path(key), "wrong type for " + target_ + ": cannot be " + v.dump());
      return t;
    }
  }
  const nlohmann::json& value_of(const std::string& key);  // a JSON value; throws for a node
  Part part(const std::string& key);                       // builds the node at key

  const nlohmann::json& node_;
  std::string path_, target_;
  detail::Context& context_;
  std::vector<std::string> known_;
};

// Registers a component under `name` (a duplicate throws std::logic_error). Prefer MZ_REGISTER_COMPONENT.
void register_component(const std::string& name, std::function<Part(Args&)> factory);
// Registers how to type a module of dynamic type `impl` (part_of, _select_) and, when `assign` is set,
// how to overwrite one in place with another of the same type (mz::replace).
void register_type(const std::type_info& impl, std::function<Part(std::shared_ptr<torch::nn::Module>)> part,
                   std::function<void(torch::nn::Module&, const torch::nn::Module&)> assign);
std::vector<std::string> component_names();  // sorted

namespace detail {
template <class Fn>
bool add_component(const char* name, Fn factory) {
  using R = std::invoke_result_t<Fn&, Args&>;
  if constexpr (std::is_same_v<R, Part>) {
    register_component(name, [factory, n = std::string(name)](Args& a) {
      Part p = factory(a);
      if (p.target.empty()) p.target = n;
      return p;
    });
  } else {
    using Impl = typename R::ContainedType;
    register_component(name, [factory, n = std::string(name)](Args& a) { return make_part(factory(a), n); });
    std::function<void(torch::nn::Module&, const torch::nn::Module&)> assign;
    if constexpr (std::is_copy_assignable_v<Impl>)
      assign = [](torch::nn::Module& to, const torch::nn::Module& from) {
        dynamic_cast<Impl&>(to) = dynamic_cast<const Impl&>(from);  // Module may be a virtual base
      };
    register_type(
        typeid(Impl),
        [](std::shared_ptr<torch::nn::Module> m) { return make_part(R(std::dynamic_pointer_cast<Impl>(m))); }, assign);
  }
  return true;
}
}  // namespace detail

// A spec registered by name, usable as "_base_" and wherever a spec file is named.
void register_spec(const std::string& name, nlohmann::json spec);

// Resolves a spec: "_base_" merged (files relative to `dir`), overrides ("a.b=3") applied, references
// substituted. A string spec names a file or a registered spec.
nlohmann::json resolve(const nlohmann::json& spec, const std::vector<std::string>& overrides = {},
                       const std::string& dir = ".");
// resolve() of a spec file (or registered spec name).
nlohmann::json load(const std::string& file, const std::vector<std::string>& overrides = {});

// A built spec: the model, the resolved spec it was built from, and the full name of every weight a
// node named (provenance, for saving).
struct Built {
  Model model;
  nlohmann::json spec;
  std::vector<std::string> weights;
};
Built build(const nlohmann::json& spec);  // resolves first (a no-op on a resolved spec)

}  // namespace spec

// Builds the model a spec describes (resolving it first): its module, and `run` when the root takes
// named inputs (else run throws).
Model build(const nlohmann::json& spec);

// Replaces the sub-module at a state-dict path ("classifier.1", "backbone.body.layer4"). A module of
// the same type is overwritten in place, so every holder of it (the parent's member) sees the new one;
// a child of a Sequential or ModuleList may change type. Anything else is an mz::UsageError, since the
// parent's forward would still call the old module.
void replace(torch::nn::Module& model, const std::string& path, const spec::Part& module);
template <class Holder>
void replace(torch::nn::Module& model, const std::string& path, const Holder& module) {
  replace(model, path, spec::make_part(module));
}

// The one line that makes a component usable in specs:
//   MZ_REGISTER_COMPONENT(Linear, [](mz::spec::Args& a) { return mz::nn::Linear(...); });
// The factory returns a module holder (or an mz::spec::Part) built from its kwargs.
#define MZ_REGISTER_COMPONENT(name, ...) \
  static const bool mz_component_##name = ::mz::spec::detail::add_component(#name, __VA_ARGS__)

template <class T>
T spec::Part::as(const std::string& path) const {
  if constexpr (std::is_same_v<T, Part>) {
    return *this;
  } else {
    if (const T* typed = std::any_cast<T>(&holder)) return *typed;
    if (auto c = conversions.find(typeid(T)); c != conversions.end()) return std::any_cast<T>(c->second());
    if constexpr (detail::is_module_ptr<T>::value) {
      if (auto m = std::dynamic_pointer_cast<typename T::element_type>(module)) return m;
    } else if constexpr (detail::is_holder<T>::value) {
      if (auto m = std::dynamic_pointer_cast<typename T::ContainedType>(module)) return T(m);
    }
    detail::wrong_part(path, typeid(T), *this);
  }
}

}  // namespace mz
