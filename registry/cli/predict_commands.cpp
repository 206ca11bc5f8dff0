// mz predict | preprocess: from image files to labels (or to the tensor the model sees).
#include <algorithm>
#include <iomanip>
#include <iostream>

#include <torch/torch.h>

#include "modelzoo/modelzoo.h"
#include "modelzoo/transforms/presets.h"
#include "registry/cli/cli.h"
#include "registry/cli/build.h"

namespace mz::cli {
namespace {

using nlohmann::json;

// A weight name gives the weight; a model name its DEFAULT weight (for preset and categories).
const WeightsRecord& resolve_weight(const std::string& name) {
  if (name.find('.') != std::string::npos) return get_weight(name);
  const ModelInfo& info = model_info(name);  // throws "unknown model" with suggestions
  const std::string def = info.default_weights ? info.default_weights() : "";
  if (def.empty()) throw UsageError(name, "model has no DEFAULT weights to take the preset and categories from");
  return get_weight(def);
}

struct PredictArgs {
  std::string name, checkpoint, output;
  bool mmap = false;
  std::vector<std::string> images;
  std::int64_t topk = 5, batch = 8;
  bool json = false, optimize = false;
};

void run_predict(const PredictArgs& a) {
  if (a.topk < 1) throw UsageError("--topk", "must be at least 1");
  if (a.batch < 1) throw UsageError("--batch", "must be at least 1");
  const WeightsRecord& w = resolve_weight(a.name);
  if (w.transforms.preset != "ImageClassification")
    throw UsageError(w.name(), "mz predict needs classification weights (preset " + w.transforms.preset + ")");
  const ModelInfo& info = model_info(w.model);
  json options = json::object();
  const std::vector<std::string> categories = w.meta.categories.value_or(std::vector<std::string>{});
  if (!a.checkpoint.empty() && !categories.empty() && info.default_options.contains("num_classes"))
    options["num_classes"] = categories.size();
  Model model = build(w.model, a.checkpoint, a.checkpoint.empty() ? w.name() : "", options, true, storage(a.mmap));
  model.module->eval();
  torch::InferenceMode guard;

  json results = json::array();
  for (std::size_t first = 0; first < a.images.size(); first += static_cast<std::size_t>(a.batch)) {
    const std::size_t last = std::min(a.images.size(), first + static_cast<std::size_t>(a.batch));
    const std::vector<std::string> paths(a.images.begin() + first, a.images.begin() + last);
    const torch::Tensor input = preprocess(w.transforms, paths);
    TensorDict inputs;
    inputs.insert("input", input);
    if (a.optimize && first == 0) optimize_for_inference(model, inputs);
    const TensorDict out = model.run(inputs);
    if (out.is_empty()) throw UsageError(w.model, "model gave no output");
    const torch::Tensor probs = torch::softmax(out.front().value().to(torch::kFloat32), 1);
    const std::int64_t k = std::min<std::int64_t>(a.topk, probs.size(1));
    const auto [values, indices] = probs.topk(k, 1);
    for (std::size_t i = 0; i < paths.size(); ++i) {
      json top = json::array();
      for (std::int64_t j = 0; j < k; ++j) {
        const std::int64_t index = indices[i][j].item<std::int64_t>();
        const std::string label = index < static_cast<std::int64_t>(categories.size())
                                      ? categories[static_cast<std::size_t>(index)]
                                      : std::to_string(index);
        top.push_back({{"index", index}, {"label", label}, {"prob", values[i][j].item<double>()}});
      }
      if (a.json) {
        results.push_back({{"image", paths[i]}, {"top", top}});
      } else {
        std::cout << paths[i] << "\n";
        for (const auto& t : top)
          std::cout << "  " << std::fixed << std::setprecision(4) << t["prob"].get<double>() << "  "
                    << t["label"].get<std::string>() << " (" << t["index"].get<std::int64_t>() << ")\n";
      }
    }
  }
  if (a.json) std::cout << results.dump(1) << "\n";
}

void run_preprocess(const PredictArgs& a) {
  const WeightsRecord& w = resolve_weight(a.name);
  const torch::Tensor input = preprocess(w.transforms, a.images);
  save_safetensors(a.output, {{"input", input}}, {{"weight", w.name()}, {"preset", w.transforms.preset}});
  std::cout << a.output << "\n";
}

}  // namespace

void add_predict_commands(CLI::App& app) {
  auto pa = std::make_shared<PredictArgs>();
  auto* predict = app.add_subcommand(
      "predict", "Classify images: the weight's preset, batched eval inference, top-K labels with probabilities");
  predict->add_option("NAME", pa->name, "Weight ('ResNet50_Weights.IMAGENET1K_V2') or model (its DEFAULT weight's "
                                        "preset and categories)")->required();
  predict->add_option("IMAGE", pa->images, "JPEG or PNG files")->required();
  predict->add_option("--checkpoint", pa->checkpoint, "Checkpoint file (model built with no weights, then loaded)");
  add_mmap_flag(predict, pa->mmap);
  add_optimize_flag(predict, pa->optimize);
  predict->add_option("--topk", pa->topk, "Labels per image (default 5)");
  predict->add_option("--batch", pa->batch, "Images per forward pass (default 8)");
  predict->add_flag("--json", pa->json, R"(JSON: [{"image": path, "top": [{"index", "label", "prob"}, ...]}])");
  predict->callback([pa] { run_predict(*pa); });

  auto ppa = std::make_shared<PredictArgs>();
  auto* prep = app.add_subcommand(
      "preprocess", "Write the preprocessed batch (tensor 'input', [N, 3, H, W]) that a weight's preset gives");
  prep->add_option("WEIGHT", ppa->name, "Weight (or model: its DEFAULT weight)")->required();
  prep->add_option("IMAGE", ppa->images, "JPEG or PNG files")->required();
  prep->add_option("--output", ppa->output, "Output .safetensors")->required();
  prep->callback([ppa] { run_preprocess(*ppa); });
}

}  // namespace mz::cli
