// Feature extraction by layer name over mz::Chain / Sequential models, and the classifier head.
#include "modelzoo/heads/compose.h"

#include <fnmatch.h>

#include <algorithm>
#include <map>

#include <torch/nn/modules/container/sequential.h>

#include "modelzoo/errors.h"

namespace mz {

struct FeatureExtractorImpl::Node {
  std::string output;  // non-empty when this layer's output is returned
  std::map<std::string, std::shared_ptr<Node>> children;
};

namespace {

using Node = FeatureExtractorImpl::Node;

// The forward of a module as named steps: an mz::Chain's own, or a Sequential's children in order.
std::vector<Step> steps_of(torch::nn::Module& m) {
  if (auto* chain = dynamic_cast<Chain*>(&m)) return chain->steps();
  std::vector<Step> out;
  if (auto* seq = dynamic_cast<torch::nn::SequentialImpl*>(&m)) {
    const auto names = seq->named_children().keys();
    std::size_t i = 0;
    for (auto& any : *seq) {
      torch::nn::AnyModule child = any;
      out.push_back({names.at(i++), [child](torch::Tensor x) mutable { return child.forward(std::move(x)); }});
    }
  }
  return out;
}

std::shared_ptr<torch::nn::Module> child_named(torch::nn::Module& m, const std::string& name) {
  for (const auto& item : m.named_children())
    if (item.key() == name) return item.value();
  return nullptr;
}

bool has_steps(torch::nn::Module& m) {
  return dynamic_cast<Chain*>(&m) || dynamic_cast<torch::nn::SequentialImpl*>(&m);
}

void collect_names(torch::nn::Module& m, const std::string& prefix, std::vector<std::string>& out) {
  for (const Step& s : steps_of(m)) {
    out.push_back(prefix + s.name);
    auto child = child_named(m, s.name);
    if (child && has_steps(*child)) collect_names(*child, prefix + s.name + ".", out);
  }
}

std::vector<std::string> split(const std::string& path) {
  std::vector<std::string> parts;
  std::size_t start = 0, dot;
  while ((dot = path.find('.', start)) != std::string::npos) {
    parts.push_back(path.substr(start, dot - start));
    start = dot + 1;
  }
  parts.push_back(path.substr(start));
  return parts;
}

// Index of the last step of `m` that `node` needs (-1 when none).
int last_needed(const std::vector<Step>& steps, const Node& node) {
  int last = -1;
  for (int i = 0; i < static_cast<int>(steps.size()); ++i)
    if (node.children.count(steps[i].name)) last = i;
  return last;
}

torch::Tensor run(torch::nn::Module& m, torch::Tensor x, const Node& node, std::map<std::string, torch::Tensor>& out,
                  bool need_output) {
  const auto steps = steps_of(m);
  const int last = need_output ? static_cast<int>(steps.size()) - 1 : last_needed(steps, node);
  for (int i = 0; i <= last; ++i) {
    auto it = node.children.find(steps[i].name);
    if (it != node.children.end() && !it->second->children.empty()) {
      const bool child_output_needed = !it->second->output.empty() || i < last;
      x = run(*child_named(m, steps[i].name), std::move(x), *it->second, out, child_output_needed);
    } else {
      x = steps[i].fn(std::move(x));
    }
    if (it != node.children.end() && !it->second->output.empty()) out[it->second->output] = x;
  }
  return x;
}

}  // namespace

FeatureExtractorImpl::FeatureExtractorImpl(std::shared_ptr<torch::nn::Module> model,
                                           std::vector<std::pair<std::string, std::string>> return_nodes)
    : model_(std::move(model)), return_nodes_(std::move(return_nodes)), tree_(std::make_shared<Node>()) {
  if (!model_ || !has_steps(*model_))
    throw UsageError("feature_extractor", "the model must implement mz::Chain or be a torch::nn::Sequential");
  if (return_nodes_.empty()) throw UsageError("feature_extractor", "no layers requested");
  auto valid = [&] {
    std::string all;
    for (const auto& n : layer_names(*model_)) all += (all.empty() ? "" : ", ") + n;
    return all;
  };
  for (const auto& [path, output] : return_nodes_) {
    if (output.empty()) throw UsageError("feature_extractor", "empty output name for layer '" + path + "'");
    Node* node = tree_.get();
    torch::nn::Module* module = model_.get();
    const auto parts = split(path);
    for (std::size_t i = 0; i < parts.size(); ++i) {
      const auto steps = module ? steps_of(*module) : std::vector<Step>{};
      const bool known = std::any_of(steps.begin(), steps.end(), [&](const Step& s) { return s.name == parts[i]; });
      if (!known) throw UsageError("feature_extractor", "unknown layer '" + path + "' (valid: " + valid() + ")");
      auto& child = node->children[parts[i]];
      if (!child) child = std::make_shared<Node>();
      node = child.get();
      auto sub = child_named(*module, parts[i]);
      module = sub && has_steps(*sub) ? sub.get() : nullptr;
    }
    if (!node->output.empty()) throw UsageError("feature_extractor", "layer '" + path + "' requested twice");
    node->output = output;
  }
  // Keep the model's top-level children up to the last needed step, under their own names.
  const auto steps = steps_of(*model_);
  const int last = last_needed(steps, *tree_);
  for (int i = 0; i <= last; ++i)
    if (auto child = child_named(*model_, steps[i].name)) register_module(steps[i].name, child);
}

TensorDict FeatureExtractorImpl::forward(const torch::Tensor& x) {
  std::map<std::string, torch::Tensor> found;
  run(*model_, x, *tree_, found, /*need_output=*/false);
  TensorDict out;
  for (const auto& [path, name] : return_nodes_) out.insert(name, found.at(name));
  return out;
}

std::vector<std::pair<std::string, std::int64_t>> FeatureExtractorImpl::channels(std::int64_t size) {
  if (channels_.empty()) {
    const bool was_training = is_training();
    eval();
    torch::NoGradGuard no_grad;
    for (const auto& item : forward(torch::zeros({1, 3, size, size})))
      channels_.emplace_back(item.key(), item.value().dim() >= 2 ? item.value().size(1) : 1);
    train(was_training);
  }
  return channels_;
}

std::int64_t FeatureExtractorImpl::channels(const std::string& output_name, std::int64_t size) {
  for (const auto& [name, c] : channels(size))
    if (name == output_name) return c;
  throw UsageError("feature_extractor", "no output named '" + output_name + "'");
}

std::vector<std::string> FeatureExtractorImpl::layer_names(torch::nn::Module& model) {
  std::vector<std::string> out;
  collect_names(model, "", out);
  return out;
}

ImageClassifierImpl::ImageClassifierImpl(FeatureExtractor bb, std::int64_t num_classes, double p) {
  backbone = register_module("backbone", bb);
  dropout = register_module("dropout", torch::nn::Dropout(p));
  fc = register_module("fc", nn::Linear(backbone->channels().back().second, num_classes));
  fc->reset_parameters();
}

torch::Tensor ImageClassifierImpl::forward(const torch::Tensor& x) {
  auto features = backbone->forward(x);
  auto pooled = torch::adaptive_avg_pool2d(features[features.size() - 1].value(), {1, 1}).flatten(1);
  return fc(dropout(pooled));
}

namespace {
std::vector<std::string> set_requires_grad(torch::nn::Module& module, const std::vector<std::string>& globs,
                                           bool requires_grad, const char* what) {
  std::vector<std::string> changed;
  std::vector<bool> used(globs.size(), false);
  for (auto& p : module.named_parameters(/*recurse=*/true)) {
    bool match = false;
    for (std::size_t i = 0; i < globs.size(); ++i)
      if (fnmatch(globs[i].c_str(), p.key().c_str(), 0) == 0) match = used[i] = true;
    if (!match) continue;
    p.value().set_requires_grad(requires_grad);
    changed.push_back(p.key());
  }
  for (std::size_t i = 0; i < globs.size(); ++i)
    if (!used[i]) throw UsageError(what, "'" + globs[i] + "' matches no parameter name");
  return changed;
}
}  // namespace

std::vector<std::string> freeze(torch::nn::Module& module, const std::vector<std::string>& globs) {
  return set_requires_grad(module, globs, false, "freeze");
}

std::vector<std::string> unfreeze(torch::nn::Module& module, const std::vector<std::string>& globs) {
  return set_requires_grad(module, globs, true, "unfreeze");
}

}  // namespace mz
