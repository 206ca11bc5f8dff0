// Builder semantics of the Vision Transformer (loads at another image size: tests/core/test_adapt.cpp) that the generic registry, metadata and parity tests do not see.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>

#include "tests/support/support.h"

using namespace mz;
using namespace mz::test;

namespace {

mz::VisionTransformer tiny_vit(std::int64_t image_size) {
  mz::VisionTransformerOptions o;
  o.num_classes = 5;
  mz::VisionTransformer m(image_size, 8, 2, 2, 8, 16, o);
  torch::NoGradGuard no_grad;
  for (auto& p : m->parameters()) p.normal_();
  return m;
}

}  // namespace

TEST_CASE("ViT: state-dict names equal torchvision's (MultiheadAttention, MLPBlock mlp.0/mlp.3, heads)") {
  mz::ArchitectureOnly architecture_only;
  auto m = mz::vit_b_16();
  auto s = shapes_of(*m);
  CHECK(s.size() == 152);
  CHECK(s.at("class_token") == std::vector<std::int64_t>{1, 1, 768});
  CHECK(s.at("conv_proj.weight") == std::vector<std::int64_t>{768, 3, 16, 16});
  CHECK(s.at("encoder.pos_embedding") == std::vector<std::int64_t>{1, 197, 768});
  const std::string b = "encoder.layers.encoder_layer_11.";
  CHECK(s.at(b + "self_attention.in_proj_weight") == std::vector<std::int64_t>{2304, 768});
  CHECK(s.at(b + "self_attention.in_proj_bias") == std::vector<std::int64_t>{2304});
  CHECK(s.at(b + "self_attention.out_proj.weight") == std::vector<std::int64_t>{768, 768});
  CHECK(s.at(b + "mlp.0.weight") == std::vector<std::int64_t>{3072, 768});
  CHECK(s.at(b + "mlp.3.weight") == std::vector<std::int64_t>{768, 3072});
  CHECK(s.count(b + "ln_1.weight") == 1);
  CHECK(s.count("encoder.ln.bias") == 1);
  CHECK(s.at("heads.head.weight") == std::vector<std::int64_t>{1000, 768});

  mz::VisionTransformerOptions o;
  o.representation_size = 32;
  auto r = mz::vit_b_32({}, o);
  auto rs = shapes_of(*r);
  CHECK(rs.at("heads.pre_logits.weight") == std::vector<std::int64_t>{32, 768});
  CHECK(rs.at("heads.head.weight") == std::vector<std::int64_t>{1000, 32});

  std::vector<std::string> names;
  for (const auto& st : m->steps()) names.push_back(st.name);
  CHECK(names == std::vector<std::string>{"conv_proj", "flatten", "class_token", "encoder", "select_class_token",
                                          "heads"});
}

TEST_CASE("ViT: SWAG weights fix image_size from their min_size; a contradicting value is an error") {
  mz::ArchitectureOnly architecture_only;
  auto e2e = mz::vit_b_16(mz::ViT_B_16_Weights::IMAGENET1K_SWAG_E2E_V1);
  CHECK(e2e->image_size == 384);
  CHECK(e2e->encoder->pos_embedding.sizes().vec() == std::vector<std::int64_t>{1, 577, 768});
  CHECK(mz::nn::num_params(*e2e) == 86859496);
  CHECK(mz::vit_b_16(mz::ViT_B_16_Weights::IMAGENET1K_SWAG_LINEAR_V1)->image_size == 224);
  CHECK(mz::vit_l_16(mz::ViT_L_16_Weights::IMAGENET1K_SWAG_E2E_V1)->image_size == 512);
  CHECK(mz::vit_h_14(mz::ViT_H_14_Weights::DEFAULT)->image_size == 518);
  CHECK(mz::ViT_H_14_Weights::DEFAULT.meta().extra.at("license") ==
        "https://github.com/facebookresearch/SWAG/blob/main/LICENSE");

  mz::VisionTransformerOptions o;
  o.image_size = 224;
  CHECK_THROWS_WITH_AS(mz::vit_b_16(mz::ViT_B_16_Weights::IMAGENET1K_SWAG_E2E_V1, o),
                       doctest::Contains("option 'image_size' must be 384, got 224"), mz::UsageError);
  o.image_size = 384;
  CHECK(mz::vit_b_16(mz::ViT_B_16_Weights::IMAGENET1K_SWAG_E2E_V1, o)->image_size == 384);
  o.image_size = 100;
  CHECK_THROWS_WITH_AS(mz::vit_b_16({}, o), doctest::Contains("indivisible by patch size"), mz::UsageError);

  auto small = mz::vit_b_32({}, {std::nullopt, 64});
  CHECK(small->encoder->pos_embedding.size(1) == 5);
}

