// Builder semantics of MNASNet (its version-1 checkpoints: tests/core/test_adapt.cpp) that the generic registry, metadata and parity tests do not see.
#include <doctest/doctest.h>

#include "tests/support/support.h"

using namespace mz;
using namespace mz::test;

TEST_CASE("mnasnet: stem depths, BN momentum, the v1 stem") {
  auto m = mz::mnasnet0_5();
  CHECK(m->version == 2);
  CHECK(m->layers->size() == 17);
  CHECK(shapes_of(*m).at("layers.0.weight") == std::vector<std::int64_t>{16, 3, 3, 3});
  CHECK(shapes_of(*m).at("layers.8.0.layers.0.weight") == std::vector<std::int64_t>{24, 8, 1, 1});
  mz::nn::for_each<mz::nn::BatchNorm2dImpl>(
      *m, [](mz::nn::BatchNorm2dImpl& bn) { CHECK(*bn.options.momentum() == doctest::Approx(1 - 0.9997)); });
  CHECK(mz::mnasnet::depths(1.3) == std::vector<std::int64_t>{40, 24, 32, 56, 104, 128, 248, 416});

  SUBCASE("use_v1_stem switches layers 0..8 to the fixed 32/16 stem, keeping the rest") {
    auto kept = m->layers[9];
    m->use_v1_stem();
    CHECK(m->version == 1);
    CHECK(m->layers->size() == 17);
    CHECK(m->layers[9].get() == kept.get());
    CHECK(shapes_of(*m).at("layers.0.weight") == std::vector<std::int64_t>{32, 3, 3, 3});
    CHECK(shapes_of(*m).at("layers.6.weight") == std::vector<std::int64_t>{16, 32, 1, 1});
    CHECK(shapes_of(*m).at("layers.8.0.layers.0.weight") == std::vector<std::int64_t>{48, 16, 1, 1});
    CHECK(shapes_of(*m).size() == shapes_of(*mz::mnasnet0_5()).size());
  }
}

TEST_CASE("mnasnet0_75: num_classes must agree with the weights, and sets the head without them") {
  MNASNetOptions n;
  n.num_classes = 3;
  CHECK_THROWS_AS(mnasnet0_75(MNASNet0_75_Weights::DEFAULT, n), UsageError);
  CHECK(mnasnet0_75({}, n)->classifier[1]->as<nn::Linear>()->options.out_features() == 3);
}
