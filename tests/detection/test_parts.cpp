// The shared detection parts against torchvision 0.14.1 (fixtures from gen_fixtures.py): the transform
// (bit for bit), FPN backbones (rel. 1e-4, BatchNorm / FrozenBatchNorm / eps 0 / P6P7 / no FPN, with
// torchvision's state-dict keys, loaded strictly, and its trainable-parameter counts), anchors (exact).
#include <doctest/doctest.h>

#include <cstdlib>

#include "tests/support/support.h"

using namespace mz;

namespace {

TensorDict fixture(const std::string& name) {
  const char* dir = std::getenv("MZ_DETECTION_FIXTURES");
  REQUIRE_MESSAGE(dir, "MZ_DETECTION_FIXTURES is not set");
  return read_checkpoint(std::string(dir) + "/" + name + ".safetensors");
}

// Entries of `d` whose key starts with `prefix`, without it.
TensorDict with_prefix(const TensorDict& d, const std::string& prefix) {
  TensorDict out;
  for (const auto& item : d)
    if (item.key().rfind(prefix, 0) == 0) out.insert(item.key().substr(prefix.size()), item.value());
  return out;
}

double rel_error(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item<double>();
}

std::vector<std::int64_t> ints(const torch::Tensor& t) {
  auto c = t.to(torch::kInt64).contiguous();
  return std::vector<std::int64_t>(c.data_ptr<std::int64_t>(), c.data_ptr<std::int64_t>() + c.numel());
}

std::int64_t trainable(const torch::nn::Module& m) {
  std::int64_t n = 0;
  for (const auto& p : m.parameters())
    if (p.requires_grad()) ++n;
  return n;
}

}  // namespace

TEST_CASE("GeneralizedRCNNTransform resizes, batches and postprocesses as torchvision, bit for bit") {
  for (const char* name : {"transform_800", "transform_320", "transform_kp", "transform_fixed"}) {
    CAPTURE(name);
    const auto f = fixture(name);
    std::optional<std::array<std::int64_t, 2>> fixed;
    if (f.at("fixed_size").numel() == 2) fixed = std::array<std::int64_t, 2>{ints(f.at("fixed_size"))[0], ints(f.at("fixed_size"))[1]};
    GeneralizedRCNNTransform t(ints(f.at("min_size")), f.at("max_size").item<std::int64_t>(),
                               std::vector<double>{0.485, 0.456, 0.406}, std::vector<double>{0.229, 0.224, 0.225},
                               f.at("size_divisible").item<std::int64_t>(), fixed);
    t->eval();
    std::vector<torch::Tensor> images;
    for (int i = 0; f.contains("in." + std::to_string(i)); ++i) images.push_back(f.at("in." + std::to_string(i)));
    const ImageList il = t->forward(images);
    CHECK(il.tensors.sizes() == f.at("out").sizes());
    CHECK(torch::equal(il.tensors, f.at("out")));
    const auto sizes = ints(f.at("sizes"));
    REQUIRE(il.image_sizes.size() * 2 == sizes.size());
    for (std::size_t i = 0; i < il.image_sizes.size(); ++i) {
      CHECK(il.image_sizes[i][0] == sizes[2 * i]);
      CHECK(il.image_sizes[i][1] == sizes[2 * i + 1]);
    }
    Detection d;
    d.boxes = f.at("post.boxes");
    d.masks = f.at("post.masks");
    d.keypoints = f.at("post.keypoints");
    const ImageSize original = {images[0].size(1), images[0].size(2)};
    const auto out = t->postprocess({d}, {il.image_sizes[0]}, {original});
    CHECK(torch::equal(out[0].boxes, f.at("post.out.boxes")));
    CHECK(torch::equal(out[0].keypoints, f.at("post.out.keypoints")));
    CHECK(out[0].masks.sizes() == f.at("post.out.masks").sizes());
    CHECK(torch::equal(out[0].masks, f.at("post.out.masks")));
  }
}

