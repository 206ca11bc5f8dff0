// Builder semantics of ConvNeXt that the generic registry, metadata and parity tests do not see.
#include <doctest/doctest.h>

#include "tests/support/support.h"

using namespace mz;
using namespace mz::test;

TEST_CASE("ConvNeXt: layer_scale, stochastic depth schedule, LayerNorm2d, torchvision's names") {
  auto m = mz::convnext_tiny();
  const auto s = shapes_of(*m);
  CHECK(s.at("features.0.0.weight") == Ints{96, 3, 4, 4});
  CHECK(s.at("features.0.0.bias") == Ints{96});
  CHECK(s.at("features.0.1.weight") == Ints{96});  // LayerNorm2d
  CHECK(s.at("features.1.0.layer_scale") == Ints{96, 1, 1});
  CHECK(s.at("features.1.0.block.0.weight") == Ints{96, 1, 7, 7});
  CHECK(s.at("features.1.0.block.3.weight") == Ints{384, 96});
  CHECK(s.at("features.2.1.weight") == Ints{192, 96, 2, 2});
  CHECK(s.at("classifier.2.weight") == Ints{1000, 768});
  CHECK(step_names(*m) == std::vector<std::string>{"features", "avgpool", "classifier"});
  auto block = [&](std::size_t stage, std::size_t i) {
    return (*m->features[stage]->as<mz::ops::SequentialBlock>())[i]->as<mz::convnext::CNBlock>();
  };
  CHECK(block(1, 0)->stochastic_depth->p == 0.0);
  CHECK(block(5, 8)->stochastic_depth->p == doctest::Approx(0.0823529411764706));
  CHECK(block(7, 2)->stochastic_depth->p == doctest::Approx(0.1));  // the last block gets the full value
  CHECK(torch::all(block(3, 1)->layer_scale == 1e-6f).item<bool>());
  CHECK(mz::nn::num_params(*m) == 28589128);

  mz::ConvNeXtOptions o;
  o.layer_scale = 0.5;
  o.stochastic_depth_prob = 0.0;
  o.num_classes = 5;
  auto small = mz::convnext_small({}, o);
  auto b = (*small->features[7]->as<mz::ops::SequentialBlock>())[2]->as<mz::convnext::CNBlock>();
  CHECK(torch::all(b->layer_scale == 0.5f).item<bool>());
  CHECK(b->stochastic_depth->p == 0.0);
  torch::NoGradGuard no_grad;
  small->eval();
  CHECK(small->forward(torch::randn({1, 3, 32, 32})).sizes() == torch::IntArrayRef{1, 5});
}

TEST_CASE("LayerNorm2d normalises over channels of NCHW") {
  mz::ops::LayerNorm2d ln(4, 1e-6);
  mz::nn::reset_parameters(*ln);
  auto x = torch::randn({2, 4, 3, 3});
  auto ref = torch::layer_norm(x.permute({0, 2, 3, 1}), {4}, {}, {}, 1e-6).permute({0, 3, 1, 2});
  torch::NoGradGuard no_grad;
  CHECK(torch::allclose(ln->forward(x), ref, 1e-5, 1e-6));
}
