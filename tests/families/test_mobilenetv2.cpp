// Builder semantics of MobileNetV2 that the generic registry, metadata and parity tests do not see.
#include <doctest/doctest.h>

#include "tests/support/support.h"

using namespace mz;
using namespace mz::test;

TEST_CASE("mobilenet_v2 options and init") {
  mz::MobileNetV2Options o;
  o.width_mult = 0.5;
  o.num_classes = 7;
  auto m = mz::mobilenet_v2({}, o);
  CHECK(m->last_channel == 1280);  // max(1.0, width_mult)
  CHECK(shapes_of(*m).at("features.0.0.weight") == std::vector<std::int64_t>{16, 3, 3, 3});
  CHECK(shapes_of(*m).at("classifier.1.weight") == std::vector<std::int64_t>{7, 1280});
  // features.1 has expand_ratio 1: no expansion conv, so conv = [dw CNA, Conv2d, BatchNorm2d].
  CHECK(child_names(*m->features[1]->as<mz::mobilenetv2::InvertedResidual>()->conv) ==
        std::vector<std::string>{"0", "1", "2"});
  CHECK(shapes_of(*m).count("features.2.conv.3.running_mean") == 1);
  // torchvision's init: N(0, 0.01) classifier, zero biases, unit norm scales.
  auto fc = m->classifier[1]->as<mz::nn::Linear>();
  CHECK(fc->bias.abs().max().item<float>() == 0.f);
  CHECK(fc->weight.std().item<double>() == doctest::Approx(0.01).epsilon(0.1));
  CHECK(mz::nn::num_params(*mz::mobilenet_v2()) == 3504872);
  o.inverted_residual_setting = {{1, 16}};
  CHECK_THROWS_AS(mz::mobilenet_v2({}, o), mz::UsageError);
}
