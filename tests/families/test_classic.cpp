// Builder semantics of the classic families (AlexNet, VGG, SqueezeNet, DenseNet, GoogLeNet,
// Inception v3) that the generic registry, metadata and parity tests do not see: what weights
// force or forbid, aux heads kept or dropped, DenseNet's old checkpoint keys, init_weights.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "modelzoo/modelzoo.h"

using namespace mz;
namespace fs = std::filesystem;

namespace {

// A scratch directory for this process, removed at exit.
std::string temp_dir() {
  struct Scratch {
    fs::path dir = fs::temp_directory_path() / ("mz-classic-" + std::to_string(::getpid()));
    Scratch() { fs::create_directories(dir); }
    ~Scratch() {
      std::error_code ignored;
      fs::remove_all(dir, ignored);
    }
  };
  static Scratch scratch;
  return scratch.dir.string();
}

NamedTensors state_of(torch::nn::Module& m) {
  NamedTensors out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value().detach().clone());
  for (const auto& b : m.named_buffers()) out.emplace_back(b.key(), b.value().detach().clone());
  return out;
}

std::set<std::string> keys_of(torch::nn::Module& m) {
  std::set<std::string> out;
  for (const auto& [k, v] : state_of(m)) out.insert(k);
  return out;
}

bool has_key_starting(torch::nn::Module& m, const std::string& prefix) {
  for (const auto& k : keys_of(m))
    if (k.rfind(prefix, 0) == 0) return true;
  return false;
}

// Running statistics away from (0, 1) so that a lost buffer shows in the outputs.
void randomize_norms(torch::nn::Module& m) {
  torch::NoGradGuard no_grad;
  nn::for_each<nn::BatchNorm2dImpl>(m, [](nn::BatchNorm2dImpl& b) {
    b.running_mean.normal_(0, 0.1);
    b.running_var.uniform_(0.5, 1.5);
    b.weight.uniform_(0.5, 1.5);
  });
}

// Registers `<Enum>.LOCAL_TEST_<n>`, a copy of `base` whose file is `tensors` saved locally (file://
// URL, no digest to check), so that a builder given it runs its real load path.
template <class W>
W local_weights(const W& base, const NamedTensors& tensors) {
  const std::string dir = temp_dir();
  ::setenv("MZ_CACHE_DIR", (dir + "/cache").c_str(), 1);
  static int count = 0;
  const std::string value = "LOCAL_TEST_" + std::to_string(++count);
  WeightsRecord r = base.record();
  const std::string file = dir + "/" + r.model + "-" + value + ".safetensors";
  save_safetensors(file, tensors);
  r.value_name = value;
  r.url = "file://" + file;
  r.hash_prefix.clear();
  r.sha256.clear();
  r.file_size.reset();
  r.is_default = false;
  r.source = "test_classic";
  register_weights(r);
  return W::from_name(value);
}

torch::Tensor std_of(const torch::Tensor& t) { return t.std(); }

}  // namespace

TEST_CASE("googlenet with weights: transform_input on, aux heads loaded and then dropped") {
  GoogLeNetOptions src_options;
  src_options.init_weights = false;
  GoogLeNet src = googlenet({}, src_options);  // aux heads by default without weights
  REQUIRE(src->aux_logits());
  randomize_norms(*src);
  const GoogLeNet_Weights w = local_weights(GoogLeNet_Weights::IMAGENET1K_V1, state_of(*src));

  GoogLeNet model = googlenet(w);  // strict load: the checkpoint's aux1/aux2 keys must have a home
  CHECK(model->transform_input);
  CHECK(!model->aux_logits());
  CHECK(!has_key_starting(*model, "aux1."));
  CHECK(!has_key_starting(*model, "aux2."));
  CHECK(nn::num_params(*model) == GoogLeNet_Weights::IMAGENET1K_V1.meta().num_params);
  CHECK(model->steps().front().name == "transform_input");

  torch::NoGradGuard no_grad;
  src->eval();
  model->eval();
  const auto x = torch::randn({1, 3, 32, 32});
  CHECK(torch::allclose(model->forward(x), src->forward(mz::detail::inception_transform_input(x)), 1e-5, 1e-5));

  SUBCASE("aux heads kept when asked for, with their loaded values") {
    GoogLeNetOptions o;
    o.aux_logits = true;
    GoogLeNet with_aux = googlenet(w, o);
    REQUIRE(with_aux->aux_logits());
    CHECK(torch::equal(with_aux->aux1->fc2->weight, src->aux1->fc2->weight));
    CHECK(torch::equal(with_aux->aux2->conv->bn->running_var, src->aux2->conv->bn->running_var));
  }
  SUBCASE("transform_input given by the caller is kept") {
    GoogLeNetOptions o;
    o.transform_input = false;
    GoogLeNet plain = googlenet(w, o);
    CHECK(!plain->transform_input);
    plain->eval();
    CHECK(torch::allclose(plain->forward(x), src->forward(x), 1e-5, 1e-5));
  }
}

