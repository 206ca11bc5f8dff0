// Builder semantics of the Swin Transformer (V1, V2) that the generic registry, metadata and parity tests do not see.
#include <doctest/doctest.h>

#include "tests/support/support.h"

using namespace mz;
using namespace mz::test;

TEST_CASE("Swin: relative_position_index (v1, v2) and relative_coords_table (v2) are state-dict buffers") {
  mz::ArchitectureOnly architecture_only;
  auto v1 = shapes_of(*mz::swin_t());
  CHECK(v1.at("features.1.0.attn.relative_position_index") == std::vector<std::int64_t>{49 * 49});
  CHECK(v1.at("features.1.0.attn.relative_position_bias_table") == std::vector<std::int64_t>{169, 3});
  CHECK(v1.at("features.2.reduction.weight") == std::vector<std::int64_t>{192, 384});
  CHECK(v1.at("features.2.norm.weight") == std::vector<std::int64_t>{384});
  CHECK(v1.at("features.0.0.weight") == std::vector<std::int64_t>{96, 3, 4, 4});
  CHECK(v1.at("features.1.0.mlp.3.weight") == std::vector<std::int64_t>{96, 384});
  CHECK(v1.count("features.1.0.attn.logit_scale") == 0);
  auto v2 = shapes_of(*mz::swin_v2_t());
  CHECK(v2.at("features.1.0.attn.relative_position_index") == std::vector<std::int64_t>{64 * 64});
  CHECK(v2.at("features.1.0.attn.relative_coords_table") == std::vector<std::int64_t>{1, 15, 15, 2});
  CHECK(v2.at("features.1.0.attn.logit_scale") == std::vector<std::int64_t>{3, 1, 1});
  CHECK(v2.at("features.1.0.attn.cpb_mlp.0.weight") == std::vector<std::int64_t>{512, 2});
  CHECK(v2.at("features.1.0.attn.cpb_mlp.2.weight") == std::vector<std::int64_t>{3, 512});
  CHECK(v2.count("features.1.0.attn.cpb_mlp.2.bias") == 0);
  CHECK(v2.at("features.2.norm.weight") == std::vector<std::int64_t>{192});
  CHECK(v2.count("features.1.0.attn.relative_position_bias_table") == 0);

  // The index buffer is torchvision's: for a 2x2 window, (dh + 1) * 3 + (dw + 1).
  auto index = mz::ops::relative_position_index(2, 2);
  CHECK(torch::equal(index, torch::tensor({4, 3, 1, 0, 5, 4, 2, 1, 7, 6, 4, 3, 8, 7, 5, 4}, torch::kLong)));

  mz::SwinTransformerOptions o;
  o.stochastic_depth_prob = 0.3;
  CHECK_THROWS_WITH_AS(mz::swin_t({}, o), doctest::Contains("option 'stochastic_depth_prob' must be 0.2"),
                       mz::UsageError);
}

TEST_CASE("Swin: shifted windows pad any input size") {
  auto m = mz::swin_t();
  m->eval();
  torch::NoGradGuard no_grad;
  for (std::int64_t side : {36, 64, 100})
    CHECK(m->forward(torch::randn({1, 3, side, side})).sizes().vec() == std::vector<std::int64_t>{1, 1000});
}