TEST_CASE("the transform refuses what torchvision's refuses, naming the image") {
  GeneralizedRCNNTransform t(std::vector<std::int64_t>{320}, 640, std::vector<double>{0.5, 0.5, 0.5},
                             std::vector<double>{0.5, 0.5, 0.5});
  CHECK_THROWS_WITH_AS(t->forward({}), doctest::Contains("the image list is empty"), UsageError);
  CHECK_THROWS_WITH_AS(t->forward({torch::rand({3, 8, 8}), torch::zeros({3, 8, 8}, torch::kUInt8)}),
                       doctest::Contains("images[1]"), UsageError);
  CHECK_THROWS_WITH_AS(t->forward({torch::rand({1, 8, 8})}), doctest::Contains("3 x H x W"), UsageError);
}

namespace {

ResNet resnet(ops::NormLayer norm) {
  ResNetOptions o;
  o.norm_layer = std::move(norm);
  return resnet50({}, o);
}

// Builds a case's backbone without initialising it, loads torchvision's state dict strictly and
// compares every output map.
template <class Make>
void check_backbone(const std::string& name, Make make, double eps = -1) {
  CAPTURE(name);
  const auto f = fixture(name);
  std::optional<Backbone> backbone;
  {
    ArchitectureOnly uninitialised;
    backbone.emplace(make());
  }
  if (eps >= 0) overwrite_eps(*backbone->module, eps);
  const LoadReport report = load_state(*backbone->module, with_prefix(f, "sd."));
  CHECK(report.ok());
  CHECK(trainable(*backbone->module) == f.at("trainable").item<std::int64_t>());
  backbone->module->eval();
  torch::NoGradGuard no_grad;
  const TensorDict out = backbone->forward(f.at("input"));
  const TensorDict want = with_prefix(f, "out.");
  CHECK(out.keys() == want.keys());
  for (const auto& item : want) {
    CAPTURE(item.key());
    REQUIRE(out.contains(item.key()));
    CHECK(out.at(item.key()).sizes() == item.value().sizes());
    CHECK(rel_error(out.at(item.key()), item.value()) <= 1e-4);
  }
}

}  // namespace

TEST_CASE("min_size takes one size or several, from JSON and back, in every detector's options") {
  const auto retina = options_from_json<RetinaNetResNet50FPNOptions>({{"min_size", {640, 672, 800}}}, "retinanet");
  CHECK(retina.min_size == std::vector<std::int64_t>{640, 672, 800});
  CHECK(options_from_json<FCOSResNet50FPNOptions>({{"min_size", 320}}, "fcos").min_size == std::vector<std::int64_t>{320});
  const auto rcnn = options_from_json<FasterRCNNResNet50Options>({{"min_size", {512, 600}}}, "fasterrcnn");
  CHECK(*rcnn.min_size == std::vector<std::int64_t>{512, 600});
  CHECK(nlohmann::json(retina).at("min_size") == nlohmann::json({640, 672, 800}));
  CHECK(nlohmann::json(FCOSResNet50FPNOptions{}).at("min_size") == 800);
  CHECK_THROWS_AS(options_from_json<RetinaNetResNet50FPNOptions>({{"min_size", "800"}}, "retinanet"), UsageError);
  CHECK_THROWS_WITH_AS(options_from_json<RetinaNetResNet50FPNOptions>({{"min_size", {800, 1e40}}}, "retinanet"),
                       "retinanet: option 'min_size' cannot be [800,1e+40] (sizes must be integers within range)",
                       UsageError);
}

TEST_CASE("FPN backbones equal torchvision's: keys, trainable layers and maps") {
  check_backbone("fpn_resnet50_bn", [] { return Backbone(resnet_fpn_extractor(resnet(ops::batch_norm2d()).ptr(), 5)); });
  check_backbone("fpn_resnet50_frozen_eps0",
                 [] { return Backbone(resnet_fpn_extractor(resnet(ops::frozen_batch_norm2d()).ptr(), 3)); }, 0.0);
  check_backbone("fpn_resnet50_v2", [] {
    return Backbone(resnet_fpn_extractor(resnet(nullptr).ptr(), 5, {}, {}, ops::batch_norm2d()));
  });
  check_backbone("fpn_resnet50_p6p7_frozen", [] {
    return Backbone(resnet_fpn_extractor(resnet(ops::frozen_batch_norm2d()).ptr(), 3, {2, 3, 4}, LastLevelP6P7(256, 256)));
  });
  check_backbone("fpn_resnet50_p6p7_c5", [] {
    return Backbone(resnet_fpn_extractor(resnet(nullptr).ptr(), 5, {2, 3, 4}, LastLevelP6P7(2048, 256)));
  });
  check_backbone("fpn_mobilenet_frozen",
                 [] { return mobilenet_backbone("mobilenet_v3_large", {}, true, ops::frozen_batch_norm2d(), 3); });
  check_backbone("mobilenet_nofpn_bn",
                 [] { return mobilenet_backbone("mobilenet_v3_large", {}, false, ops::batch_norm2d(), 6); });
}

