// The checkpoint-adaptation hook (mz::CheckpointAdapter, PyTorch's _load_from_state_dict): every
// adaptation the library ships, through every C++ load path (builder given weights, load_weights,
// load_checkpoint, load_state, get_model + load_checkpoint). The CLI's --checkpoint paths are in
// tests/cli, and tests/parity loads every family from files written the way old upstream files look.
#include <doctest/doctest.h>

#include "tests/support/support.h"

using namespace mz;
using namespace mz::test;

namespace {

// A model whose checkpoint comes from before PyTorch 0.4.1: no num_batches_tracked anywhere.
TensorDict old_state_of(const torch::nn::Module& m) { return without_suffix(state_of(m), ".num_batches_tracked"); }

std::size_t count_suffix(const std::vector<std::string>& keys, const std::string& suffix) {
  return std::count_if(keys.begin(), keys.end(), [&](const std::string& k) {
    return k.size() >= suffix.size() && k.compare(k.size() - suffix.size(), suffix.size(), suffix) == 0;
  });
}

void check_counters_zero(const torch::nn::Module& m) {
  for (const auto& b : m.named_buffers())
    if (b.key().find("num_batches_tracked") != std::string::npos) {
      CAPTURE(b.key());
      CHECK(b.value().item<std::int64_t>() == 0);
    }
}

torch::Tensor eval_forward(torch::nn::Module& m, const std::function<torch::Tensor(torch::Tensor)>& f,
                           const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  m.eval();
  return f(x);
}

// DenseNet's dense layers as upstream's released files name them: "norm1" -> "norm.1", ...
TensorDict densenet_upstream_keys(const TensorDict& state) {
  TensorDict out;
  for (const auto& item : state) {
    std::string key = item.key();
    if (key.find("denselayer") != std::string::npos)
      for (const char* part : {".norm1.", ".norm2.", ".relu1.", ".relu2.", ".conv1.", ".conv2."}) {
        const auto at = key.find(part);
        if (at == std::string::npos) continue;
        key = key.substr(0, at) + "." + std::string(part + 1, 4) + "." + part[5] + key.substr(at + 6);
        break;
      }
    out.insert(key, item.value());
  }
  return out;
}

}  // namespace

TEST_CASE("BatchNorm fills num_batches_tracked that old checkpoints lack, with 0, in every load path") {
  ResNet src = resnet18();
  randomize_norms(*src);
  const TensorDict old = old_state_of(*src);
  REQUIRE(old.size() + 20 == state_of(*src).size());
  const std::string path = temp_path("r18-old.pth.safetensors");
  save_safetensors(path, old);
  const auto x = torch::randn({1, 3, 32, 32});
  const auto expected = eval_forward(
      *src, [&](torch::Tensor t) { return src->forward(t); }, x);

  auto check_loaded = [&](ResNet& dst, const LoadReport& report) {
    CHECK(report.ok());
    CHECK(count_suffix(report.adapted, ".num_batches_tracked") == 20);
    CHECK(count_suffix(report.loaded, ".num_batches_tracked") == 20);
    check_counters_zero(*dst);
    CHECK(torch::equal(eval_forward(
                           *dst, [&](torch::Tensor t) { return dst->forward(t); }, x),
                       expected));
  };
  SUBCASE("load_checkpoint") {
    ResNet dst = resnet18();
    check_loaded(dst, load_checkpoint(*dst, path));
  }
  SUBCASE("load_checkpoint, mapped") {
    ResNet dst = resnet18();
    LoadOptions o;
    o.storage = Storage::Map;
    check_loaded(dst, load_checkpoint(*dst, path, o));
  }
  SUBCASE("load_state") {
    ResNet dst = resnet18();
    check_loaded(dst, load_state(*dst, old));
  }
  SUBCASE("load_weights") {
    ResNet dst = resnet18();
    check_loaded(dst, load_weights(*dst, local_weights(ResNet18_Weights::IMAGENET1K_V1, old)));
  }
  SUBCASE("the builder, given weights") {
    ResNet dst = resnet18(local_weights(ResNet18_Weights::IMAGENET1K_V1, old));
    check_counters_zero(*dst);
    CHECK(torch::equal(eval_forward(
                           *dst, [&](torch::Tensor t) { return dst->forward(t); }, x),
                       expected));
  }
  SUBCASE("get_model, then load_checkpoint on its module") {
    Model m = get_model("resnet18");
    const LoadReport report = load_checkpoint(*m.module, path);
    CHECK(report.ok());
    check_counters_zero(*m.module);
    torch::NoGradGuard no_grad;
    m.module->eval();
    CHECK(torch::equal(m.forward(x).at("output"), expected));
  }
  SUBCASE("a counter present in the file is loaded, not refilled") {
    ResNet dst = resnet18();
    CHECK(load_state(*dst, state_of(*src)).adapted.empty());
    CHECK(dst->bn1->num_batches_tracked.item<std::int64_t>() == 7);
  }
}

