// LoRA adapters (mz::lora): a training step on ViT, RoBERTa and a detector's heads in which the loss
// decreases and only adapter tensors change; injection leaves the output unchanged; merge / unmerge;
// several named adapters; adapter-only save and load and its refusal of another base; "_adapters_" in
// specs; `mz forward --adapter`.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>

#include "tests/support/support.h"

using namespace mz;
using nlohmann::json;

namespace {

bool is_adapter(const std::string& key) { return key.find(".lora.") != std::string::npos; }

// Gives every adapter a non-zero B, so that it changes the output.
void randomize_adapters(torch::nn::Module& m, double scale = 0.05) {
  torch::NoGradGuard no_grad;
  for (auto& p : m.named_parameters())
    if (is_adapter(p.key()) && p.key().find("lora_B") != std::string::npos) p.value().normal_(0, scale);
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

// Steps of Adam on what requires grad: the loss decreases, and only adapter tensors change (each one's B).
void check_training(torch::nn::Module& model, const std::function<torch::Tensor()>& loss, int steps = 8) {
  std::vector<torch::Tensor> trainable;
  for (const auto& p : model.named_parameters())
    if (p.value().requires_grad()) {
      CHECK_MESSAGE(is_adapter(p.key()), p.key());
      trainable.push_back(p.value());
    }
  REQUIRE(!trainable.empty());
  const TensorDict before = test::state_of(model);
  torch::optim::Adam optimizer(trainable, torch::optim::AdamOptions(1e-2));
  std::vector<double> losses;
  for (int i = 0; i < steps; ++i) {
    optimizer.zero_grad();
    torch::Tensor l = loss();
    l.backward();
    optimizer.step();
    losses.push_back(l.item<double>());
  }
  CHECK(losses.back() < losses.front());
  const TensorDict after = test::state_of(model);
  int changed = 0;
  for (const auto& item : before) {
    const bool same = torch::equal(item.value(), after.at(item.key()));
    if (!is_adapter(item.key())) CHECK_MESSAGE(same, item.key());
    if (is_adapter(item.key()) && item.key().find("lora_B") != std::string::npos) {
      CHECK_MESSAGE(!same, item.key());
      changed += !same;
    }
  }
  CHECK(changed > 0);
}

// A small ViT (2 layers, 32 channels, 32x32 images), its parameters drawn from N(0, 0.02).
VisionTransformer tiny_vit() {
  torch::manual_seed(0);
  VisionTransformer vit(32, 8, 2, 2, 32, 64, VisionTransformerOptions{.num_classes = 3});
  torch::NoGradGuard no_grad;
  for (auto& p : vit->parameters()) p.normal_(0, 0.02);
  return vit;
}

ResNet small_resnet() {
  torch::manual_seed(1);
  auto model = resnet18({}, {.num_classes = 4});
  model->eval();
  return model;
}

torch::Tensor eval_forward(ResNet& model, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  return model->forward(x);
}

RobertaOptions tiny_roberta() {
  const json conf = {{"vocab_size", 50},        {"embedding_dim", 16}, {"ffn_dimension", 24},
                     {"padding_idx", 1},        {"max_seq_len", 20},   {"num_attention_heads", 2},
                     {"num_encoder_layers", 2}, {"dropout", 0.0},      {"normalize_before", false}};
  return options_from_json<RobertaOptions>(conf, "roberta_base");
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), {}};
}
void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace

TEST_CASE("ViT: injection leaves the output unchanged; a training step changes only the adapters") {
  auto vit = tiny_vit();
  const auto x = torch::rand({2, 3, 32, 32});
  vit->train();
  const auto base = vit->forward(x).detach();
  const auto paths = lora::inject(*vit, {.targets = {"*.self_attention.*", "heads.*"}, .rank = 4, .alpha = 8});
  CHECK(paths == std::vector<std::string>{"encoder.layers.encoder_layer_0.self_attention",
                                          "encoder.layers.encoder_layer_0.self_attention.out_proj",
                                          "encoder.layers.encoder_layer_1.self_attention",
                                          "encoder.layers.encoder_layer_1.self_attention.out_proj", "heads.head"});
  // the fused in-projection: A [rank, 32], B [3 * 32, rank]
  const auto shapes = test::shapes_of(*vit);
  CHECK(shapes.at("encoder.layers.encoder_layer_0.self_attention.lora.default.lora_A") == test::Ints{4, 32});
  CHECK(shapes.at("encoder.layers.encoder_layer_0.self_attention.lora.default.lora_B") == test::Ints{96, 4});
  CHECK(torch::equal(vit->forward(x), base));  // B = 0: bit-identical
  const auto labels = torch::tensor({0, 2});
  check_training(*vit, [&] { return torch::cross_entropy_loss(vit->forward(x), labels); });
  // eval without grad runs LibTorch's fused attention kernel: with the adapter too
  vit->eval();
  torch::NoGradGuard no_grad;
  const auto fused = vit->forward(x);
  lora::deactivate(*vit);
  CHECK(max_diff(fused, vit->forward(x)) > 1e-4);
}

