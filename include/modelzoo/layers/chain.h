// A module whose forward is a chain of named steps. A step named like a child module runs that
// child (e.g. "layer1"); other steps are functional ("relu", "flatten"). Every builder's model
// implements it, which is what lets mz::feature_extractor stop after any layer, nested ones
// included ("features.16", "layer2.1"): torch::nn::Sequential children are chains too.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <torch/nn/module.h>

namespace mz {

struct Step {
  std::string name;
  std::function<torch::Tensor(torch::Tensor)> fn;
};

class Chain {
 public:
  virtual ~Chain() = default;
  virtual std::vector<Step> steps() = 0;
  // Runs every step in order.
  torch::Tensor run_steps(torch::Tensor x) {
    for (auto& s : steps()) x = s.fn(std::move(x));
    return x;
  }
};

// A step that runs a child module holder (anything with forward(Tensor) -> Tensor).
template <class Holder>
Step step(std::string name, Holder child) {
  return {std::move(name), [child](torch::Tensor x) mutable { return child->forward(std::move(x)); }};
}

}  // namespace mz
