// Builder semantics of EfficientNet (B0-B7, V2), RegNet (X, Y) and ConvNeXt.
#include <doctest/doctest.h>

#include <map>

#include "modelzoo/modelzoo.h"

namespace {

std::map<std::string, std::vector<std::int64_t>> convs_shapes(torch::nn::Module& m) {
  std::map<std::string, std::vector<std::int64_t>> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value().sizes().vec();
  for (const auto& b : m.named_buffers()) out[b.key()] = b.value().sizes().vec();
  return out;
}

std::vector<std::string> convs_step_names(mz::Chain& m) {
  std::vector<std::string> names;
  for (const auto& s : m.steps()) names.push_back(s.name);
  return names;
}

using Ints = std::vector<std::int64_t>;

}  // namespace

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
  const auto s = convs_shapes(*m);
  CHECK(s.at("stem.0.weight") == Ints{32, 3, 3, 3});
  CHECK(s.at("trunk_output.block1.block1-0.proj.0.weight") == Ints{48, 32, 1, 1});
  CHECK(s.at("trunk_output.block1.block1-0.f.b.0.weight") == Ints{48, 8, 3, 3});  // groups = 48 / 8
  CHECK(s.at("trunk_output.block1.block1-0.f.se.fc1.weight") == Ints{8, 48, 1, 1});  // round(0.25 * 32)
  CHECK(s.at("trunk_output.block4.block4-5.f.c.1.running_var") == Ints{440});
  CHECK(s.count("trunk_output.block2.block2-1.proj.0.weight") == 0);  // same shape: identity shortcut
  CHECK(s.at("fc.weight") == Ints{1000, 440});
  CHECK(convs_step_names(*m) == std::vector<std::string>{"stem", "trunk_output", "avgpool", "flatten", "fc"});
  CHECK(mz::nn::num_params(*m) == 4344144);
  CHECK(convs_shapes(*mz::regnet_x_400mf()).count("trunk_output.block1.block1-0.f.se.fc1.weight") == 0);

  mz::RegNetOptions o;
  o.stem_width = 16;
  o.num_classes = 10;
  auto small = mz::regnet_x_400mf({}, o);
  CHECK(convs_shapes(*small).at("trunk_output.block1.block1-0.f.a.0.weight") == Ints{32, 16, 1, 1});
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

