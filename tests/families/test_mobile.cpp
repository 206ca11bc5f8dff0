// Shared blocks (ops.h) and the builder semantics of MobileNetV2/V3, MNASNet and ShuffleNetV2.
#include <doctest/doctest.h>

#include <filesystem>
#include <map>
#include <sstream>
#include <unistd.h>

#include "modelzoo/modelzoo.h"

namespace {

std::vector<std::string> child_names(torch::nn::Module& m) {
  std::vector<std::string> names;
  for (const auto& item : m.named_children()) names.push_back(item.key());
  return names;
}

std::map<std::string, std::vector<std::int64_t>> shapes(torch::nn::Module& m) {
  std::map<std::string, std::vector<std::int64_t>> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value().sizes().vec();
  for (const auto& b : m.named_buffers()) out[b.key()] = b.value().sizes().vec();
  return out;
}

std::vector<std::int64_t> vec(const torch::ExpandingArray<2>& a) { return {a->at(0), a->at(1)}; }

std::vector<std::int64_t> shape_of(torch::nn::Module& m, const std::string& key) { return shapes(m).at(key); }

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()))).string();
}

}  // namespace

TEST_CASE("make_divisible rounds like torchvision's _make_divisible") {
  using mz::ops::make_divisible;
  CHECK(make_divisible(32 * 0.75, 8) == 24);
  CHECK(make_divisible(10, 8) == 16);  // 8 would lose more than 10%
  CHECK(make_divisible(3, 8) == 8);    // at least the divisor
  CHECK(make_divisible(1280, 8) == 1280);
  CHECK(make_divisible(16 * 1.3, 8) == 24);
  CHECK(make_divisible(100, 8) == 104);
  CHECK(make_divisible(3, 8, 4) == 4);
}

TEST_CASE("channel_shuffle interleaves the groups") {
  auto x = torch::arange(6, torch::kFloat).view({1, 6, 1, 1});
  auto y = mz::ops::channel_shuffle(x, 2).flatten();
  CHECK(torch::equal(y, torch::tensor({0.f, 3.f, 1.f, 4.f, 2.f, 5.f})));
}

TEST_CASE("activations match their torch.nn definitions") {
  using mz::ops::Act;
  auto x = torch::linspace(-8, 8, 33);
  CHECK(torch::allclose(mz::ops::activate(Act::ReLU6, x), x.clamp(0, 6)));
  CHECK(torch::allclose(mz::ops::activate(Act::Hardswish, x), x * (x + 3).clamp(0, 6) / 6));
  CHECK(torch::allclose(mz::ops::activate(Act::Hardsigmoid, x), (x + 3).clamp(0, 6) / 6));
  CHECK(torch::allclose(mz::ops::activate(Act::SiLU, x), x * torch::sigmoid(x)));
  CHECK(std::string(mz::ops::act_name(Act::Hardswish)) == "Hardswish");
}

