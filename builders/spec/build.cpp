// Building a resolved spec: each node's _target_ is a component (MZ_REGISTER_COMPONENT) or a registered
// builder; then its _replace_ and _select_. Plus mz::replace.
#include <c10/util/Type.h>

#include <algorithm>
#include <map>
#include <unordered_map>

#include "builders/spec/paths.h"
#include "modelzoo/lora.h"
#include "modelzoo/spec.h"
#include "weights/suggest.h"

namespace mz::spec {

namespace detail {
struct Context {
  std::vector<std::string> weights;
  std::size_t nodes = 0;
  int depth = 0;
};
}  // namespace detail

namespace {

using nlohmann::json;
constexpr std::size_t kMaxNodes = 10000;
const std::vector<std::string> kEngineKeys = {"_target_", "_select_", "_replace_", "_args_", "_adapters_"};

struct TypeOps {
  std::function<Part(std::shared_ptr<torch::nn::Module>)> part;
  std::function<void(torch::nn::Module&, const torch::nn::Module&)> assign;
};
std::map<std::string, std::function<Part(Args&)>>& components() {
  static std::map<std::string, std::function<Part(Args&)>> c;
  return c;
}
std::unordered_map<std::type_index, TypeOps>& types() {
  static std::unordered_map<std::type_index, TypeOps> t;
  return t;
}

std::string type_name(const torch::nn::Module* m) { return m ? c10::demangle(typeid(*m).name()) : "nothing"; }
bool is_node(const json& v) { return v.is_object() && v.contains("_target_"); }
bool is_engine_key(const std::string& k) { return k.size() > 2 && k.front() == '_' && k.back() == '_'; }

std::string children_of(torch::nn::Module& m) {
  std::string names;
  for (const auto& child : m.named_children()) names += (names.empty() ? "" : ", ") + child.key();
  return names.empty() ? "none" : names;
}
// The child named `name` of `m`; throws naming `what` and listing the children.
std::shared_ptr<torch::nn::Module> child(torch::nn::Module& m, const std::string& name, const std::string& what) {
  const auto children = m.named_children();  // a copy: find() points into it
  if (const auto* c = children.find(name)) return *c;
  throw UsageError(what, type_name(&m) + " has no sub-module '" + name + "' (children: " + children_of(m) + ")");
}

Part build_node(const json& node, const std::string& path, detail::Context& context);

// A registered builder: its kwargs are its options (JSON), plus "weights".
Part build_model(const ModelInfo& info, const json& node, const std::string& path, detail::Context& context) {
  json options = json::object();
  std::string weights;
  for (const auto& [key, value] : node.items()) {
    const std::string where = path + "." + key;
    if (key == "_args_") throw UsageError(where, info.name + " takes no positional arguments (_args_)");
    if (is_engine_key(key)) continue;
    if (key == "weights") {
      if (!value.is_null() && !value.is_string()) throw UsageError(where, "a weights name or null, got " + value.dump());
      weights = value.is_null() ? "" : value.get<std::string>();
    } else if (!info.default_options.contains(key)) {
      std::string valid = "weights";
      for (const auto& [k, v] : info.default_options.items()) valid += ", " + k;
      throw UsageError(where, "unknown kwarg of " + info.name + " (valid: " + valid + ")");
    } else if (is_node(value)) {
      throw UsageError(where, info.name + " takes a JSON value here, not a node");
    } else {
      options[key] = value;
    }
  }
  const json backbone = options.value("weights_backbone", json());
  for (const std::string& w : {weights, backbone.is_string() ? backbone.get<std::string>() : std::string()}) {
    if (w.empty()) continue;
    const WeightsRecord* record = nullptr;
    try {
      record = &get_weight(w);
    } catch (const UsageError&) {  // a spelling only the builder knows ("DEFAULT"); it names any error
    }
    context.weights.push_back(record ? record->name() : w);
  }
  Model model;
  try {
    model = info.build(weights, options);
  } catch (const UsageError& e) {
    throw UsageError(path, e.what());
  }
  Part part = part_of(model.module, info.name);
  part.run = model.run;
  return part;
}

// The sub-module of `part` at a dotted state-dict path.
Part select(const Part& part, const json& selector, const std::string& path) {
  if (!selector.is_string()) throw UsageError(path, "a dotted sub-module path, got " + selector.dump());
  const std::string sel = selector.get<std::string>();
  std::shared_ptr<torch::nn::Module> m = part.module;
  if (!m) throw UsageError(path, part.target + " built no module to select from");
  for (const std::string& seg : split_path(sel, path)) m = child(*m, seg, path);
  return part_of(m, part.target + "." + sel);
}

// "_adapters_": [lora::Options, ...], injected in order (the last one is active).
void adapt(torch::nn::Module& module, const json& adapters, const std::string& path) {
  if (!adapters.is_array()) throw UsageError(path, "a list of adapters {\"targets\": [...], ...}, got " + adapters.dump());
  for (std::size_t i = 0; i < adapters.size(); ++i) {
    const std::string where = path + "." + std::to_string(i);
    try {
      lora::inject(module, options_from_json<lora::Options>(adapters[i], "LoRA"));
    } catch (const UsageError& e) {
      throw UsageError(where, e.reason());
    }
  }
}

Part build_node(const json& node, const std::string& path, detail::Context& context) {
  if (++context.nodes > kMaxNodes) throw UsageError(path, "a spec of more than 10000 nodes");
  if (context.depth >= kMaxDepth) throw UsageError(path, "nodes nested deeper than 64 levels");
  struct Depth {
    int& d;
    ~Depth() { --d; }
  } depth{++context.depth};
  if (!is_node(node)) {
    const std::string text = node.dump();
    throw UsageError(path, "expects a node {\"_target_\": NAME, ...}, got " + text.substr(0, 80));
  }
  const json& target = node["_target_"];
  if (!target.is_string()) throw UsageError(path + "._target_", "a component or builder name, got " + target.dump());
  const std::string name = target.get<std::string>();
  for (const auto& [key, value] : node.items())
    if (is_engine_key(key) && std::find(kEngineKeys.begin(), kEngineKeys.end(), key) == kEngineKeys.end())
      throw UsageError(path + "." + key, "unknown engine key (valid: _target_, _select_, _replace_, _args_, _adapters_)");
  Part part;
  if (auto c = components().find(name); c != components().end()) {
    Args args(node, path, name, context);
    try {
      part = c->second(args);
    } catch (const UsageError& e) {  // the constructor's own errors get the node's path
      if (e.subject().rfind("model", 0) == 0) throw;
      throw UsageError(path, e.what());
    }
    args.finish();
  } else if (const ModelInfo* info = find_model(name)) {
    part = build_model(*info, node, path, context);
  } else {
    std::vector<std::string> names = component_names();
    for (const ModelInfo* m : list_models()) names.push_back(m->name);
    throw UsageError(path + "._target_", "unknown target '" + name + "'" + did_you_mean(name, names));
  }
  if (node.contains("_replace_")) {
    const json& replacements = node["_replace_"];
    const std::string where = path + "._replace_";
    if (!replacements.is_object()) throw UsageError(where, "an object {state-dict path: node}, got " + replacements.dump());
    for (const auto& [sub, replacement] : replacements.items()) {
      Part r = build_node(replacement, where + "." + sub, context);
      try {
        replace(*part.module, sub, r);
      } catch (const UsageError& e) {
        throw UsageError(where + "." + sub, e.reason());
      }
    }
  }
  if (node.contains("_adapters_")) adapt(*part.module, node["_adapters_"], path + "._adapters_");
  if (node.contains("_select_")) part = select(part, node["_select_"], path + "._select_");
  return part;
}

}  // namespace

namespace detail {
torch::Tensor tensor_input(const TensorDict& inputs) {
  if (!inputs.contains("input")) throw UsageError("input", "no tensor named 'input'");
  const torch::Tensor& input = inputs.at("input");
  if (!input.is_floating_point())
    throw UsageError("input", std::string("must be floating point, got ") + c10::toString(input.scalar_type()));
  return input.to(torch::kFloat32);
}

void wrong_part(const std::string& path, const std::type_info& wanted, const Part& got) {
  throw UsageError(path, "expects " + c10::demangle(wanted.name()) + ", got " + got.target + " (" +
                             type_name(got.module.get()) + ")");
}
}  // namespace detail

Args::Args(const nlohmann::json& node, std::string path, std::string target, detail::Context& context)
    : node_(node), path_(std::move(path)), target_(std::move(target)), context_(context) {}

bool Args::has(const std::string& key) {
  if (std::find(known_.begin(), known_.end(), key) == known_.end()) known_.push_back(key);
  return node_.contains(key) && !node_[key].is_null();
}

const nlohmann::json& Args::value_of(const std::string& key) {
  const json& v = node_.at(key);
  bool node = is_node(v);
  if (v.is_array())
    for (const json& item : v) node = node || is_node(item);
  if (node) throw UsageError(path(key), target_ + " takes a JSON value here, not a node");
  return v;
}

Part Args::part(const std::string& key) { return build_node(node_.at(key), path(key), context_); }

std::vector<Part> Args::positional() {
  std::vector<Part> out;
  if (!has("_args_")) return out;
  const json& args = node_["_args_"];
  if (!args.is_array()) throw UsageError(path("_args_"), "a list of positional arguments, got " + args.dump());
  for (std::size_t i = 0; i < args.size(); ++i) out.push_back(build_node(args[i], path("_args_") + "." + std::to_string(i), context_));
  return out;
}

void Args::uses_weights(const std::string& full_name) { context_.weights.push_back(full_name); }

void Args::finish() const {
  for (const auto& [key, value] : node_.items()) {
    if (key == "_target_" || key == "_select_" || key == "_replace_" || key == "_adapters_") continue;
    if (std::find(known_.begin(), known_.end(), key) != known_.end()) continue;
    if (key == "_args_") throw UsageError(path(key), target_ + " takes no positional arguments (_args_)");
    std::vector<std::string> names = known_;
    std::sort(names.begin(), names.end());
    std::string valid;
    for (const auto& k : names)
      if (k != "_args_") valid += (valid.empty() ? "" : ", ") + k;
    throw UsageError(path(key), "unknown kwarg of " + target_ + " (valid: " + (valid.empty() ? "none" : valid) + ")");
  }
}

void register_component(const std::string& name, std::function<Part(Args&)> factory) {
  if (!components().emplace(name, std::move(factory)).second)
    throw std::logic_error("modelzoo: component '" + name + "' is registered twice");
}

void register_type(const std::type_info& impl, std::function<Part(std::shared_ptr<torch::nn::Module>)> part,
                   std::function<void(torch::nn::Module&, const torch::nn::Module&)> assign) {
  types().emplace(impl, TypeOps{std::move(part), std::move(assign)});  // the first registration of a type wins
}

std::vector<std::string> component_names() {
  std::vector<std::string> names;
  for (const auto& [name, factory] : components()) names.push_back(name);
  return names;
}

Part part_of(std::shared_ptr<torch::nn::Module> module, std::string target) {
  Part part;
  if (module) {
    auto t = types().find(typeid(*module));
    // a Sequential of its own class (Conv2dNormActivation, ...) runs as a Sequential
    if (t == types().end() && std::dynamic_pointer_cast<torch::nn::SequentialImpl>(module))
      t = types().find(typeid(torch::nn::SequentialImpl));
    if (t != types().end()) part = t->second.part(module);
  }
  part.module = std::move(module);
  part.target = std::move(target);
  return part;
}

Built build(const nlohmann::json& spec) {
  Built built;
  built.spec = resolve(spec);
  detail::Context context;
  Part root = build_node(built.spec, "model", context);
  built.model.name = root.target;
  built.model.module = root.module;
  built.model.run = root.run ? root.run : [target = root.target](const TensorDict&) -> TensorDict {
    throw UsageError("model", "a " + target + " takes no named inputs");
  };
  built.weights = std::move(context.weights);
  return built;
}

}  // namespace mz::spec

