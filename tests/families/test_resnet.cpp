// Builder semantics of ResNet that the generic registry, metadata and parity tests do not see.
#include <doctest/doctest.h>

#include "tests/support/support.h"

using namespace mz;
using namespace mz::test;

TEST_CASE("builders without weights initialise as torchvision does") {
  auto model = resnet50({}, {.zero_init_residual = true});
  CHECK(model->bn1->weight.eq(1).all().item<bool>());
  CHECK(model->bn1->bias.eq(0).all().item<bool>());
  const auto* block = model->layer1[0]->as<BottleneckImpl>();
  CHECK(block->bn3->weight.eq(0).all().item<bool>());
  const double std = model->conv1->weight.std().item<double>();
  CHECK(std == doctest::Approx(std::sqrt(2.0 / (64 * 7 * 7))).epsilon(0.05));  // kaiming_normal_, fan_out
}
