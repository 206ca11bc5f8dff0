// Thread safety (README "Threads"), in a program of its own so that its first registry lookup is the one that
// loads the manifests: registry lookups and manifest loading from 8 threads at once, and one model shared by 8
// threads for inference, whose outputs must equal, bit for bit, the same inputs run one thread at a time.
// scripts/test.sh --tsan runs it under ThreadSanitizer.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <thread>

#include <torch/torch.h>

#include "modelzoo/modelzoo.h"
#include "modelzoo/optimize.h"
#include "tests/support/support.h"

namespace {

using nlohmann::json;
constexpr int kThreads = 8;

template <class F>
void on_threads(int n, F f) {
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) threads.emplace_back(f, i);
  for (auto& t : threads) t.join();
}

struct Case {
  const char* model;
  json options;
  std::int64_t size;  // example_inputs' size: pixels, tokens or milliseconds
  bool optimize;
};

// Small configurations of each kind of model: convolutions (plain, prepacked after optimize), a detector,
// a segmenter, a transformer encoder and a speech encoder.
const std::vector<Case>& cases() {
  static const std::vector<Case> all = {
      {"resnet18", json::object(), 64, false},
      {"resnet18", json::object(), 64, true},
      {"mobilenet_v3_small", json::object(), 64, false},
      {"fasterrcnn_mobilenet_v3_large_320_fpn", {{"weights_backbone", nullptr}, {"box_score_thresh", 0.0}}, 128, false},
      {"lraspp_mobilenet_v3_large", {{"weights_backbone", nullptr}}, 64, false},
      {"roberta_base",
       {{"num_encoder_layers", 2}, {"embedding_dim", 64}, {"num_attention_heads", 4}, {"ffn_dimension", 128},
        {"vocab_size", 1000}},
       16, false},
      {"wav2vec2_base", {{"num_layers", 2}}, 300, false},
  };
  return all;
}

// Each thread's own input: the model's example inputs, with every float tensor replaced by seeded noise.
mz::TensorDict input_for(const mz::ModelInfo& info, const Case& c, int i) {
  mz::TensorDict inputs = info.example_inputs(1, c.size);
  torch::Generator gen = at::detail::createCPUGenerator(1000 + i);
  mz::TensorDict out;
  for (const auto& item : inputs) {
    const torch::Tensor& t = item.value();
    out.insert(item.key(), t.is_floating_point() ? torch::randn(t.sizes(), gen, t.options()) : t);
  }
  return out;
}

bool same(const mz::TensorDict& a, const mz::TensorDict& b) {
  if (a.keys() != b.keys()) return false;
  for (const auto& item : a)
    if (!torch::equal(item.value(), b.at(item.key()))) return false;
  return true;
}

}  // namespace

// First in the file: nothing has looked up a weight yet, so the 8 threads race to load the manifest.
TEST_CASE("registry lookups and manifest loading from 8 threads") {
  const std::string manifest = mz::test::temp_path("threads_manifest.json");
  const json entry = json::parse(R"({"weight": "ResNet18_Weights.THREADS", "model": "resnet18",
      "task": "classification", "default": false, "url": "https://weights.example.invalid/resnet18-threads.pth",
      "sha256": "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "hash_prefix": "",
      "file_size": null, "meta": {"categories": ["a", "b"], "num_params": 11689512, "min_size": [1, 1]},
      "transforms": {"preset": "ImageClassification", "crop_size": 224, "resize_size": 256,
                     "interpolation": "bilinear", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}})");
  std::ofstream(manifest) << json{{"schema", "modelzoo.weights/1"}, {"weights", {entry}}}.dump();
  ::setenv("MZ_MANIFEST", manifest.c_str(), 1);  // before any lookup in this process
  std::vector<std::size_t> counts(kThreads);
  std::vector<int> found(kThreads);
  on_threads(kThreads, [&](int i) {
    found[i] = mz::find_weights("ResNet18_Weights.THREADS") != nullptr;
    counts[i] = mz::all_weights().size();
    const mz::ModelInfo& info = mz::model_info(i % 2 ? "resnet18" : "vit_b_16");
    found[i] &= !mz::get_model_weights(info.name).empty() && !mz::list_models().empty();
  });
  for (int i = 0; i < kThreads; ++i) {
    CAPTURE(i);
    CHECK(found[i]);
    CHECK(counts[i] == counts[0]);
  }
}

TEST_CASE("one model shared by 8 threads gives the outputs of serial runs") {
  for (const Case& c : cases()) {
    const std::string name = c.model;
    CAPTURE(name);
    CAPTURE(c.optimize);
    torch::manual_seed(0);
    mz::Model model = mz::get_model(c.model, "", c.options);
    mz::test::randomize_norms(*model.module);
    model.module->eval();
    const mz::ModelInfo& info = mz::model_info(c.model);
    if (c.optimize) mz::optimize_for_inference(model, info.example_inputs(1, c.size));
    std::vector<mz::TensorDict> inputs, serial(kThreads), shared(kThreads);
    for (int i = 0; i < kThreads; ++i) inputs.push_back(input_for(info, c, i));
    const auto run = [&](std::vector<mz::TensorDict>& out, int i) {
      torch::InferenceMode guard;  // thread-local, as every autograd mode is
      out[i] = model.run(inputs[i]);
    };
    for (int i = 0; i < kThreads; ++i) on_threads(1, [&](int) { run(serial, i); });  // one at a time
    on_threads(kThreads, [&](int i) { run(shared, i); });
    for (int i = 0; i < kThreads; ++i) {
      CAPTURE(i);
      CHECK(same(shared[i], serial[i]));
    }
    CHECK_FALSE(same(serial[0], serial[1]));  // the threads had different inputs
  }
}