TEST_CASE("Conv2dNormActivation: children 0 conv, 1 norm, 2 activation, as in torchvision") {
  using mz::ops::Act;
  using mz::ops::Conv2dNormActivation;
  using mz::ops::Conv2dNormActivationOptions;

  Conv2dNormActivation full(Conv2dNormActivationOptions(4, 8));
  CHECK(child_names(*full) == std::vector<std::string>{"0", "1", "2"});
  CHECK(full->size() == 3);
  auto& conv = full[0]->as<mz::nn::Conv2d>()->options;
  CHECK(vec(conv.kernel_size()) == std::vector<std::int64_t>{3, 3});
  CHECK(!conv.bias());  // no bias with a norm
  CHECK(shapes(*full).count("1.running_var") == 1);
  CHECK(shapes(*full).count("0.bias") == 0);
  CHECK(full->forward(torch::randn({1, 4, 5, 5})).sizes() == torch::IntArrayRef{1, 8, 5, 5});
  std::ostringstream printed;
  printed << *full;
  CHECK(printed.str().rfind("Conv2dNormActivation(", 0) == 0);
  CHECK(printed.str().find("(2): ReLU()") != std::string::npos);

  SUBCASE("no norm: the activation takes index 1 and the conv gets a bias") {
    Conv2dNormActivation m(Conv2dNormActivationOptions(4, 8, 1).norm_layer(nullptr).activation_layer(Act::SiLU));
    CHECK(child_names(*m) == std::vector<std::string>{"0", "1"});
    CHECK(m[0]->as<mz::nn::Conv2d>()->options.bias());
    CHECK(m[1]->as<mz::ops::Activation>()->act == Act::SiLU);
  }
  SUBCASE("no activation") {
    Conv2dNormActivation m(Conv2dNormActivationOptions(4, 8, 1).activation_layer(std::nullopt));
    CHECK(child_names(*m) == std::vector<std::string>{"0", "1"});
  }
  SUBCASE("padding defaults to (k - 1) / 2 * dilation; explicit bias, groups, stride, norm eps/momentum") {
    Conv2dNormActivation m(Conv2dNormActivationOptions(4, 4, 5)
                               .dilation(2)
                               .groups(4)
                               .stride(2)
                               .bias(true)
                               .norm_layer(mz::ops::batch_norm2d(0.001, 0.01)));
    auto& o = m[0]->as<mz::nn::Conv2d>()->options;
    CHECK(vec(c10::get<torch::ExpandingArray<2>>(o.padding())) == std::vector<std::int64_t>{4, 4});
    CHECK(o.bias());
    CHECK(shape_of(*m, "0.weight") == std::vector<std::int64_t>{4, 1, 5, 5});
    auto& bn = m[1]->as<mz::nn::BatchNorm2d>()->options;
    CHECK(bn.eps() == 0.001);
    CHECK(*bn.momentum() == 0.01);
    CHECK(m->forward(torch::randn({1, 4, 9, 9})).sizes() == torch::IntArrayRef{1, 4, 5, 5});
  }
  SUBCASE("explicit padding") {
    Conv2dNormActivation m(Conv2dNormActivationOptions(4, 4, 3).padding(0));
    CHECK(m->forward(torch::randn({1, 4, 5, 5})).sizes() == torch::IntArrayRef{1, 4, 3, 3});
  }
  SUBCASE("nests inside a Sequential (its forward is not a template)") {
    torch::nn::Sequential seq(full, Conv2dNormActivation(Conv2dNormActivationOptions(8, 2)));
    CHECK(shapes(*seq).count("1.0.weight") == 1);
    CHECK(seq->forward(torch::randn({1, 4, 5, 5})).size(1) == 2);
  }
}

TEST_CASE("SqueezeExcitation: fc1/fc2 with bias, configurable activations") {
  using mz::ops::Act;
  mz::ops::SqueezeExcitation se(mz::ops::SqueezeExcitationOptions(8, 4).scale_activation(Act::Hardsigmoid));
  mz::nn::reset_parameters(*se);
  const auto s = shapes(*se);
  CHECK(s.at("fc1.weight") == std::vector<std::int64_t>{4, 8, 1, 1});
  CHECK(s.at("fc1.bias") == std::vector<std::int64_t>{4});
  CHECK(s.at("fc2.weight") == std::vector<std::int64_t>{8, 4, 1, 1});
  CHECK(s.size() == 4);
  auto x = torch::randn({2, 8, 3, 3});
  auto scale = torch::conv2d(x.mean({2, 3}, true), se->fc1->weight, se->fc1->bias).relu();
  scale = torch::hardsigmoid(torch::conv2d(scale, se->fc2->weight, se->fc2->bias));
  torch::NoGradGuard no_grad;
  CHECK(torch::allclose(se->forward(x), x * scale));
}

TEST_CASE("mobilenet_v3_large: features.16 is the last Conv2dNormActivation (960 channels)") {
  auto m = mz::mobilenet_v3_large();
  REQUIRE(m->features->size() == 17);
  auto last = m->features[16]->as<mz::ops::Conv2dNormActivation>();
  REQUIRE(last != nullptr);
  CHECK(last->options.out_channels() == 960);
  CHECK(m->features[4]->as<mz::mobilenetv3::InvertedResidual>() != nullptr);
  CHECK(m->features[0]->as<mz::ops::Conv2dNormActivation>() != nullptr);
  CHECK(shape_of(*m, "features.16.0.weight") == std::vector<std::int64_t>{960, 160, 1, 1});
  CHECK(shape_of(*m, "features.4.block.2.fc1.weight") == std::vector<std::int64_t>{24, 72, 1, 1});
  // Chain steps carry torchvision's attribute names.
  std::vector<std::string> names;
  for (const auto& s : m->steps()) names.push_back(s.name);
  CHECK(names == std::vector<std::string>{"features", "avgpool", "flatten", "classifier"});
  // Every norm is BatchNorm2d(eps=0.001, momentum=0.01).
  int norms = 0;
  mz::nn::for_each<mz::nn::BatchNorm2dImpl>(*m, [&](mz::nn::BatchNorm2dImpl& bn) {
    CHECK(bn.options.eps() == 0.001);
    CHECK(*bn.options.momentum() == 0.01);
    ++norms;
  });
  CHECK(norms > 40);
  CHECK(mz::nn::num_params(*m) == 5483032);
}