TEST_CASE("DenseNet: upstream's 'norm.1' keys, without num_batches_tracked, load in every path") {
  DenseNet src = densenet121();
  randomize_norms(*src);
  const TensorDict upstream = densenet_upstream_keys(old_state_of(*src));
  REQUIRE(upstream.contains("features.denseblock1.denselayer1.norm.1.running_mean"));
  REQUIRE(!upstream.contains("features.denseblock1.denselayer1.norm1.running_mean"));
  const auto x = torch::randn({1, 3, 32, 32});
  const auto expected = eval_forward(
      *src, [&](torch::Tensor t) { return src->forward(t); }, x);
  const DenseNet121_Weights w = local_weights(DenseNet121_Weights::IMAGENET1K_V1, upstream);

  SUBCASE("load_weights with .skip: the README's fine-tuning call") {
    DenseNetOptions o;
    o.num_classes = 10;
    DenseNet dst = densenet121({}, o);
    LoadOptions load;
    load.skip = {"classifier.*"};
    const LoadReport report = load_weights(*dst, w, load);
    CHECK(report.ok());
    CHECK(report.skipped == std::vector<std::string>{"classifier.weight", "classifier.bias"});
    CHECK(torch::equal(dst->features[4]->as<DenseBlockImpl>()->layers[0]->norm1->running_mean,
                       src->features[4]->as<DenseBlockImpl>()->layers[0]->norm1->running_mean));
    check_counters_zero(*dst);
  }
  SUBCASE("the builder, given weights") {
    DenseNet dst = densenet121(w);
    CHECK(torch::equal(eval_forward(
                           *dst, [&](torch::Tensor t) { return dst->forward(t); }, x),
                       expected));
  }
  SUBCASE("load_checkpoint into get_model's module") {
    const std::string path = temp_path("densenet121-upstream.safetensors");
    save_safetensors(path, upstream);
    Model m = get_model("densenet121");
    CHECK(load_checkpoint(*m.module, path).ok());
    torch::NoGradGuard no_grad;
    m.module->eval();
    CHECK(torch::equal(m.forward(x).at("output"), expected));
  }
  SUBCASE("current keys load unchanged") {
    DenseNet dst = densenet121();
    CHECK(load_state(*dst, state_of(*src)).adapted.empty());
  }
}

TEST_CASE("MNASNet: a version-1 checkpoint (fixed 32/16 stem) switches the stem, in every load path") {
  MNASNet v1 = mnasnet0_5();
  v1->use_v1_stem();
  nn::reset_parameters(*v1);
  randomize_norms(*v1);
  const TensorDict state = old_state_of(*v1);
  const auto x = torch::randn({1, 3, 32, 32});
  const auto expected = eval_forward(
      *v1, [&](torch::Tensor t) { return v1->forward(t); }, x);
  auto check_v1 = [&](MNASNet& dst) {
    CHECK(dst->version == 1);
    CHECK(torch::equal(eval_forward(
                           *dst, [&](torch::Tensor t) { return dst->forward(t); }, x),
                       expected));
  };
  SUBCASE("load_state") {
    MNASNet dst = mnasnet0_5();
    CHECK(load_state(*dst, state).ok());
    check_v1(dst);
  }
  SUBCASE("load_checkpoint, architecture only (as mz forward --checkpoint does)") {
    const std::string path = temp_path("mnasnet0_5-v1.safetensors");
    save_safetensors(path, state);
    MNASNet dst{nullptr};
    {
      ArchitectureOnly uninitialised;
      dst = mnasnet0_5();
    }
    CHECK(load_checkpoint(*dst, path).ok());
    check_v1(dst);
  }
  SUBCASE("the builder, given weights") {
    MNASNet dst = mnasnet0_5(local_weights(MNASNet0_5_Weights::IMAGENET1K_V1, state));
    check_v1(dst);
  }
  SUBCASE("a version-2 checkpoint keeps the version-2 stem") {
    MNASNet v2 = mnasnet0_5(), dst = mnasnet0_5();
    CHECK(load_state(*dst, state_of(*v2)).ok());
    CHECK(dst->version == 2);
  }
}

