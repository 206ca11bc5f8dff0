// save_pretrained / from_pretrained round trips: every spec of examples/specs and a fine-tuned classifier
// come back bit-identical (every tensor of the state dict and the forward output); config.json records the
// resolved spec, the weights' provenance, the tensors' digest and the version; nothing is downloaded.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>

#include "modelzoo/version.h"
#include "tests/pretrained/pretrained_test.h"

using namespace mz;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

TensorDict forward(const Model& m, const std::string& name, const torch::Tensor& input) {
  m.module->eval();
  torch::NoGradGuard no_grad;
  TensorDict in;
  in.insert(name, input);
  return m.run(in);
}

// Saves `built`, loads it back, and checks that state and output are the same bits.
void check_round_trip(const spec::Built& built, const std::string& dir, const std::string& input_name,
                      const torch::Tensor& input) {
  save_pretrained(built.model, built.spec, dir);
  const Model loaded = from_pretrained(dir);
  CHECK(loaded.name == built.model.name);
  CHECK(test::bit_difference(test::tensors_of(*loaded.module), test::tensors_of(*built.model.module)) == "");
  const TensorDict want = forward(built.model, input_name, input);
  CHECK(want.size() > 0);
  CHECK(test::bit_difference(forward(loaded, input_name, input), want) == "");
}

struct Example {
  const char* file;
  std::vector<std::string> overrides;  // weights off (nothing is downloaded), small inputs
  const char* input_name;
  std::function<torch::Tensor()> input;
};

const std::vector<Example>& examples() {
  static const std::vector<Example> table = {
      {"faster_rcnn_mobilenet_v2.json", {"backbone.weights=null"}, "input", [] { return torch::rand({1, 3, 160, 200}); }},
      {"faster_rcnn_mobilenet_v2_small.json", {"backbone.weights=null"}, "input",
       [] { return torch::rand({1, 3, 200, 240}); }},
      {"retinanet_resnet50_fpn.json", {"backbone.weights=null", "min_size=128", "max_size=160"}, "input",
       [] { return torch::rand({1, 3, 128, 160}); }},
      {"deeplabv3_mobilenet_v3_large.json", {"backbone.model.weights=null"}, "input",
       [] { return torch::rand({1, 3, 64, 64}); }},
      {"roberta_classifier.json", {"encoder_conf.num_encoder_layers=2"}, "input",
       [] { return torch::randint(3, 20, {2, 8}, torch::kLong); }},
      {"wav2vec2_utterance_classifier.json", {"encoder.weights=null"}, "input", [] { return torch::randn({2, 4000}); }},
  };
  return table;
}

}  // namespace

TEST_CASE("every spec of examples/specs has a round trip in this table") {
  std::vector<std::string> files, covered;
  for (const auto& entry : fs::directory_iterator(std::getenv("MZ_SPECS")))
    if (entry.path().extension() == ".json") files.push_back(entry.path().filename().string());
  for (const Example& e : examples()) covered.push_back(e.file);
  std::sort(files.begin(), files.end());
  std::sort(covered.begin(), covered.end());
  CHECK(files == covered);
}

TEST_CASE("examples/specs: save_pretrained then from_pretrained gives the same bits") {
  for (const Example& e : examples()) {
    const std::string file = e.file;
    CAPTURE(file);
    torch::manual_seed(0);
    const spec::Built built = spec::build(spec::load(test::example_spec(e.file), e.overrides));
    const std::string dir = test::fresh_dir(std::string("example-") + e.file);
    check_round_trip(built, dir, e.input_name, e.input());
    const json config = test::read_config(dir);
    CHECK(config["schema"] == "modelzoo.pretrained/1");
    CHECK(config["spec"] == built.spec);  // resolved: no _base_, no ${...}
    CHECK(config["model"] == built.model.name);
    CHECK(config["weights"] == json::array());
    CHECK(!config.contains("preset"));
    fs::remove_all(dir);
  }
}

TEST_CASE("a fine-tuned classifier (resnet18 with a new head, SGD steps) round-trips bit-identically") {
  torch::manual_seed(1);
  const json spec = json::parse(R"({"_target_": "resnet18", "weights": null,
      "_replace_": {"fc": {"_target_": "Linear", "in_features": 512, "out_features": 3}}})");
  spec::Built built = spec::build(spec);
  torch::nn::Module& model = *built.model.module;
  const TensorDict before = test::state_of(model);
  torch::optim::SGD sgd(model.parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  model.train();
  const torch::Tensor x = torch::randn({4, 3, 64, 64}), y = torch::tensor({0, 1, 2, 1});
  for (int step = 0; step < 3; ++step) {
    sgd.zero_grad();
    const torch::Tensor loss = torch::cross_entropy_loss(built.model.forward(x).at("output"), y);
    loss.backward();
    sgd.step();
  }
  // the steps changed weights and BatchNorm statistics alike: a round trip of the init would not do
  CHECK(test::bit_difference(test::tensors_of(model), before) == "conv1.weight: values");
  CHECK(!torch::equal(model.named_buffers()["bn1.running_mean"], before.at("bn1.running_mean")));

  const std::string dir = test::fresh_dir("fine-tuned");
  check_round_trip(built, dir, "input", torch::randn({2, 3, 64, 64}));
  CHECK((forward(from_pretrained(dir), "input", torch::randn({2, 3, 64, 64})).at("output").sizes() ==
         torch::IntArrayRef{2, 3}));
}