TEST_CASE("ViT: constructing a model a checkpoint will overwrite costs no random init") {
  const auto t0 = std::chrono::steady_clock::now();
  {
    mz::ArchitectureOnly architecture_only;
    auto m = mz::vit_l_16();
    CHECK(mz::nn::num_params(*m) == 304326632);
  }
  const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  CHECK(ms < 1000);  // torchvision's vit_l_16() takes seconds
}

TEST_CASE("ViT: forward is the same on the fused inference path and the training-mode path") {
  auto m = tiny_vit(32);
  auto x = torch::randn({2, 3, 32, 32});
  m->eval();
  torch::Tensor fused, plain;
  {
    torch::NoGradGuard no_grad;
    fused = m->forward(x);
  }
  plain = m->forward(x).detach();  // grad mode: the matmul + softmax path
  CHECK(fused.sizes().vec() == std::vector<std::int64_t>{2, 5});
  CHECK(torch::allclose(fused, plain, 1e-4, 1e-5));
  CHECK_THROWS_WITH(m->forward(torch::randn({1, 3, 40, 40})), doctest::Contains("Wrong image height! Expected 32"));
}

TEST_CASE("interpolate_embeddings matches torchvision's numerically") {
  if (std::system("/usr/bin/python3 -c 'import torchvision' >/dev/null 2>&1") != 0) {
    MESSAGE("skipped: no /usr/bin/python3 with torchvision");
    return;
  }
  const auto script = temp_path("mz-interp.py"), out = temp_path("mz-interp.pth");
  std::ofstream(script) << R"(import collections, sys, torch
from torchvision.models.vision_transformer import interpolate_embeddings
torch.manual_seed(0)
pos = torch.randn(1, 1 + 14 * 14, 24)
state = collections.OrderedDict([("encoder.pos_embedding", pos), ("heads.head.weight", torch.randn(3, 24))])
res = collections.OrderedDict()
for mode in ("bicubic", "bilinear"):
    new = interpolate_embeddings(384, 16, collections.OrderedDict(state), interpolation_mode=mode)
    res["out_" + mode] = new["encoder.pos_embedding"]
res["in"] = pos
res["n_reset"] = torch.tensor(len(interpolate_embeddings(384, 16, collections.OrderedDict(state), reset_heads=True)))
torch.save(res, sys.argv[1])
)";
  REQUIRE(std::system(("/usr/bin/python3 " + script + " " + out).c_str()) == 0);
  const auto ref = mz::read_checkpoint(out);
  std::filesystem::remove(script);
  std::filesystem::remove(out);
  const auto input = ref.at("in");
  for (const char* mode : {"bicubic", "bilinear"}) {
    auto res = mz::interpolate_embeddings(384, 16, {{"encoder.pos_embedding", input}, {"heads.head.weight", torch::ones({3, 24})}},
                                          mode);
    REQUIRE(res.size() == 2);
    const auto expected = ref.at(std::string("out_") + mode);
    CHECK(res.at("encoder.pos_embedding").sizes().vec() == std::vector<std::int64_t>{1, 577, 24});
    CHECK(torch::allclose(res.at("encoder.pos_embedding"), expected, 1e-5, 1e-6));
  }
  auto reset = mz::interpolate_embeddings(384, 16, {{"encoder.pos_embedding", input}, {"heads.head.weight", torch::ones({3, 24})}},
                                          "bicubic", true);
  CHECK(static_cast<std::int64_t>(reset.size()) == ref.at("n_reset").item<std::int64_t>());
  // Same size: unchanged.
  auto same = mz::interpolate_embeddings(224, 16, {{"encoder.pos_embedding", input}});
  CHECK(torch::equal(same.at("encoder.pos_embedding"), input));
  CHECK_THROWS_WITH_AS(mz::interpolate_embeddings(224, 16, {{"x", input}}), doctest::Contains("no encoder.pos_embedding"),
                       mz::UsageError);
}