TEST_CASE("mobilenet_v3 dilated / reduced_tail (segmentation backbones)") {
  mz::MobileNetV3Options o;
  o.dilated = true;
  o.reduced_tail = true;
  auto m = mz::mobilenet_v3_large({}, o);
  auto dw = m->features[13]->as<mz::mobilenetv3::InvertedResidual>()->block[1]->as<mz::ops::Conv2dNormActivation>();
  auto& conv = (*dw)[0]->as<mz::nn::Conv2d>()->options;
  CHECK(vec(conv.dilation()) == std::vector<std::int64_t>{2, 2});
  CHECK(vec(conv.stride()) == std::vector<std::int64_t>{1, 1});
  CHECK(vec(c10::get<torch::ExpandingArray<2>>(conv.padding())) == std::vector<std::int64_t>{4, 4});
  CHECK(m->features[16]->as<mz::ops::Conv2dNormActivation>()->options.out_channels() == 480);
  torch::NoGradGuard no_grad;
  m->eval();
  CHECK(m->forward(torch::randn({1, 3, 64, 64})).sizes() == torch::IntArrayRef{1, 1000});
  // The same through the registry's JSON options.
  auto any = mz::get_model("mobilenet_v3_small", "", {{"dilated", true}, {"width_mult", 0.75}, {"num_classes", 10}});
  CHECK(any.forward(torch::randn({1, 3, 32, 32})).at(0).second.sizes() == torch::IntArrayRef{1, 10});
}

TEST_CASE("mobilenet_v2 options and init") {
  mz::MobileNetV2Options o;
  o.width_mult = 0.5;
  o.num_classes = 7;
  auto m = mz::mobilenet_v2({}, o);
  CHECK(m->last_channel == 1280);  // max(1.0, width_mult)
  CHECK(shape_of(*m, "features.0.0.weight") == std::vector<std::int64_t>{16, 3, 3, 3});
  CHECK(shape_of(*m, "classifier.1.weight") == std::vector<std::int64_t>{7, 1280});
  // features.1 has expand_ratio 1: no expansion conv, so conv = [dw CNA, Conv2d, BatchNorm2d].
  CHECK(child_names(*m->features[1]->as<mz::mobilenetv2::InvertedResidual>()->conv) ==
        std::vector<std::string>{"0", "1", "2"});
  CHECK(shapes(*m).count("features.2.conv.3.running_mean") == 1);
  // torchvision's init: N(0, 0.01) classifier, zero biases, unit norm scales.
  auto fc = m->classifier[1]->as<mz::nn::Linear>();
  CHECK(fc->bias.abs().max().item<float>() == 0.f);
  CHECK(fc->weight.std().item<double>() == doctest::Approx(0.01).epsilon(0.1));
  CHECK(mz::nn::num_params(*mz::mobilenet_v2()) == 3504872);
  o.inverted_residual_setting = {{1, 16}};
  CHECK_THROWS_AS(mz::mobilenet_v2({}, o), mz::UsageError);
}

TEST_CASE("num_classes must agree with the weights") {
  mz::MobileNetV3Options o;
  o.num_classes = 10;
  CHECK_THROWS_AS(mz::mobilenet_v3_small(mz::MobileNet_V3_Small_Weights::IMAGENET1K_V1, o), mz::UsageError);
  mz::ShuffleNetV2Options s;
  s.num_classes = 5;
  CHECK_THROWS_AS(mz::shufflenet_v2_x1_0(mz::ShuffleNet_V2_X1_0_Weights::DEFAULT, s), mz::UsageError);
  mz::MNASNetOptions n;
  n.num_classes = 3;
  CHECK_THROWS_AS(mz::mnasnet0_75(mz::MNASNet0_75_Weights::DEFAULT, n), mz::UsageError);
  CHECK(mz::mnasnet0_75({}, n)->classifier[1]->as<mz::nn::Linear>()->options.out_features() == 3);
}

