// Models and weights by name. Each builder is registered by one line next to it:
//   MZ_REGISTER_MODEL(resnet50);
// which links the builder to its weights enum (deduced from its signature) and options struct.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <nlohmann/json.hpp>

#include "modelzoo/tensor_dict.h"
#include "modelzoo/weights.h"

namespace mz {

// A type-erased model: the module (for state_dict, eval, to(...)) plus `run`, which takes named inputs
// and returns named outputs in order. Inputs are the domain's tensors by name: "input" (an image batch,
// token ids or waveforms), and where the domain has them "input.0", "input.1", ... (images of
// different sizes), "lengths", "decoder_input". Outputs are {"output": logits} for a plain tensor, or
// the model's own keys ({"out", "aux"} for segmentation). `mz forward` passes its input file whole.
struct Model {
  std::string name;
  std::shared_ptr<torch::nn::Module> module;
  std::function<TensorDict(const TensorDict& inputs)> run;
  // For a model whose outputs are a selection (detectors: scores over a threshold, top-k, NMS), its raw
  // outputs before it: every head's predictions, continuous in the inputs and the weights. A change in the
  // last digits of a score can change which detections run() returns; it changes these by as little.
  // mz::optimize_for_inference compares these when they exist. Empty for other models.
  std::function<TensorDict(const TensorDict& inputs)> dense;

  // run({"input": input})
  TensorDict forward(const torch::Tensor& input) const {
    TensorDict inputs;
    inputs.insert("input", input);
    return run(inputs);
  }
};

struct ModelInfo {
  std::string name;          // builder name, "resnet50"
  std::string task;          // "classification", ...
  std::string weights_enum;  // "ResNet50_Weights"
  std::string module;        // the module class the builder returns, "ResNet" (mz::ResNet, mz::ResNetImpl)
  nlohmann::json default_options;  // the options struct with its defaults, by Python kwarg names
  std::function<std::string()> default_weights;  // full name of the typed enum's DEFAULT
  // Builds with the weights ("" for none; any accepted spelling) and options JSON (kwarg names).
  std::function<Model(const std::string& weights, const nlohmann::json& options)> build;
  // Random inputs for `run` (mz bench): `batch` items of size `size` (image height and width by default;
  // a domain states its own meaning, e.g. tokens or samples).
  std::function<TensorDict(std::int64_t batch, std::int64_t size)> example_inputs;
};

// All registered models sorted by name; include/exclude are fnmatch globs ("resnet*"), task "" = any.
std::vector<const ModelInfo*> list_models(const std::vector<std::string>& include = {},
                                          const std::vector<std::string>& exclude = {},
                                          const std::string& task = "");
const ModelInfo* find_model(const std::string& name);  // nullptr when unknown
const ModelInfo& model_info(const std::string& name);  // throws mz::UsageError listing close names
Model get_model(const std::string& name, const std::string& weights = "",
                const nlohmann::json& options = nlohmann::json::object());
std::vector<const WeightsRecord*> get_model_weights(const std::string& model);

namespace detail {
void register_model(ModelInfo info);  // a duplicate name throws
}  // namespace detail

}  // namespace mz
