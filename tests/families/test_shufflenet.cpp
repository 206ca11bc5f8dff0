// Builder semantics of ShuffleNetV2 that the generic registry, metadata and parity tests do not see.
#include <doctest/doctest.h>

#include "tests/support/support.h"

using namespace mz;
using namespace mz::test;

TEST_CASE("shufflenet_v2: branch1 only in downsampling blocks; shapes and parameters") {
  auto m = mz::shufflenet_v2_x1_0();
  const auto s = shapes_of(*m);
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

TEST_CASE("shufflenet_v2_x1_0: num_classes must agree with the weights") {
  ShuffleNetV2Options s;
  s.num_classes = 5;
  CHECK_THROWS_AS(shufflenet_v2_x1_0(ShuffleNet_V2_X1_0_Weights::DEFAULT, s), UsageError);
}
