// Builder semantics of MobileNetV3 that the generic registry, metadata and parity tests do not see.
#include <doctest/doctest.h>

#include "tests/support/support.h"

using namespace mz;
using namespace mz::test;

TEST_CASE("mobilenet_v3_large: features.16 is the last Conv2dNormActivation (960 channels)") {
  auto m = mz::mobilenet_v3_large();
  REQUIRE(m->features->size() == 17);
  auto last = m->features[16]->as<mz::ops::Conv2dNormActivation>();
  REQUIRE(last != nullptr);
  CHECK(last->options.out_channels() == 960);
  CHECK(m->features[4]->as<mz::mobilenetv3::InvertedResidual>() != nullptr);
  CHECK(m->features[0]->as<mz::ops::Conv2dNormActivation>() != nullptr);
  CHECK(shapes_of(*m).at("features.16.0.weight") == std::vector<std::int64_t>{960, 160, 1, 1});
  CHECK(shapes_of(*m).at("features.4.block.2.fc1.weight") == std::vector<std::int64_t>{24, 72, 1, 1});
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
  CHECK(any.forward(torch::randn({1, 3, 32, 32})).at("output").sizes() == torch::IntArrayRef{1, 10});
}

TEST_CASE("mobilenet_v3_small: num_classes must agree with the weights") {
  MobileNetV3Options o;
  o.num_classes = 10;
  CHECK_THROWS_AS(mobilenet_v3_small(MobileNet_V3_Small_Weights::IMAGENET1K_V1, o), UsageError);
}