TEST_CASE("Swin: its attention's qkv and proj (read by shifted_window_attention) are adapted too") {
  torch::manual_seed(4);
  auto model = swin_t({}, {.num_classes = 3});
  model->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::rand({1, 3, 64, 64});
  const auto base = model->forward(x);
  CHECK(lora::inject(*model, {.targets = {"features.1.0.attn.*"}, .rank = 2}) ==
        std::vector<std::string>{"features.1.0.attn.qkv", "features.1.0.attn.proj"});
  CHECK(torch::equal(model->forward(x), base));
  randomize_adapters(*model, 0.5);
  CHECK(max_diff(model->forward(x), base) > 1e-4);
}

TEST_CASE("RoBERTa: a training step on the attention's adapters (in- and out-projection)") {
  torch::manual_seed(2);
  auto model = roberta_base({}, tiny_roberta());
  model->train();
  const auto ids = torch::randint(3, 50, {3, 7}, torch::kLong);
  const auto target = torch::randn({3, 7, 16});
  const auto paths = lora::inject(*model, {.targets = {"*.self_attn.*"}, .rank = 4, .alpha = 8});
  CHECK(paths.size() == 4);  // 2 layers x (in_proj_weight, out_proj)
  CHECK(test::has_key(*model, "encoder.transformer.layers.layers.0.self_attn.lora.default.lora_A"));
  CHECK(test::has_key(*model, "encoder.transformer.layers.layers.0.self_attn.out_proj.lora.default.lora_B"));
  check_training(*model, [&] { return torch::mse_loss(model->forward(ids), target); });
  // the eval fast path (fused encoder layer) uses the adapted weights as the plain path does
  model->eval();
  torch::NoGradGuard no_grad;
  const auto fast = model->forward(ids);
  model->train();
  CHECK(max_diff(fast, model->forward(ids)) < 1e-5);
}

TEST_CASE("a detector's heads: a training step on the box head and predictor's adapters") {
  torch::manual_seed(3);
  torch::nn::Sequential backbone(nn::Conv2d(torch::nn::Conv2dOptions(3, 16, 3).stride(8).padding(1)));
  auto model = FasterRCNN(backbone, {.out_channels = 16,
                                     .min_size = {64},
                                     .max_size = 64,
                                     .rpn_anchor_generator = AnchorGenerator({{16, 32}}, {{0.5, 1.0, 2.0}}),
                                     .box_roi_pool = MultiScaleRoIAlign({"0"}, 7, 2),
                                     .box_head = torch::nn::AnyModule(TwoMLPHead(16 * 7 * 7, 64)),
                                     .box_predictor = FastRCNNPredictor(64, 3)});
  nn::reset_parameters(*model);
  model->eval();  // the detectors have no training losses: a loss over the heads' outputs
  const auto paths = lora::inject(*model, {.targets = {"roi_heads.*"}, .rank = 4, .alpha = 4});
  CHECK(paths == std::vector<std::string>{"roi_heads.box_head.fc6", "roi_heads.box_head.fc7",
                                          "roi_heads.box_predictor.cls_score", "roi_heads.box_predictor.bbox_pred"});
  TensorDict features;
  {
    torch::NoGradGuard no_grad;
    features = model->features(torch::rand({2, 3, 64, 64}));
  }
  const std::vector<torch::Tensor> proposals = {torch::tensor({{0.f, 0.f, 30.f, 30.f}, {10.f, 20.f, 60.f, 50.f}}),
                                                torch::tensor({{5.f, 5.f, 40.f, 60.f}, {30.f, 0.f, 63.f, 32.f}})};
  const std::vector<ImageSize> sizes = {{64, 64}, {64, 64}};
  const auto labels = torch::tensor({1, 2, 0, 1});
  const auto deltas = torch::randn({4, 12});
  check_training(*model, [&] {
    auto [logits, regression] = model->roi_heads->box_logits(features, proposals, sizes);
    return torch::cross_entropy_loss(logits, labels) + torch::mse_loss(regression, deltas);
  });
}

