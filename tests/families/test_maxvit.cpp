// Builder semantics of MaxViT that the generic registry, metadata and parity tests do not see.
#include <doctest/doctest.h>

#include "tests/support/support.h"

using namespace mz;
using namespace mz::test;

TEST_CASE("MaxViT: block inputs must be divisible by the partition size; weights fix input_size") {
  mz::MaxVitOptions o;
  o.input_size = std::vector<std::int64_t>{160, 160};
  CHECK_THROWS_WITH_AS(mz::maxvit_t({}, o), doctest::Contains("not divisible by partition size 7"), mz::UsageError);
  mz::ArchitectureOnly architecture_only;
  auto m = mz::maxvit_t(mz::MaxVit_T_Weights::DEFAULT);
  CHECK(mz::nn::num_params(*m) == 30919624);
  auto s = shapes_of(*m);
  CHECK(s.at("blocks.0.layers.0.layers.MBconv.proj.1.weight") == std::vector<std::int64_t>{64, 64, 1, 1});
  CHECK(s.at("blocks.0.layers.0.layers.window_attention.attn_layer.1.relative_position_index") ==
        std::vector<std::int64_t>{49, 49});
  CHECK(s.at("blocks.0.layers.0.layers.grid_attention.mlp_layer.3.weight") == std::vector<std::int64_t>{64, 256});
  CHECK(s.count("blocks.0.layers.1.layers.MBconv.proj.0.weight") == 0);
  CHECK(s.at("classifier.5.weight") == std::vector<std::int64_t>{1000, 512});
  CHECK(s.at("stem.1.0.bias") == std::vector<std::int64_t>{64});
  o.input_size = std::vector<std::int64_t>{448, 448};
  CHECK_THROWS_WITH_AS(mz::maxvit_t(mz::MaxVit_T_Weights::DEFAULT, o), doctest::Contains("option 'input_size'"),
                       mz::UsageError);
}