TEST_CASE("EfficientNet B0-B7 vs V2: depth scaling, norms, dropout, stochastic depth") {
  auto b0 = mz::efficientnet_b0();
  REQUIRE(b0->features->size() == 9);
  Ints depths;
  for (std::size_t i = 1; i + 1 < b0->features->size(); ++i) depths.push_back(b0->features[i]->children().size());
  CHECK(depths == Ints{1, 2, 2, 3, 3, 4, 1});
  CHECK(b0->features[8]->as<mz::ops::Conv2dNormActivation>()->options.out_channels() == 1280);  // 4 * 320
  CHECK(convs_step_names(*b0) == std::vector<std::string>{"features", "avgpool", "flatten", "classifier"});
  CHECK(b0->classifier[0]->as<torch::nn::Dropout>()->options.p() == 0.2);
  mz::nn::for_each<mz::nn::BatchNorm2dImpl>(*b0, [](mz::nn::BatchNorm2dImpl& bn) {
    CHECK(bn.options.eps() == 1e-5);
    CHECK(*bn.options.momentum() == 0.1);
  });
  // The first block of a stage has no residual; the stochastic depth grows with the block index.
  auto stage2 = b0->features[2]->as<mz::ops::SequentialBlock>();
  auto first = (*stage2)[0]->as<mz::efficientnet::MBConv>(), second = (*stage2)[1]->as<mz::efficientnet::MBConv>();
  CHECK(!first->use_res_connect);
  CHECK(second->use_res_connect);
  CHECK(second->stochastic_depth->p == doctest::Approx(0.2 * 2 / 16));
  CHECK(mz::nn::num_params(*b0) == 5288548);

  auto b7 = mz::efficientnet_b7();
  depths.clear();
  for (std::size_t i = 1; i + 1 < b7->features->size(); ++i) depths.push_back(b7->features[i]->children().size());
  CHECK(depths == Ints{4, 7, 7, 10, 10, 13, 4});  // ceil(n * 3.1)
  CHECK(b7->features[8]->as<mz::ops::Conv2dNormActivation>()->options.out_channels() == 2560);
  CHECK(b7->classifier[0]->as<torch::nn::Dropout>()->options.p() == 0.5);
  mz::nn::for_each<mz::nn::BatchNorm2dImpl>(*b7, [](mz::nn::BatchNorm2dImpl& bn) {
    CHECK(bn.options.eps() == 0.001);
    CHECK(*bn.options.momentum() == 0.01);
  });
  CHECK((*b7->features[7]->as<mz::ops::SequentialBlock>())[0]->as<mz::efficientnet::MBConv>()->stochastic_depth->p ==
        doctest::Approx(0.18545454545454548));

  auto v2 = mz::efficientnet_v2_s();
  CHECK(v2->features[1]->as<mz::ops::SequentialBlock>()->children()[0]->as<mz::efficientnet::FusedMBConv>());
  CHECK(v2->features[4]->as<mz::ops::SequentialBlock>()->children()[0]->as<mz::efficientnet::MBConv>());
  CHECK(v2->features[7]->as<mz::ops::Conv2dNormActivation>()->options.out_channels() == 1280);  // last_channel
  mz::nn::for_each<mz::nn::BatchNorm2dImpl>(*v2, [](mz::nn::BatchNorm2dImpl& bn) {
    CHECK(bn.options.eps() == 0.001);
    CHECK(*bn.options.momentum() == 0.1);
  });
  // FusedMBConv with expand_ratio 1: a single conv; with expansion: fused conv + projection.
  CHECK(convs_shapes(*v2).at("features.1.0.block.0.0.weight") == Ints{24, 24, 3, 3});
  CHECK(convs_shapes(*v2).at("features.2.0.block.1.0.weight") == Ints{48, 96, 1, 1});
  CHECK(mz::nn::num_params(*v2) == 21458488);

  // dropout is fixed by each builder (a TypeError in Python); stochastic_depth_prob is an option.
  CHECK_THROWS_AS(mz::get_model("efficientnet_b0", "", {{"dropout", 0.1}}), mz::UsageError);
  mz::EfficientNetOptions o;
  o.stochastic_depth_prob = 0.0;
  o.num_classes = 3;
  auto m = mz::efficientnet_b1({}, o);
  CHECK((*m->features[7]->as<mz::ops::SequentialBlock>())[1]->as<mz::efficientnet::MBConv>()->stochastic_depth->p == 0.0);
  torch::NoGradGuard no_grad;
  m->eval();
  CHECK(m->forward(torch::randn({1, 3, 32, 32})).sizes() == torch::IntArrayRef{1, 3});
}

TEST_CASE("EfficientNet weights carry their own resize, crop and interpolation") {
  const auto b1v1 = mz::get_weight("EfficientNet_B1_Weights.IMAGENET1K_V1");
  CHECK(b1v1.transforms.crop_size == 240);
  CHECK(b1v1.transforms.resize_size == 256);
  CHECK(b1v1.transforms.interpolation == "bicubic");
  const auto b1v2 = mz::get_weight("EfficientNet_B1_Weights.IMAGENET1K_V2");
  CHECK(b1v2.transforms.resize_size == 255);
  CHECK(b1v2.transforms.interpolation == "bilinear");
  const auto l = mz::get_weight("EfficientNet_V2_L_Weights.IMAGENET1K_V1");
  CHECK(l.transforms.mean == std::vector<double>{0.5, 0.5, 0.5});
  CHECK(l.meta.min_size == std::make_pair<std::int64_t, std::int64_t>(33, 33));
}

TEST_CASE("ConvNeXt: layer_scale, stochastic depth schedule, LayerNorm2d, torchvision's names") {
  auto m = mz::convnext_tiny();
  const auto s = convs_shapes(*m);
  CHECK(s.at("features.0.0.weight") == Ints{96, 3, 4, 4});
  CHECK(s.at("features.0.0.bias") == Ints{96});
  CHECK(s.at("features.0.1.weight") == Ints{96});  // LayerNorm2d
  CHECK(s.at("features.1.0.layer_scale") == Ints{96, 1, 1});
  CHECK(s.at("features.1.0.block.0.weight") == Ints{96, 1, 7, 7});
  CHECK(s.at("features.1.0.block.3.weight") == Ints{384, 96});
  CHECK(s.at("features.2.1.weight") == Ints{192, 96, 2, 2});
  CHECK(s.at("classifier.2.weight") == Ints{1000, 768});
  CHECK(convs_step_names(*m) == std::vector<std::string>{"features", "avgpool", "classifier"});
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