namespace mz {

Model build(const nlohmann::json& spec) { return spec::build(spec).model; }

void replace(torch::nn::Module& model, const std::string& path, const spec::Part& module) {
  const std::vector<std::string> segments = spec::split_path(path, path);
  torch::nn::Module* parent = &model;
  for (std::size_t i = 0; i + 1 < segments.size(); ++i) parent = spec::child(*parent, segments[i], path).get();
  const std::string& name = segments.back();
  std::shared_ptr<torch::nn::Module> old = spec::child(*parent, name, path);
  if (!module.module) throw UsageError(path, "the replacement " + module.target + " is not a module");
  if (typeid(*old) == typeid(*module.module)) {
    auto t = spec::types().find(typeid(*old));
    if (t != spec::types().end() && t->second.assign) {
      t->second.assign(*old, *module.module);  // in place: every holder of the old module sees the new one
      return;
    }
  }
  std::ptrdiff_t index = 0;  // the child's position, in a Sequential or ModuleList
  for (const auto& c : parent->named_children()) {
    if (c.key() == name) break;
    ++index;
  }
  if (auto* seq = dynamic_cast<torch::nn::SequentialImpl*>(parent)) {
    auto any = module.conversions.find(typeid(torch::nn::AnyModule));
    if (any == module.conversions.end())
      throw UsageError(path, "a " + spec::type_name(module.module.get()) + " cannot be a Sequential's child");
    *(seq->begin() + index) = std::any_cast<torch::nn::AnyModule>(any->second());
    parent->replace_module(name, module.module);
    return;
  }
  if (auto* list = dynamic_cast<torch::nn::ModuleListImpl*>(parent)) {
    *(list->begin() + index) = module.module;
    parent->replace_module(name, module.module);
    return;
  }
  throw UsageError(path, "cannot replace a " + spec::type_name(old.get()) + " inside a " + spec::type_name(parent) +
                             " by a " + spec::type_name(module.module.get()) +
                             ": only by a module of the same type, or inside a Sequential or ModuleList "
                             "(the parent's forward would still call the old one)");
}

}  // namespace mz