TEST_CASE("ViT: a checkpoint trained at another image size loads with interpolated position embeddings") {
  VisionTransformerOptions o;
  o.num_classes = 5;
  VisionTransformer at32(32, 8, 2, 2, 8, 16, o);
  {
    torch::NoGradGuard no_grad;
    for (auto& p : at32->parameters()) p.normal_();
  }
  const TensorDict saved = state_of(*at32);
  const auto expected = interpolate_embeddings(64, 8, saved).at("encoder.pos_embedding");
  auto check_at64 = [&](VisionTransformer& at64, const LoadReport& report) {
    CHECK(report.ok());
    CHECK(report.adapted == std::vector<std::string>{"encoder.pos_embedding"});
    CHECK(report.loaded.size() == saved.size());
    CHECK(torch::allclose(at64->encoder->pos_embedding, expected));
    CHECK(torch::equal(at64->class_token, at32->class_token));
  };
  SUBCASE("load_checkpoint") {
    const std::string path = temp_path("vit32.safetensors");
    save_safetensors(path, saved);
    VisionTransformer at64(64, 8, 2, 2, 8, 16, o);
    check_at64(at64, load_checkpoint(*at64, path));
  }
  SUBCASE("load_state") {
    VisionTransformer at64(64, 8, 2, 2, 8, 16, o);
    check_at64(at64, load_state(*at64, saved));
  }
  SUBCASE("the same size is a plain load") {
    VisionTransformer again(32, 8, 2, 2, 8, 16, o);
    CHECK(load_state(*again, saved).adapted.empty());
    CHECK(torch::equal(again->encoder->pos_embedding, at32->encoder->pos_embedding));
  }
  SUBCASE("another width is reported, not adapted") {
    VisionTransformer wide(64, 8, 2, 2, 16, 16, o);
    LoadOptions lenient;
    lenient.strict = false;
    const LoadReport report = load_state(*wide, saved, lenient);
    CHECK(report.adapted.empty());
    CHECK(!report.mismatched.empty());
  }
}

namespace {

// A user's own module with its own legacy layout: "old_fc.*" was renamed "fc.*". Its child BatchNorm
// adapts after it (parents first).
struct LegacyImpl : torch::nn::Module, CheckpointAdapter {
  LegacyImpl() {
    fc = register_module("fc", nn::Linear(4, 2));
    bn = register_module("bn", nn::BatchNorm2d(4));
    nn::reset_parameters(*this);
  }
  void adapt_checkpoint(IncomingState& state, const std::string& prefix) override {
    seen = state.keys();
    for (const char* t : {"weight", "bias"}) state.rename(prefix + "old_fc." + t, prefix + "fc." + t);
  }
  nn::Linear fc{nullptr};
  nn::BatchNorm2d bn{nullptr};
  std::vector<std::string> seen;
};
TORCH_MODULE(Legacy);

}  // namespace

TEST_CASE("CheckpointAdapter on a user's module: keys after strip_module_prefix, parents before children") {
  Legacy src, dst;
  randomize_norms(*src);
  TensorDict file;
  for (const auto& item : old_state_of(*src)) {
    std::string key = item.key();
    if (key.rfind("fc.", 0) == 0) key = "old_" + key;
    file.insert("module." + key, item.value());
  }
  LoadOptions o;
  o.strip_module_prefix = true;
  const LoadReport report = load_state(*dst, file, o);
  CHECK(report.ok());
  CHECK(dst->seen.front() == "old_fc.weight");
  CHECK(report.adapted == std::vector<std::string>{"fc.weight", "fc.bias", "bn.num_batches_tracked"});
  CHECK(torch::equal(dst->fc->weight, src->fc->weight));
  CHECK(torch::equal(dst->bn->running_var, src->bn->running_var));
}

namespace {

// Exercises every IncomingState operation on the keys it is given.
struct ProbeImpl : torch::nn::Module, CheckpointAdapter {
  ProbeImpl() { fc = register_module("fc", nn::Linear(4, 2)); }
  void adapt_checkpoint(IncomingState& s, const std::string& prefix) override {
    CHECK(prefix.empty());
    CHECK(s.keys() == std::vector<std::string>{"fc.weight", "fc.bias", "stale"});
    CHECK(s.shape("fc.weight") == std::vector<std::int64_t>{2, 4});
    CHECK(torch::equal(s.read("fc.weight"), torch::ones({2, 4})));
    s.set("fc.weight", torch::full({2, 4}, 3.0));
    s.rename("absent", "other");  // a no-op
    s.erase("stale");
    CHECK(!s.contains("stale"));
    CHECK_THROWS_AS(s.shape("stale"), LoadError);
  }
  nn::Linear fc{nullptr};
};
TORCH_MODULE(Probe);

}  // namespace

TEST_CASE("IncomingState: reads on demand, replaces, renames and erases, from a file or from memory") {
  TensorDict in;
  in.insert("fc.weight", torch::ones({2, 4}));
  in.insert("fc.bias", torch::zeros({2}));
  in.insert("stale", torch::zeros({1}));
  const std::string path = temp_path("probe.safetensors");
  save_safetensors(path, in);
  for (const bool from_file : {false, true}) {
    CAPTURE(from_file);
    Probe probe;
    const LoadReport report = from_file ? load_checkpoint(*probe, path) : load_state(*probe, in);
    CHECK(report.ok());
    CHECK(report.adapted == std::vector<std::string>{"fc.weight"});
    CHECK(torch::equal(probe->fc->weight, torch::full({2, 4}, 3.0)));
  }
}