TEST_CASE("googlenet with weights rejects aux_logits=false, init_weights=true and another num_classes") {
  ArchitectureOnly no_download;
  auto with = [](auto edit) {
    GoogLeNetOptions o;
    edit(o);
    return googlenet(GoogLeNet_Weights::DEFAULT, o);
  };
  CHECK_THROWS_WITH_AS(with([](auto& o) { o.aux_logits = false; }),
                       "GoogLeNet_Weights.IMAGENET1K_V1: option 'aux_logits' must be true, got false", UsageError);
  CHECK_THROWS_WITH_AS(with([](auto& o) { o.init_weights = true; }),
                       "GoogLeNet_Weights.IMAGENET1K_V1: option 'init_weights' must be false, got true", UsageError);
  CHECK_THROWS_AS(with([](auto& o) { o.num_classes = 10; }), UsageError);
  CHECK_NOTHROW(with([](auto& o) { o.init_weights = false; }));
}

TEST_CASE("googlenet without weights: aux_logits and init_weights as in Python") {
  GoogLeNet defaults = googlenet();
  CHECK(defaults->aux_logits());  // GoogLeNet's own default is True
  CHECK(!defaults->transform_input);
  CHECK(has_key_starting(*defaults, "aux1.fc2."));
  // init_weights (default true): truncated N(0, 0.01); PyTorch's default is far wider here.
  CHECK(std_of(defaults->conv1->conv->weight).item<double>() == doctest::Approx(0.01).epsilon(0.1));

  GoogLeNetOptions o;
  o.aux_logits = false;
  o.init_weights = false;
  GoogLeNet plain = googlenet({}, o);
  CHECK(!plain->aux_logits());
  CHECK(!has_key_starting(*plain, "aux1."));
  CHECK(std_of(plain->conv1->conv->weight).item<double>() > 0.03);  // U(-1/sqrt(147), 1/sqrt(147))
}

TEST_CASE("googlenet in training mode also returns the aux heads' logits") {
  GoogLeNetOptions o;
  o.num_classes = 7;
  GoogLeNet model = googlenet({}, o);
  model->train();
  const auto out = model->forward_outputs(torch::randn({2, 3, 32, 32}));
  CHECK(out.logits.sizes() == torch::IntArrayRef{2, 7});
  CHECK(out.aux_logits1.sizes() == torch::IntArrayRef{2, 7});
  CHECK(out.aux_logits2.sizes() == torch::IntArrayRef{2, 7});
  model->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({1, 3, 32, 32});
  const auto eval = model->forward_outputs(x);
  CHECK(!eval.aux_logits1.defined());
  CHECK(torch::equal(eval.logits, model->forward(x)));
}