TEST_CASE("FrozenBatchNorm2d: four buffers, torchvision's formula, old checkpoints' num_batches_tracked dropped") {
  nn::FrozenBatchNorm2d bn(4);
  CHECK(bn->parameters().empty());
  CHECK(test::keys_of(*bn) == std::vector<std::string>{"weight", "bias", "running_mean", "running_var"});
  TensorDict state;
  state.insert("weight", torch::rand({4}));
  state.insert("bias", torch::rand({4}));
  state.insert("running_mean", torch::rand({4}));
  state.insert("running_var", torch::rand({4}));
  state.insert("num_batches_tracked", torch::zeros({}, torch::kLong));
  CHECK(load_state(*bn, state).ok());
  const auto x = torch::randn({2, 4, 3, 3});
  const auto scale = state.at("weight") * (state.at("running_var") + 1e-5).rsqrt();
  const auto shift = state.at("bias") - state.at("running_mean") * scale;
  CHECK(torch::equal(bn(x), x * scale.reshape({1, -1, 1, 1}) + shift.reshape({1, -1, 1, 1})));
}

TEST_CASE("legacy FPN keys (inner_blocks.0.weight) load through the checkpoint adapter") {
  FeaturePyramidNetwork fpn(std::vector<std::int64_t>{8, 16}, 4, LastLevelMaxPool());
  TensorDict old;
  for (const auto& item : test::tensors_of(*fpn)) {
    std::string k = item.key();
    const auto pos = k.find(".0.");
    old.insert(k.replace(pos, 3, "."), torch::rand_like(item.value()));  // inner_blocks.0.0.weight -> inner_blocks.0.weight
  }
  const LoadReport report = load_state(*fpn, old);
  CHECK(report.ok());
  CHECK(torch::equal(fpn->inner_blocks[1]->as<ops::Conv2dNormActivationImpl>()->named_parameters()["0.weight"],
                     old.at("inner_blocks.1.weight")));
}

TEST_CASE("AnchorGenerator gives torchvision's anchors, in its order") {
  for (const char* name : {"anchors_rcnn", "anchors_retina", "anchors_mobilenet"}) {
    CAPTURE(name);
    const auto f = fixture(name);
    std::vector<std::vector<double>> sizes, ratios;
    std::vector<torch::Tensor> maps;
    for (int i = 0; f.contains("sizes." + std::to_string(i)); ++i) {
      const auto s = f.at("sizes." + std::to_string(i)).contiguous(), r = f.at("ratios." + std::to_string(i)).contiguous();
      sizes.emplace_back(s.data_ptr<double>(), s.data_ptr<double>() + s.numel());
      ratios.emplace_back(r.data_ptr<double>(), r.data_ptr<double>() + r.numel());
    }
    for (int i = 0; f.contains("grid." + std::to_string(i)); ++i) {
      const auto g = ints(f.at("grid." + std::to_string(i)));
      maps.push_back(torch::zeros({2, 8, g[0], g[1]}));
    }
    AnchorGenerator anchors(sizes, ratios);
    ImageList images{torch::zeros({2, 3, 96, 128}), {{90, 128}, {96, 100}}};
    const auto out = anchors->forward(images, maps);
    REQUIRE(out.size() == 2);
    CHECK(torch::equal(out[0], f.at("anchors.0")));
    CHECK(torch::equal(out[1], f.at("anchors.1")));
  }
  AnchorGenerator two({{32}, {64}}, {{0.5, 1.0, 2.0}});
  CHECK(two->num_anchors_per_location() == std::vector<std::int64_t>{3, 3});
  ImageList images{torch::zeros({1, 3, 64, 64}), {{64, 64}}};
  CHECK_THROWS_WITH_AS(two->forward(images, {torch::zeros({1, 8, 8, 8})}), doctest::Contains("one per feature map"),
                       UsageError);
  CHECK_THROWS_AS(AnchorGenerator({{32}, {64}, {128}}, {{0.5}, {1.0}}), UsageError);
}
