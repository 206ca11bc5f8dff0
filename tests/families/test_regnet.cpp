// Builder semantics of RegNet (X, Y) that the generic registry, metadata and parity tests do not see.
#include <doctest/doctest.h>

#include "tests/support/support.h"

using namespace mz;
using namespace mz::test;

TEST_CASE("RegNet: stage widths come from BlockParams.from_init_params, as in torchvision") {
  using mz::regnet::BlockParams;
  // Expected values printed by torchvision 0.14.1's BlockParams for the same arguments.
  auto y400 = BlockParams::from_init_params(16, 48, 27.89, 2.09, 8, 1.0, 0.25);
  CHECK(y400.depths == Ints{1, 3, 6, 6});
  CHECK(y400.widths == Ints{48, 104, 208, 440});
  CHECK(y400.group_widths == Ints{8, 8, 8, 8});
  CHECK(y400.strides == Ints{2, 2, 2, 2});
  CHECK(*y400.se_ratio == 0.25);
  auto x32 = BlockParams::from_init_params(23, 320, 69.86, 2.0, 168);
  CHECK(x32.depths == Ints{2, 7, 13, 1});
  CHECK(x32.widths == Ints{336, 672, 1344, 2520});
  CHECK(!x32.se_ratio);
  auto y128 = BlockParams::from_init_params(27, 456, 160.83, 2.52, 264, 1.0, 0.25);
  CHECK(y128.depths == Ints{2, 7, 17, 1});
  CHECK(y128.widths == Ints{528, 1056, 2904, 7392});
  CHECK_THROWS_AS(BlockParams::from_init_params(16, 44, 27.89, 2.09, 8), mz::UsageError);  // w_0 % 8
  CHECK_THROWS_AS(BlockParams::from_init_params(16, 48, 27.89, 1.0, 8), mz::UsageError);   // w_m <= 1
}

TEST_CASE("regnet_y_400mf: torchvision's state-dict names, SE only in Y, stem_width option") {
  auto m = mz::regnet_y_400mf();
  const auto s = shapes_of(*m);
  CHECK(s.at("stem.0.weight") == Ints{32, 3, 3, 3});
  CHECK(s.at("trunk_output.block1.block1-0.proj.0.weight") == Ints{48, 32, 1, 1});
  CHECK(s.at("trunk_output.block1.block1-0.f.b.0.weight") == Ints{48, 8, 3, 3});  // groups = 48 / 8
  CHECK(s.at("trunk_output.block1.block1-0.f.se.fc1.weight") == Ints{8, 48, 1, 1});  // round(0.25 * 32)
  CHECK(s.at("trunk_output.block4.block4-5.f.c.1.running_var") == Ints{440});
  CHECK(s.count("trunk_output.block2.block2-1.proj.0.weight") == 0);  // same shape: identity shortcut
  CHECK(s.at("fc.weight") == Ints{1000, 440});
  CHECK(step_names(*m) == std::vector<std::string>{"stem", "trunk_output", "avgpool", "flatten", "fc"});
  CHECK(mz::nn::num_params(*m) == 4344144);
  CHECK(shapes_of(*mz::regnet_x_400mf()).count("trunk_output.block1.block1-0.f.se.fc1.weight") == 0);

  mz::RegNetOptions o;
  o.stem_width = 16;
  o.num_classes = 10;
  auto small = mz::regnet_x_400mf({}, o);
  CHECK(shapes_of(*small).at("trunk_output.block1.block1-0.f.a.0.weight") == Ints{32, 16, 1, 1});
  torch::NoGradGuard no_grad;
  small->eval();
  CHECK(small->forward(torch::randn({1, 3, 32, 32})).sizes() == torch::IntArrayRef{1, 10});
  // torchvision's init: fc N(0, 0.01) with zero bias, BN (1, 0).
  CHECK(small->fc->bias.abs().max().item<float>() == 0.f);
  CHECK(small->fc->weight.std().item<double>() == doctest::Approx(0.01).epsilon(0.2));
}

TEST_CASE("RegNet SWAG weights: 384 (E2E) and 224 (LINEAR) bicubic presets, license meta") {
  const auto e2e = mz::get_weight("RegNet_Y_128GF_Weights.IMAGENET1K_SWAG_E2E_V1");
  CHECK(e2e.transforms.crop_size == 384);
  CHECK(e2e.transforms.resize_size == 384);
  CHECK(e2e.transforms.interpolation == "bicubic");
  CHECK(e2e.meta.extra.at("license") == "https://github.com/facebookresearch/SWAG/blob/main/LICENSE");
  const auto linear = mz::get_weight("RegNet_Y_16GF_Weights.IMAGENET1K_SWAG_LINEAR_V1");
  CHECK(linear.transforms.crop_size == 224);
  CHECK(linear.transforms.resize_size == 224);
  CHECK(mz::RegNet_Y_128GF_Weights::DEFAULT.name() == "RegNet_Y_128GF_Weights.IMAGENET1K_SWAG_E2E_V1");
  CHECK(mz::RegNet_Y_32GF_Weights::DEFAULT.name() == "RegNet_Y_32GF_Weights.IMAGENET1K_V2");
}