TEST_CASE("mnasnet: stem depths, BN momentum, v1 checkpoints") {
  auto m = mz::mnasnet0_5();
  CHECK(m->version == 2);
  CHECK(m->layers->size() == 17);
  CHECK(shape_of(*m, "layers.0.weight") == std::vector<std::int64_t>{16, 3, 3, 3});
  CHECK(shape_of(*m, "layers.8.0.layers.0.weight") == std::vector<std::int64_t>{24, 8, 1, 1});
  mz::nn::for_each<mz::nn::BatchNorm2dImpl>(
      *m, [](mz::nn::BatchNorm2dImpl& bn) { CHECK(*bn.options.momentum() == doctest::Approx(1 - 0.9997)); });
  CHECK(mz::mnasnet::depths(1.3) == std::vector<std::int64_t>{40, 24, 32, 56, 104, 128, 248, 416});

  SUBCASE("use_v1_stem switches layers 0..8 to the fixed 32/16 stem, keeping the rest") {
    auto kept = m->layers[9];
    m->use_v1_stem();
    CHECK(m->version == 1);
    CHECK(m->layers->size() == 17);
    CHECK(m->layers[9].get() == kept.get());
    CHECK(shape_of(*m, "layers.0.weight") == std::vector<std::int64_t>{32, 3, 3, 3});
    CHECK(shape_of(*m, "layers.6.weight") == std::vector<std::int64_t>{16, 32, 1, 1});
    CHECK(shape_of(*m, "layers.8.0.layers.0.weight") == std::vector<std::int64_t>{48, 16, 1, 1});
    CHECK(shapes(*m).size() == shapes(*mz::mnasnet0_5()).size());
  }
  SUBCASE("load_mnasnet_checkpoint recognises v1 and v2 checkpoints") {
    torch::NoGradGuard no_grad;
    auto v1 = mz::mnasnet0_5();
    v1->use_v1_stem();
    mz::nn::reset_parameters(*v1);
    v1->eval();
    const std::string path = temp_path("mz-mnasnet-v1.safetensors");
    mz::NamedTensors tensors;
    for (const auto& p : v1->named_parameters()) tensors.emplace_back(p.key(), p.value());
    for (const auto& b : v1->named_buffers()) tensors.emplace_back(b.key(), b.value());
    mz::save_safetensors(path, tensors);

    auto loaded = mz::mnasnet0_5();
    auto report = mz::load_mnasnet_checkpoint(*loaded, path);
    CHECK(report.ok());
    CHECK(loaded->version == 1);
    loaded->eval();
    auto x = torch::randn({1, 3, 32, 32});
    CHECK(torch::equal(loaded->forward(x), v1->forward(x)));

    // A current (v2) checkpoint loads as is; a plain strict load of the v1 file fails.
    const std::string path2 = temp_path("mz-mnasnet-v2.safetensors");
    mz::NamedTensors t2;
    for (const auto& p : m->named_parameters()) t2.emplace_back(p.key(), p.value());
    for (const auto& b : m->named_buffers()) t2.emplace_back(b.key(), b.value());
    mz::save_safetensors(path2, t2);
    auto fresh = mz::mnasnet0_5();
    CHECK(mz::load_mnasnet_checkpoint(*fresh, path2).ok());
    CHECK(fresh->version == 2);
    CHECK_THROWS(mz::load_checkpoint(*mz::mnasnet0_5(), path));
    std::filesystem::remove(path);
    std::filesystem::remove(path2);
  }
}

TEST_CASE("shufflenet_v2: branch1 only in downsampling blocks; shapes and parameters") {
  auto m = mz::shufflenet_v2_x1_0();
  const auto s = shapes(*m);
  CHECK(s.count("stage2.0.branch1.0.weight") == 1);
  CHECK(s.count("stage2.1.branch1.0.weight") == 0);
  CHECK(s.at("stage2.1.branch2.0.weight") == std::vector<std::int64_t>{58, 58, 1, 1});
  CHECK(s.at("conv5.0.weight") == std::vector<std::int64_t>{1024, 464, 1, 1});
  CHECK(mz::nn::num_params(*m) == 2278604);
  CHECK(mz::nn::num_params(*mz::shufflenet_v2_x2_0()) == 7393996);
  std::vector<std::string> names;
  for (const auto& st : m->steps()) names.push_back(st.name);
  CHECK(names == std::vector<std::string>{"conv1", "maxpool", "stage2", "stage3", "stage4", "conv5", "mean", "fc"});
  torch::NoGradGuard no_grad;
  m->eval();
  CHECK(m->forward(torch::randn({2, 3, 32, 32})).sizes() == torch::IntArrayRef{2, 1000});
}