TEST_CASE("merge equals the adapted forward; unmerge restores the base bit-exactly; Conv2d and Linear") {
  auto model = small_resnet();
  const auto x = torch::rand({2, 3, 32, 32});
  const TensorDict base_state = test::state_of(*model);
  const auto base = eval_forward(model, x);
  lora::inject(*model, {.targets = {"layer4.*.conv*", "fc"}, .rank = 2, .alpha = 4});
  CHECK(test::shapes_of(*model).at("layer4.0.conv1.lora.default.lora_A") == test::Ints{2, 256 * 3 * 3});
  CHECK(torch::equal(eval_forward(model, x), base));
  randomize_adapters(*model);
  const auto adapted = eval_forward(model, x);
  CHECK(max_diff(adapted, base) > 1e-3);
  lora::merge(*model);
  CHECK(!torch::equal(model->fc->weight, base_state.at("fc.weight")));
  CHECK(max_diff(eval_forward(model, x), adapted) < 1e-5);
  lora::unmerge(*model);
  for (const auto& item : base_state)
    CHECK_MESSAGE(torch::equal(test::state_of(*model).at(item.key()), item.value()), item.key());
  CHECK(torch::equal(eval_forward(model, x), adapted));  // the adapter is active again
}

TEST_CASE("several named adapters: set_active switches, deactivate and remove restore the base") {
  auto model = small_resnet();
  const auto x = torch::rand({2, 3, 32, 32});
  const auto keys = test::keys_of(*model);
  const auto base = eval_forward(model, x);
  lora::inject(*model, {.targets = {"fc"}, .rank = 2, .alpha = 2, .name = "a"});
  lora::inject(*model, {.targets = {"fc", "layer4.1.conv2"}, .rank = 4, .alpha = 4, .name = "b"});
  CHECK(lora::names(*model) == std::vector<std::string>{"a", "b"});
  CHECK(lora::active(*model) == "b");
  randomize_adapters(*model);
  const auto b = eval_forward(model, x);
  lora::set_active(*model, "a");
  CHECK(lora::active(*model) == "a");
  const auto params = model->named_parameters();  // the active adapter alone trains
  CHECK(params["fc.lora.a.lora_A"].requires_grad());
  CHECK(!params["fc.lora.b.lora_A"].requires_grad());
  CHECK(!params["fc.weight"].requires_grad());
  const auto a = eval_forward(model, x);
  CHECK(max_diff(a, b) > 1e-3);
  CHECK(max_diff(a, base) > 1e-3);
  lora::set_active(*model, "b");
  CHECK(torch::equal(eval_forward(model, x), b));
  lora::deactivate(*model);
  CHECK(lora::active(*model).empty());
  CHECK(torch::equal(eval_forward(model, x), base));

  CHECK_THROWS_WITH_AS(lora::set_active(*model, "c"), "lora: no adapter 'c' on this model", UsageError);
  CHECK_THROWS_WITH_AS(lora::inject(*model, {.targets = {"fc"}, .name = "a"}),
                       "lora: the model already has an adapter named 'a'", UsageError);
  CHECK_THROWS_WITH_AS(lora::inject(*model, {.targets = {"nothing*"}, .name = "c"}),
                       doctest::Contains("no adaptable layer matches the targets [\"nothing*\"] (Linear, Conv2d and "
                                         "attention in-projections: conv1, layer1.0.conv1,"),
                       UsageError);
  CHECK_THROWS_WITH_AS(lora::inject(*model, {.targets = {"fc"}, .rank = 0, .name = "c"}), doctest::Contains("rank"),
                       UsageError);
  CHECK_THROWS_WITH_AS(lora::inject(*model, {.targets = {"fc"}, .name = "c.d"}), doctest::Contains("without dots"),
                       UsageError);

  lora::set_active(*model, "a");
  lora::merge(*model);
  lora::remove(*model, "a");  // unmerges first
  CHECK(lora::names(*model) == std::vector<std::string>{"b"});
  CHECK(lora::active(*model).empty());
  CHECK(torch::equal(eval_forward(model, x), base));
  lora::remove(*model, "b");
  CHECK(lora::names(*model).empty());
  CHECK(test::keys_of(*model) == keys);  // the original modules, state dict included
  CHECK(torch::equal(eval_forward(model, x), base));
}

