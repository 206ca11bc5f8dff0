// Builder semantics of EfficientNet (B0-B7, V2) that the generic registry, metadata and parity tests do not see.
#include <doctest/doctest.h>

#include "tests/support/support.h"

using namespace mz;
using namespace mz::test;

TEST_CASE("EfficientNet B0-B7 vs V2: depth scaling, norms, dropout, stochastic depth") {
  auto b0 = mz::efficientnet_b0();
  REQUIRE(b0->features->size() == 9);
  Ints depths;
  for (std::size_t i = 1; i + 1 < b0->features->size(); ++i) depths.push_back(b0->features[i]->children().size());
  CHECK(depths == Ints{1, 2, 2, 3, 3, 4, 1});
  CHECK(b0->features[8]->as<mz::ops::Conv2dNormActivation>()->options.out_channels() == 1280);  // 4 * 320
  CHECK(step_names(*b0) == std::vector<std::string>{"features", "avgpool", "flatten", "classifier"});
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
  CHECK(shapes_of(*v2).at("features.1.0.block.0.0.weight") == Ints{24, 24, 3, 3});
  CHECK(shapes_of(*v2).at("features.2.0.block.1.0.weight") == Ints{48, 96, 1, 1});
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
