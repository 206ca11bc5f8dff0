// LoRA adapters patched onto built models (<modelzoo/lora.h>): the mechanism is described there.
#include "modelzoo/lora.h"

#include <fnmatch.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>

#include <torch/nn/init.h>
#include <nlohmann/json.hpp>

#include "modelzoo/checkpoint.h"
#include "modelzoo/errors.h"
#include "modelzoo/layers/nn.h"
#include "modelzoo/weights.h"

namespace mz::lora {

namespace {

using nlohmann::json;
constexpr const char* kSchema = "modelzoo.adapter/1";

// One adapter on one layer: A [rank, fan_in], B [out, rank].
class AdapterImpl : public torch::nn::Module {
 public:
  AdapterImpl(const torch::Tensor& weight, std::int64_t rank, double alpha) : alpha(alpha), scaling(alpha / rank) {
    const std::int64_t out = weight.size(0);
    lora_A = register_parameter("lora_A", torch::empty({rank, weight.numel() / out}, weight.options()));
    lora_B = register_parameter("lora_B", torch::zeros({out, rank}, weight.options()));
    torch::nn::init::kaiming_uniform_(lora_A, std::sqrt(5.0));  // peft's init of A; B = 0
  }
  torch::Tensor delta(at::IntArrayRef shape) const { return (torch::matmul(lora_B, lora_A) * scaling).view(shape); }
  torch::Tensor lora_A, lora_B;
  double alpha, scaling;
};
TORCH_MODULE(Adapter);

// The adapters of one layer (its child "lora"), the active one's name, and the base weight while merged.
class LayerAdaptersImpl : public torch::nn::Module {
 public:
  std::string active;
  torch::Tensor original;  // the base weight before merge; undefined when not merged
};
TORCH_MODULE(LayerAdapters);

// An adaptable layer of the model.
struct Site {
  std::string path;
  torch::nn::Module* module;
  nn::Adaptable* layer;
  std::string weight_name;  // "weight", or "in_proj_weight" for attention
  torch::Tensor weight;
  LayerAdapters adapters{nullptr};  // null until an adapter is injected
};

// named_children() returns a copy: find() into it must not outlive the statement.
std::shared_ptr<torch::nn::Module> child(const torch::nn::Module& m, const std::string& name) {
  const auto children = m.named_children();
  const auto* c = children.find(name);
  return c ? *c : nullptr;
}
// The adapter `name` of an adapted layer, or null.
std::shared_ptr<AdapterImpl> adapter_of(const Site& site, const std::string& name) {
  return std::dynamic_pointer_cast<AdapterImpl>(child(*site.adapters, name));
}

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

void collect(torch::nn::Module& m, const std::string& path, std::vector<Site>& out) {
  if (auto* layer = dynamic_cast<nn::Adaptable*>(&m)) {
    const auto params = m.named_parameters(/*recurse=*/false);
    for (const char* name : {"weight", "in_proj_weight"})
      if (const auto* w = params.find(name)) {
        Site site{path, &m, layer, name, *w};
        if (auto lora = std::dynamic_pointer_cast<LayerAdaptersImpl>(child(m, "lora")))
          site.adapters = LayerAdapters(lora);
        out.push_back(std::move(site));
        break;
      }
  }
  for (const auto& child : m.named_children())
    if (child.key() != "lora" || !dynamic_cast<LayerAdaptersImpl*>(child.value().get()))
      collect(*child.value(), join(path, child.key()), out);
}

std::vector<Site> sites(torch::nn::Module& model) {
  std::vector<Site> out;
  collect(model, "", out);
  return out;
}

std::vector<Site> adapted_sites(torch::nn::Module& model) {
  std::vector<Site> out = sites(model);
  out.erase(std::remove_if(out.begin(), out.end(), [](const Site& s) { return !s.adapters; }), out.end());
  return out;
}

bool matches(const std::vector<std::string>& globs, const std::string& path) {
  for (const auto& g : globs)
    if (fnmatch(g.c_str(), path.c_str(), 0) == 0) return true;
  return false;
}

// Points the layer's hook at its adapter `name` (or at nothing, when it has none such), which alone trains.
void activate(Site& site, const std::string& name) {
  site.adapters->active = name;
  for (const auto& child : site.adapters->named_children())
    for (auto& p : child.value()->parameters()) p.set_requires_grad(child.key() == name);
  auto adapter = adapter_of(site, name);
  site.layer->delta = nullptr;
  if (adapter) site.layer->delta = [adapter, shape = site.weight.sizes().vec()] { return adapter->delta(shape); };
}

void unmerge(Site& site) {
  if (!site.adapters->original.defined()) return;
  torch::NoGradGuard no_grad;
  site.weight.copy_(site.adapters->original);
  site.adapters->original = torch::Tensor();
  activate(site, site.adapters->active);
}

// The first 20 names, and how many there are in all.
std::string list(const std::vector<std::string>& names) {
  std::string s;
  for (std::size_t i = 0; i < names.size() && i < 20; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > 20) s += ", ... (" + std::to_string(names.size()) + " in all)";
  return s.empty() ? "none" : s;
}

Site& adapter_site(std::vector<Site>& all, const std::string& name, const std::string& what) {
  for (Site& s : all)
    if (adapter_of(s, name)) return s;
  throw UsageError(what, "no adapter '" + name + "' on this model");
}

// The base weights as adapter.json names them: [{"name", "sha256"}], the digest null when unknown.
json describe_base(const std::vector<std::string>& base_weights) {
  json out = json::array();
  for (const auto& w : base_weights) {
    const WeightsRecord* record = find_weights(w);
    const std::string sha = record ? record->sha256 : "";
    out.push_back({{"name", record ? record->name() : w}, {"sha256", sha.empty() ? json() : json(sha)}});
  }
  return out;
}

std::string describe(const json& base) {
  if (base.empty()) return "no registered weights";
  std::string s;
  for (const auto& w : base) {
    const bool known = w.is_object() && w.contains("name") && w.contains("sha256");
    s += (s.empty() ? "" : ", ") +
         (known ? w["name"].dump() + " (sha256 " + (w["sha256"].is_null() ? "unknown" : w["sha256"].dump()) + ")"
                : w.dump());
  }
  return s;
}

}  // namespace

std::vector<std::string> inject(torch::nn::Module& model, const Options& options) {
  const std::string& name = options.name;
  if (name.empty() || name.find('.') != std::string::npos)
    throw UsageError("lora", "an adapter name is a non-empty name without dots, got '" + name + "'");
  if (options.rank < 1) throw UsageError("lora", "rank must be positive, got " + std::to_string(options.rank));
  std::vector<Site> all = sites(model);
  for (const Site& s : all)
    if (s.adapters && adapter_of(s, name))
      throw UsageError("lora", "the model already has an adapter named '" + name + "'");
  for (Site& s : all)
    if (s.adapters) unmerge(s);
  std::vector<std::string> paths, adaptable;
  for (Site& site : all) {
    adaptable.push_back(site.path);
    if (!matches(options.targets, site.path) && !matches(options.targets, join(site.path, site.weight_name))) continue;
    if (!site.adapters) {  // a layer reached by two paths has its adapters from the first
      auto existing = std::dynamic_pointer_cast<LayerAdaptersImpl>(child(*site.module, "lora"));
      site.adapters = existing ? LayerAdapters(existing) : site.module->register_module("lora", LayerAdapters());
    }
    if (adapter_of(site, name)) continue;
    site.adapters->register_module(name, Adapter(site.weight, options.rank, options.alpha));
    paths.push_back(site.path);
  }
  if (paths.empty())
    throw UsageError("lora", "no adaptable layer matches the targets " + json(options.targets).dump() +
                                 " (Linear, Conv2d and attention in-projections: " + list(adaptable) + ")");
  for (auto& p : model.parameters()) p.set_requires_grad(false);
  set_active(model, name);  // its parameters alone require grad
  return paths;
}

namespace {

// Adapter `name`'s options with the exact layers it adapts as targets: injecting them adapts the same
// layers again, whatever globs created it.
Options options_of(std::vector<Site>& all, const std::string& name) {
  const auto first = adapter_of(adapter_site(all, name, "lora"), name);
  std::vector<std::string> layers;
  for (const Site& s : all)
    if (adapter_of(s, name)) layers.push_back(s.path);
  return Options{layers, first->lora_A.size(0), first->alpha, name};
}

}  // namespace

std::vector<std::string> names(torch::nn::Module& model) {
  std::set<std::string> out;
  for (const Site& s : adapted_sites(model))
    for (const auto& child : s.adapters->named_children()) out.insert(child.key());
  return {out.begin(), out.end()};
}

std::string active(torch::nn::Module& model) {
  for (const Site& s : adapted_sites(model))
    if (adapter_of(s, s.adapters->active)) return s.adapters->active;
  return "";
}

void set_active(torch::nn::Module& model, const std::string& name) {
  std::vector<Site> all = adapted_sites(model);
  adapter_site(all, name, "lora");
  for (Site& s : all) {
    unmerge(s);
    activate(s, name);
  }
}

void deactivate(torch::nn::Module& model) {
  for (Site& s : adapted_sites(model)) {
    unmerge(s);
    activate(s, "");
  }
}

void remove(torch::nn::Module& model, const std::string& name) {
  std::vector<Site> all = adapted_sites(model);
  adapter_site(all, name, "lora");
  for (Site& s : all) {
    unmerge(s);
    if (adapter_of(s, name)) s.adapters->unregister_module(name);
    if (s.adapters->children().empty()) {
      s.layer->delta = nullptr;
      s.module->unregister_module("lora");
    } else if (s.adapters->active == name) {
      activate(s, "");
    }
  }
}

void merge(torch::nn::Module& model) {
  torch::NoGradGuard no_grad;
  for (Site& s : adapted_sites(model)) {
    if (s.adapters->original.defined() || !s.layer->delta) continue;
    s.adapters->original = s.weight.clone();
    s.weight.copy_(s.layer->adapted(s.weight));
    s.layer->delta = nullptr;
  }
}

void unmerge(torch::nn::Module& model) {
  for (Site& s : adapted_sites(model)) unmerge(s);
}

std::vector<Options> adapters(torch::nn::Module& model) {
  std::vector<Site> all = adapted_sites(model);
  const std::string current = active(model);
  std::vector<Options> out;
  for (const std::string& name : names(model))
    if (name != current) out.push_back(options_of(all, name));
  if (!current.empty()) out.push_back(options_of(all, current));
  return out;
}

bool merged(torch::nn::Module& model) {
  for (const Site& s : adapted_sites(model))
    if (s.adapters->original.defined()) return true;
  return false;
}

void save(torch::nn::Module& model, const std::string& dir, const std::vector<std::string>& base_weights,
          const std::string& name) {
  const std::string adapter = name.empty() ? active(model) : name;
  if (adapter.empty()) throw UsageError("lora", "no active adapter to save");
  std::vector<Site> all = adapted_sites(model);
  const Options options = options_of(all, adapter);
  TensorDict tensors;
  for (Site& s : all)
    if (auto a = adapter_of(s, adapter)) {
      tensors.insert(s.path + ".lora_A", a->lora_A.detach());
      tensors.insert(s.path + ".lora_B", a->lora_B.detach());
    }
  const json config = {{"schema", kSchema}, {"lora", options}, {"base_weights", describe_base(base_weights)}};
  save_safetensors(dir + "/adapter.safetensors", tensors, {{"format", "pt"}});
  const std::string file = dir + "/adapter.json";
  std::ofstream out(file);
  out << config.dump(2) << "\n";
  if (!out) throw UsageError(file, "cannot write");
}

std::string load(torch::nn::Module& model, const std::string& dir, const std::vector<std::string>& base_weights) {
  const std::string file = dir + "/adapter.json", tensors_file = dir + "/adapter.safetensors";
  std::ifstream in(file);
  if (!in) throw CheckpointError(file, "cannot open");
  json config;
  Options options;
  try {
    config = json::parse(in);
    if (!config.is_object()) throw CheckpointError(file, "not a JSON object");
    if (config.value("schema", "") != kSchema)
      throw CheckpointError(file, "schema " + config.value("schema", json()).dump() + ", expected \"" + kSchema + "\"");
    options = options_from_json<Options>(config.at("lora"), "lora");
    if (!config.at("base_weights").is_array()) throw CheckpointError(file, "base_weights is not a list");
  } catch (const json::exception& e) {
    throw CheckpointError(file, std::string("not a valid adapter config: ") + e.what());
  } catch (const UsageError& e) {
    throw CheckpointError(file, std::string("not a valid adapter config: ") + e.what());
  }
  const json expected = config["base_weights"], given = describe_base(base_weights);
  if (expected != given)
    throw LoadError(file, "the adapter was trained on " + describe(expected) + ", but this model was built from " +
                              describe(given));
  const TensorDict tensors = read_checkpoint(tensors_file);  // before injecting: a bad file changes nothing
  try {
    inject(model, options);
  } catch (const UsageError& e) {
    throw LoadError(file, e.reason());
  }
  std::vector<Site> all = adapted_sites(model);
  std::set<std::string> expected_keys;
  torch::NoGradGuard no_grad;
  try {
    for (Site& s : all) {
      auto a = adapter_of(s, options.name);
      if (!a) continue;
      for (auto [key, param] : {std::pair{s.path + ".lora_A", a->lora_A}, std::pair{s.path + ".lora_B", a->lora_B}}) {
        expected_keys.insert(key);
        const torch::Tensor* t = tensors.find(key);
        if (!t) throw LoadError(tensors_file, "missing " + key);
        if (t->sizes() != param.sizes())
          throw LoadError(tensors_file,
                          key + ": file " + c10::str(t->sizes()) + " vs adapter " + c10::str(param.sizes()));
        param.copy_(*t);
      }
    }
    for (const auto& item : tensors)
      if (!expected_keys.count(item.key())) throw LoadError(tensors_file, "unexpected " + item.key());
  } catch (...) {
    remove(model, options.name);
    throw;
  }
  return options.name;
}

}  // namespace mz::lora
