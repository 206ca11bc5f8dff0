// Builder semantics of the shared blocks (include/modelzoo/layers/ops.h) that the generic registry, metadata and parity tests do not see.
#include <doctest/doctest.h>

#include "tests/support/support.h"

using namespace mz;
using namespace mz::test;

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
  CHECK(shapes_of(*full).count("1.running_var") == 1);
  CHECK(shapes_of(*full).count("0.bias") == 0);
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
    CHECK(shapes_of(*m).at("0.weight") == std::vector<std::int64_t>{4, 1, 5, 5});
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
    CHECK(shapes_of(*seq).count("1.0.weight") == 1);
    CHECK(seq->forward(torch::randn({1, 4, 5, 5})).size(1) == 2);
  }
}

TEST_CASE("SqueezeExcitation: fc1/fc2 with bias, configurable activations") {
  using mz::ops::Act;
  mz::ops::SqueezeExcitation se(mz::ops::SqueezeExcitationOptions(8, 4).scale_activation(Act::Hardsigmoid));
  mz::nn::reset_parameters(*se);
  const auto s = shapes_of(*se);
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