TEST_CASE("adapter-only save and load: a round trip, and the refusal of another base or a bad file") {
  const std::string dir = test::temp_path("adapter");
  std::filesystem::create_directories(dir);
  const std::vector<std::string> base_weights = {"ResNet18_Weights.IMAGENET1K_V1"};
  auto model = small_resnet();
  const TensorDict base_state = test::state_of(*model);
  const auto x = torch::rand({2, 3, 32, 32});
  lora::inject(*model, {.targets = {"fc", "layer4.*.conv2"}, .rank = 2, .alpha = 6, .name = "mine"});
  randomize_adapters(*model);
  const auto adapted = eval_forward(model, x);
  lora::save(*model, dir, base_weights);
  const json config = json::parse(read_text(dir + "/adapter.json"));
  CHECK(config["schema"] == "modelzoo.adapter/1");
  CHECK(config["lora"] ==
        json{{"targets", {"layer4.0.conv2", "layer4.1.conv2", "fc"}}, {"rank", 2}, {"alpha", 6.0}, {"name", "mine"}});
  CHECK(config["base_weights"][0]["name"] == "ResNet18_Weights.IMAGENET1K_V1");
  CHECK(read_checkpoint(dir + "/adapter.safetensors").keys() ==
        std::vector<std::string>{"layer4.0.conv2.lora_A", "layer4.0.conv2.lora_B", "layer4.1.conv2.lora_A",
                                 "layer4.1.conv2.lora_B", "fc.lora_A", "fc.lora_B"});

  auto other = small_resnet();
  load_state(*other, base_state);
  CHECK(lora::load(*other, dir, base_weights) == "mine");
  CHECK(torch::equal(eval_forward(other, x), adapted));

  auto fresh = [&] {
    auto m = small_resnet();
    load_state(*m, base_state);
    return m;
  };
  const std::string file = dir + "/adapter.json";
  auto m = fresh();
  CHECK_THROWS_WITH_AS(
      lora::load(*m, dir, {"ResNet50_Weights.IMAGENET1K_V2"}),
      doctest::Contains((file + ": the adapter was trained on \"ResNet18_Weights.IMAGENET1K_V1\"").c_str()), LoadError);
  CHECK_THROWS_WITH_AS(lora::load(*m, dir), doctest::Contains("but this model was built from no registered weights"),
                       LoadError);
  CHECK(lora::names(*m).empty());
  // the same name with another digest is another base
  json tampered = config;
  tampered["base_weights"][0]["sha256"] = std::string(64, '0');
  write_text(file, tampered.dump());
  CHECK_THROWS_WITH_AS(lora::load(*m, dir, base_weights), doctest::Contains("(sha256 \"0000"), LoadError);
  // untrusted input: typed errors naming the file; a failed load leaves no adapter behind
  write_text(file, "{\"schema\": ");
  CHECK_THROWS_WITH_AS(lora::load(*m, dir, base_weights),
                       doctest::Contains((file + ": not a valid adapter config").c_str()), CheckpointError);
  json newer = config;
  newer["schema"] = "modelzoo.adapter/2";
  write_text(file, newer.dump());
  CHECK_THROWS_WITH_AS(lora::load(*m, dir, base_weights), doctest::Contains("expected \"modelzoo.adapter/1\""),
                       CheckpointError);
  json bad_rank = config;
  bad_rank["lora"]["rank"] = 3;  // the tensors have rank 2
  write_text(file, bad_rank.dump());
  CHECK_THROWS_WITH_AS(
      lora::load(*m, dir, base_weights),
      doctest::Contains(
          (dir + "/adapter.safetensors: layer4.0.conv2.lora_A: file [2, 4608] vs adapter [3, 4608]").c_str()),
      LoadError);
  CHECK(lora::names(*m).empty());
  write_text(file, config.dump());
  TensorDict partial = read_checkpoint(dir + "/adapter.safetensors");
  partial.erase("fc.lora_B");
  save_safetensors(dir + "/adapter.safetensors", partial);
  CHECK_THROWS_WITH_AS(lora::load(*m, dir, base_weights), (dir + "/adapter.safetensors: missing fc.lora_B").c_str(),
                       LoadError);
  CHECK(lora::names(*m).empty());
  write_text(dir + "/adapter.safetensors", "not safetensors");
  CHECK_THROWS_WITH_AS(lora::load(*m, dir, base_weights), doctest::Contains((dir + "/adapter.safetensors").c_str()),
                       CheckpointError);
  CHECK(lora::names(*m).empty());
  CHECK_THROWS_WITH_AS(lora::load(*m, dir + "/none"), (dir + "/none/adapter.json: cannot open").c_str(),
                       CheckpointError);
}