TEST_CASE("inception_v3 with weights: transform_input on, the aux head stays (aux_logits=false is an error)") {
  ArchitectureOnly no_download;
  Inception3 model = inception_v3(Inception_V3_Weights::DEFAULT);
  CHECK(model->transform_input);
  CHECK(model->aux_logits());
  CHECK(has_key_starting(*model, "AuxLogits.fc."));
  CHECK(nn::num_params(*model) == Inception_V3_Weights::IMAGENET1K_V1.meta().num_params);
  Inception3Options o;
  o.aux_logits = false;
  CHECK_THROWS_WITH_AS(inception_v3(Inception_V3_Weights::DEFAULT, o),
                       "Inception_V3_Weights.IMAGENET1K_V1: option 'aux_logits' must be true, got false", UsageError);
  Inception3Options t;
  t.transform_input = false;
  CHECK(!inception_v3(Inception_V3_Weights::DEFAULT, t)->transform_input);
}

TEST_CASE("inception_v3 without weights: aux_logits and init_weights as in Python") {
  Inception3 model = inception_v3();
  CHECK(model->aux_logits());
  CHECK(!model->transform_input);
  // init_weights: truncated N(0, 0.1) everywhere except AuxLogits.fc, N(0, 0.001).
  CHECK(std_of(model->fc->weight).item<double>() == doctest::Approx(0.1).epsilon(0.05));
  CHECK(std_of(model->AuxLogits->fc->weight).item<double>() == doctest::Approx(0.001).epsilon(0.05));

  Inception3Options o;
  o.aux_logits = false;
  o.init_weights = false;
  Inception3 plain = inception_v3({}, o);
  CHECK(!plain->aux_logits());
  CHECK(!has_key_starting(*plain, "AuxLogits."));
  CHECK(std_of(plain->fc->weight).item<double>() < 0.02);  // U(-1/sqrt(2048), 1/sqrt(2048))

  SUBCASE("training mode returns the aux logits too") {
    model->train();
    const auto out = model->forward_outputs(torch::randn({2, 3, 299, 299}));
    CHECK(out.logits.sizes() == torch::IntArrayRef{2, 1000});
    CHECK(out.aux_logits.sizes() == torch::IntArrayRef{2, 1000});
  }
}

TEST_CASE("densenet_checkpoint_key: torchvision's remapping of old dense-layer keys") {
  CHECK(densenet_checkpoint_key("features.denseblock1.denselayer1.norm.1.weight") ==
        "features.denseblock1.denselayer1.norm1.weight");
  CHECK(densenet_checkpoint_key("features.denseblock4.denselayer16.conv.2.weight") ==
        "features.denseblock4.denselayer16.conv2.weight");
  CHECK(densenet_checkpoint_key("features.denseblock2.denselayer3.norm.2.running_var") ==
        "features.denseblock2.denselayer3.norm2.running_var");
  for (const char* unchanged : {"features.denseblock1.denselayer1.norm1.weight", "features.transition1.norm.weight",
                                "features.norm5.bias", "classifier.weight",
                                "features.denseblock1.denselayer1.norm.1.num_batches_tracked"})
    CHECK(densenet_checkpoint_key(unchanged) == unchanged);
}

TEST_CASE("densenet121 with weights loads a checkpoint saved with old 'norm.1'-style keys") {
  DenseNet src = densenet121();
  randomize_norms(*src);
  NamedTensors old_style;
  std::size_t renamed = 0;
  for (auto [key, value] : state_of(*src)) {
    if (key.rfind("num_batches_tracked") == std::string::npos)
      for (const char* part : {".norm1.", ".norm2.", ".conv1.", ".conv2."}) {
        const auto at = key.find(part);
        if (at == std::string::npos || key.find("denselayer") == std::string::npos) continue;
        key = key.substr(0, at) + "." + std::string(part + 1, 4) + "." + part[5] + key.substr(at + 6);
        ++renamed;
        break;
      }
    old_style.emplace_back(key, value);
  }
  REQUIRE(renamed > 500);
  CHECK(std::count_if(old_style.begin(), old_style.end(), [](const auto& kv) {
          return kv.first == "features.denseblock1.denselayer1.norm.1.running_mean";
        }) == 1);

  SUBCASE("through the loader with the builder's rename") {
    const std::string file = temp_dir() + "/densenet121-old.safetensors";
    save_safetensors(file, old_style);
    DenseNet dst = densenet121();
    LoadOptions options;
    options.rename = densenet_checkpoint_key;
    CHECK(load_checkpoint(*dst, file, options).ok());
    CHECK(torch::equal(dst->features[4]->as<DenseBlockImpl>()->layers[0]->norm1->running_mean,
                       src->features[4]->as<DenseBlockImpl>()->layers[0]->norm1->running_mean));
  }
  SUBCASE("through the builder (num_batches_tracked keys of old files are left as they are)") {
    const DenseNet121_Weights w = local_weights(DenseNet121_Weights::IMAGENET1K_V1, old_style);
    DenseNet dst = densenet121(w);
    torch::NoGradGuard no_grad;
    src->eval();
    dst->eval();
    const auto x = torch::randn({1, 3, 32, 32});
    CHECK(torch::allclose(dst->forward(x), src->forward(x), 1e-5, 1e-5));
  }
}