TEST_CASE("adapters injected in C++ are saved in the spec and come back, the active one active; merged is refused") {
  torch::manual_seed(2);
  const json spec = json::parse(R"({"_target_": "resnet18", "weights": null, "num_classes": 4})");
  spec::Built built = spec::build(spec);
  torch::nn::Module& model = *built.model.module;
  lora::inject(model, {{"fc", "layer4.*.conv1"}, 4, 8, "a"});
  lora::inject(model, {{"fc"}, 2, 2, "b"});
  lora::set_active(model, "a");
  {
    torch::NoGradGuard no_grad;  // B = 0 at injection: give the deltas something to do
    for (auto& p : model.named_parameters())
      if (p.key().find(".lora_B") != std::string::npos) p.value().normal_();
  }
  const std::string dir = test::fresh_dir("adapted");
  save_pretrained(built.model, built.spec, dir);
  const Model loaded = from_pretrained(dir);
  // the same tensors; each layer's adapters in the saved order (b, then the active a), not the injection order
  const auto by_key = [](const TensorDict& d) {
    std::map<std::string, torch::Tensor> sorted;
    for (const auto& item : d) sorted.emplace(item.key(), item.value());
    TensorDict out;
    for (const auto& [k, v] : sorted) out.insert(k, v);
    return out;
  };
  CHECK(test::bit_difference(by_key(test::tensors_of(*loaded.module)), by_key(test::tensors_of(model))) == "");
  const torch::Tensor x = torch::randn({2, 3, 64, 64});
  CHECK(test::bit_difference(forward(loaded, "input", x), forward(built.model, "input", x)) == "");
  const json adapters = test::read_config(dir)["spec"]["_adapters_"];
  REQUIRE(adapters.size() == 2);
  CHECK(adapters[0]["name"] == "b");  // the active adapter last
  CHECK(adapters[1]["name"] == "a");
  CHECK(adapters[1]["targets"] == json({"layer4.0.conv1", "layer4.1.conv1", "fc"}));  // the exact layers, in module order
  CHECK(lora::active(*loaded.module) == "a");
  CHECK(lora::names(*loaded.module) == std::vector<std::string>{"a", "b"});

  lora::merge(model);
  CHECK(test::error_of<UsageError>([&] { save_pretrained(built.model, built.spec, test::fresh_dir("merged")); })
            .find("unmerge it") != std::string::npos);
}

TEST_CASE("config.json: the weights' provenance, the preset, the tensors' digest; loading downloads nothing") {
  const WeightsRecord& r = get_weight("ResNet18_Weights.IMAGENET1K_V1");
  const json spec = json::parse(R"({"_target_": "resnet18", "weights": "ResNet18_Weights.IMAGENET1K_V1"})");
  spec::Built built;
  {
    ArchitectureOnly no_download;  // the test is offline; the values come next
    built = spec::build(spec);
  }
  torch::manual_seed(2);
  {
    torch::NoGradGuard no_grad;
    for (auto& item : test::tensors_of(*built.model.module)) {
      const bool variance = item.key().find("running_var") != std::string::npos;
      if (item.value().is_floating_point()) variance ? item.value().uniform_(0.5, 1.5) : item.value().normal_(0, 0.05);
    }
  }
  const std::string dir = test::fresh_dir("provenance");
  check_round_trip(built, dir, "input", torch::randn({1, 3, 64, 64}));
  const json config = test::read_config(dir);
  REQUIRE(config["weights"].size() == 1);
  const json& w = config["weights"][0];
  CHECK(w["name"] == "ResNet18_Weights.IMAGENET1K_V1");
  CHECK(w["url"] == "https://download.pytorch.org/models/resnet18-f37072fd.pth");
  CHECK(w["hash_prefix"] == "f37072fd");
  CHECK(w["sha256"] == (r.sha256.empty() ? json() : json(r.sha256)));
  CHECK(config["modelzoo_version"] == MZ_VERSION);
  CHECK(config["preset"]["weight"] == "ResNet18_Weights.IMAGENET1K_V1");  // the root's own weights
  CHECK(config["preset"]["meta"]["categories"].size() == 1000);
  const json& file = config["files"]["model.safetensors"];
  CHECK(file["size"] == fs::file_size(dir + "/model.safetensors"));
  CHECK(file["sha256"].get<std::string>().size() == 64);

  // a preset named and categories given: a fine-tuned head's own
  SaveOptions options;
  options.preset_of = "ResNet50_Weights.IMAGENET1K_V2";
  options.categories = std::vector<std::string>{"cat", "dog"};
  save_pretrained(built.model, spec, dir, options);  // over a saved model: replaced
  const json again = test::read_config(dir);
  CHECK(again["preset"]["transforms"]["resize_size"] == 232);
  CHECK(again["preset"]["meta"]["categories"] == json::parse(R"(["cat", "dog"])"));
  CHECK(pretrained::read_config(dir) == again);
}