TEST_CASE("\"_adapters_\" in specs") {
  const json spec = {{"_target_", "resnet18"},
                     {"weights", nullptr},
                     {"num_classes", 4},
                     {"_adapters_",
                      {{{"targets", {"fc"}}, {"rank", 2}, {"alpha", 4}, {"name", "x"}},
                       {{"targets", {"layer4.*.conv1"}}, {"rank", 3}}}}};
  Model model = build(spec);
  CHECK(test::shapes_of(*model.module).at("fc.lora.x.lora_A") == test::Ints{2, 512});
  CHECK(test::has_key(*model.module, "layer4.0.conv1.lora.default.lora_B"));
  CHECK(lora::names(*model.module) == std::vector<std::string>{"default", "x"});
  CHECK(lora::active(*model.module) == "default");  // the last one injected

  auto error = [](const json& adapters) {
    try {
      build(json{{"_target_", "resnet18"}, {"weights", nullptr}, {"_adapters_", adapters}});
    } catch (const UsageError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(error({{{"targets", {"nothing"}}}}).rfind("model._adapters_.0: no adaptable layer matches", 0) == 0);
  CHECK(error({{{"targets", {"fc"}}, {"r", 8}}}) ==
        "model._adapters_.0: unknown option 'r' (valid: alpha, name, rank, targets)");
  CHECK(error({{"targets", {"fc"}}}) ==
        "model._adapters_: a list of adapters {\"targets\": [...], ...}, got "
        "{\"targets\":[\"fc\"]}");
}

TEST_CASE("mz forward --adapter applies a saved adapter, over the base it names") {
  const char* cli = std::getenv("MZ_CLI");
  REQUIRE(cli != nullptr);
  const std::string dir = test::temp_path("cli"), checkpoint = dir + "/base.safetensors";
  std::filesystem::create_directories(dir + "/adapter");
  auto model = small_resnet();
  save_safetensors(checkpoint, test::state_of(*model));
  const auto x = torch::rand({1, 3, 32, 32});
  TensorDict input;
  input.insert("input", x);
  save_safetensors(dir + "/in.safetensors", input);
  const auto base = eval_forward(model, x);
  lora::inject(*model, {.targets = {"fc", "layer3.*.conv1"}, .rank = 2, .alpha = 4});
  randomize_adapters(*model, 0.2);
  lora::save(*model, dir + "/adapter");
  const auto adapted = eval_forward(model, x);

  const std::string forward = std::string(cli) + " forward resnet18 --num-classes 4 --checkpoint " + checkpoint +
                              " --input " + dir + "/in.safetensors --output " + dir + "/out.safetensors";
  REQUIRE(std::system((forward + " --adapter " + dir + "/adapter").c_str()) == 0);
  const auto out = read_checkpoint(dir + "/out.safetensors").at("output");
  CHECK(max_diff(out, adapted) < 1e-5);
  CHECK(max_diff(out, base) > 1e-3);
  REQUIRE(std::system(forward.c_str()) == 0);
  CHECK(max_diff(read_checkpoint(dir + "/out.safetensors").at("output"), base) < 1e-5);

  // an adapter trained on registered weights is refused over an unregistered checkpoint (exit 4)
  lora::save(*model, dir + "/adapter", {"ResNet18_Weights.IMAGENET1K_V1"});
  const int status = std::system((forward + " --adapter " + dir + "/adapter 2> " + dir + "/err.txt").c_str());
  CHECK(WEXITSTATUS(status) == 4);
  CHECK(
      read_text(dir + "/err.txt").find("adapter.json: the adapter was trained on \"ResNet18_Weights.IMAGENET1K_V1\"") !=
      std::string::npos);
}
