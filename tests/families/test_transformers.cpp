// Builder semantics of the vision transformers: ViT (SWAG image sizes, position-embedding
// interpolation against torchvision's interpolate_embeddings), Swin v1/v2 (buffers in the state
// dict) and MaxViT (input size rules).
#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <unistd.h>

#include "modelzoo/modelzoo.h"

namespace {

std::map<std::string, std::vector<std::int64_t>> state_shapes(torch::nn::Module& m) {
  std::map<std::string, std::vector<std::int64_t>> out;
  for (const auto& p : m.named_parameters()) out[p.key()] = p.value().sizes().vec();
  for (const auto& b : m.named_buffers()) out[b.key()] = b.value().sizes().vec();
  return out;
}

mz::NamedTensors state_dict(torch::nn::Module& m) {
  mz::NamedTensors out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value().detach().clone());
  for (const auto& b : m.named_buffers()) out.emplace_back(b.key(), b.value().detach().clone());
  return out;
}

torch::Tensor find(const mz::NamedTensors& t, const std::string& key) {
  for (const auto& kv : t)
    if (kv.first == key) return kv.second;
  return {};
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / (name + "-" + std::to_string(::getpid()))).string();
}

// A small ViT (2 layers, hidden 8) at the given image size, patch 8, randomly initialised.
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
  auto s = state_shapes(*m);
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
  auto rs = state_shapes(*r);
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
  const auto input = find(ref, "in");
  for (const char* mode : {"bicubic", "bilinear"}) {
    auto res = mz::interpolate_embeddings(384, 16, {{"encoder.pos_embedding", input}, {"heads.head.weight", torch::ones({3, 24})}},
                                          mode);
    REQUIRE(res.size() == 2);
    const auto expected = find(ref, std::string("out_") + mode);
    CHECK(res[0].second.sizes().vec() == std::vector<std::int64_t>{1, 577, 24});
    CHECK(torch::allclose(res[0].second, expected, 1e-5, 1e-6));
  }
  auto reset = mz::interpolate_embeddings(384, 16, {{"encoder.pos_embedding", input}, {"heads.head.weight", torch::ones({3, 24})}},
                                          "bicubic", true);
  CHECK(static_cast<std::int64_t>(reset.size()) == find(ref, "n_reset").item<std::int64_t>());
  // Same size: unchanged.
  auto same = mz::interpolate_embeddings(224, 16, {{"encoder.pos_embedding", input}});
  CHECK(torch::equal(same[0].second, input));
  CHECK_THROWS_WITH_AS(mz::interpolate_embeddings(224, 16, {{"x", input}}), doctest::Contains("no encoder.pos_embedding"),
                       mz::UsageError);
}

TEST_CASE("load_vit_checkpoint interpolates the position embeddings of a checkpoint trained at another size") {
  auto at32 = tiny_vit(32);
  const auto path = temp_path("mz-vit32.safetensors");
  const auto saved = state_dict(*at32);
  mz::save_safetensors(path, saved);

  mz::VisionTransformerOptions o;
  o.num_classes = 5;
  mz::VisionTransformer at64(64, 8, 2, 2, 8, 16, o);
  CHECK_THROWS_AS(mz::load_checkpoint(*at64, path), mz::LoadError);  // strict: pos_embedding 17 vs 65 positions
  auto report = mz::load_vit_checkpoint(*at64, path);
  CHECK(report.ok());
  CHECK(report.skipped.empty());
  CHECK(report.loaded.size() == saved.size());
  auto expected = mz::interpolate_embeddings(64, 8, saved);
  CHECK(torch::allclose(at64->encoder->pos_embedding, find(expected, "encoder.pos_embedding")));
  CHECK(torch::equal(at64->class_token, at32->class_token));
  CHECK(torch::equal(at64->heads->ptr(0)->as<mz::nn::LinearImpl>()->weight, at32->heads->ptr(0)->as<mz::nn::LinearImpl>()->weight));
  at64->eval();
  torch::NoGradGuard no_grad;
  CHECK(at64->forward(torch::randn({1, 3, 64, 64})).sizes().vec() == std::vector<std::int64_t>{1, 5});
  // Same size: a plain strict load.
  mz::VisionTransformer again(32, 8, 2, 2, 8, 16, o);
  CHECK(mz::load_vit_checkpoint(*again, path).ok());
  CHECK(torch::equal(again->encoder->pos_embedding, at32->encoder->pos_embedding));
  std::filesystem::remove(path);
}

TEST_CASE("Swin: relative_position_index (v1, v2) and relative_coords_table (v2) are state-dict buffers") {
  mz::ArchitectureOnly architecture_only;
  auto v1 = state_shapes(*mz::swin_t());
  CHECK(v1.at("features.1.0.attn.relative_position_index") == std::vector<std::int64_t>{49 * 49});
  CHECK(v1.at("features.1.0.attn.relative_position_bias_table") == std::vector<std::int64_t>{169, 3});
  CHECK(v1.at("features.2.reduction.weight") == std::vector<std::int64_t>{192, 384});
  CHECK(v1.at("features.2.norm.weight") == std::vector<std::int64_t>{384});
  CHECK(v1.at("features.0.0.weight") == std::vector<std::int64_t>{96, 3, 4, 4});
  CHECK(v1.at("features.1.0.mlp.3.weight") == std::vector<std::int64_t>{96, 384});
  CHECK(v1.count("features.1.0.attn.logit_scale") == 0);
  auto v2 = state_shapes(*mz::swin_v2_t());
  CHECK(v2.at("features.1.0.attn.relative_position_index") == std::vector<std::int64_t>{64 * 64});
  CHECK(v2.at("features.1.0.attn.relative_coords_table") == std::vector<std::int64_t>{1, 15, 15, 2});
  CHECK(v2.at("features.1.0.attn.logit_scale") == std::vector<std::int64_t>{3, 1, 1});
  CHECK(v2.at("features.1.0.attn.cpb_mlp.0.weight") == std::vector<std::int64_t>{512, 2});
  CHECK(v2.at("features.1.0.attn.cpb_mlp.2.weight") == std::vector<std::int64_t>{3, 512});
  CHECK(v2.count("features.1.0.attn.cpb_mlp.2.bias") == 0);
  CHECK(v2.at("features.2.norm.weight") == std::vector<std::int64_t>{192});
  CHECK(v2.count("features.1.0.attn.relative_position_bias_table") == 0);

  // The index buffer is torchvision's: for a 2x2 window, (dh + 1) * 3 + (dw + 1).
  auto index = mz::swin::relative_position_index(2, 2);
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

TEST_CASE("MaxViT: block inputs must be divisible by the partition size; weights fix input_size") {
  mz::MaxVitOptions o;
  o.input_size = std::vector<std::int64_t>{160, 160};
  CHECK_THROWS_WITH_AS(mz::maxvit_t({}, o), doctest::Contains("not divisible by partition size 7"), mz::UsageError);
  mz::ArchitectureOnly architecture_only;
  auto m = mz::maxvit_t(mz::MaxVit_T_Weights::DEFAULT);
  CHECK(mz::nn::num_params(*m) == 30919624);
  auto s = state_shapes(*m);
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