TEST_CASE("vgg16's IMAGENET1K_FEATURES weights have no categories: num_classes stays the caller's") {
  ArchitectureOnly no_download;
  VGG features = vgg16(VGG16_Weights::IMAGENET1K_FEATURES);
  CHECK(features->classifier[6]->as<nn::LinearImpl>()->options.out_features() == 1000);
  CHECK(nn::num_params(*features) == VGG16_Weights::IMAGENET1K_FEATURES.meta().num_params);
  VGGOptions o;
  o.num_classes = 10;
  CHECK(vgg16(VGG16_Weights::IMAGENET1K_FEATURES, o)->classifier[6]->as<nn::LinearImpl>()->options.out_features() ==
        10);
  CHECK_THROWS_AS(vgg16(VGG16_Weights::IMAGENET1K_V1, o), UsageError);
  CHECK(VGG16_Weights::IMAGENET1K_FEATURES.meta().categories.empty());
  CHECK(VGG16_Weights::IMAGENET1K_FEATURES.transforms().std.at(0) == doctest::Approx(1.0 / 255));
  CHECK(VGG16_Weights::DEFAULT == VGG16_Weights::IMAGENET1K_V1);
}

TEST_CASE("state-dict names follow torchvision's module indices") {
  ArchitectureOnly no_download;
  const auto vgg = keys_of(*vgg11_bn(VGG11_BN_Weights::DEFAULT));
  for (const char* k : {"features.0.weight", "features.1.running_var", "features.4.weight", "classifier.0.weight",
                        "classifier.3.bias", "classifier.6.weight"})
    CHECK(vgg.count(k) == 1);
  const auto squeeze = keys_of(*squeezenet1_1(SqueezeNet1_1_Weights::DEFAULT));
  for (const char* k : {"features.0.weight", "features.3.squeeze.weight", "features.12.expand3x3.bias",
                        "classifier.1.weight"})
    CHECK(squeeze.count(k) == 1);
  const auto alex = keys_of(*alexnet(AlexNet_Weights::DEFAULT));
  for (const char* k : {"features.10.weight", "classifier.1.weight", "classifier.6.bias"}) CHECK(alex.count(k) == 1);
  const auto dense = keys_of(*densenet121(DenseNet121_Weights::DEFAULT));
  for (const char* k : {"features.conv0.weight", "features.denseblock1.denselayer6.conv2.weight",
                        "features.transition3.norm.num_batches_tracked", "features.norm5.weight"})
    CHECK(dense.count(k) == 1);
}

TEST_CASE("squeezenet without weights: the final conv is N(0, 0.01), every bias zero") {
  SqueezeNet model = squeezenet1_0();
  CHECK(std_of(model->final_conv->weight).item<double>() == doctest::Approx(0.01).epsilon(0.05));
  CHECK(model->final_conv.get() == model->classifier[1]->as<nn::Conv2dImpl>());
  nn::for_each<nn::Conv2dImpl>(*model, [](nn::Conv2dImpl& c) { CHECK(c.bias.abs().max().item<double>() == 0); });
}
