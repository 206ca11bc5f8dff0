// Feature extraction by layer name, heads over any backbone, fine-tuning loads and freezing.
#include <doctest/doctest.h>

#include "tests/support/support.h"

using namespace mz;
using namespace mz::test;

TEST_CASE("feature_extractor: outputs by name, in request order, equal to the model's own layers") {
  torch::NoGradGuard no_grad;
  auto model = resnet50();
  model->eval();
  auto fx = feature_extractor(model, {{"layer4", "out"}, {"layer2", "feat2"}, {"layer2.1", "mid"}});
  fx->eval();
  const auto x = torch::randn({1, 3, 64, 64});
  const auto out = fx->forward(x);
  REQUIRE(out.keys() == std::vector<std::string>{"out", "feat2", "mid"});
  auto y = torch::max_pool2d(torch::relu(model->bn1(model->conv1(x))), 3, 2, 1);
  CHECK(torch::allclose(out["feat2"], model->layer2->forward(model->layer1->forward(y))));
  CHECK(out["out"].sizes() == torch::IntArrayRef{1, 2048, 2, 2});
  CHECK(out["mid"].sizes() == torch::IntArrayRef{1, 512, 8, 8});
  CHECK(fx->channels() == std::vector<std::pair<std::string, std::int64_t>>{{"out", 2048}, {"feat2", 512}, {"mid", 512}});
  CHECK(fx->channels("feat2") == 512);
}

TEST_CASE("a step works in place only on a tensor nothing else holds: a returned layer's output stays as it was") {
  torch::NoGradGuard no_grad;
  auto model = resnet18();
  model->eval();
  const auto x = torch::randn({1, 3, 32, 32});
  const auto bn1 = model->bn1(model->conv1(x));
  REQUIRE((bn1 < 0).any().item<bool>());
  const auto out = feature_extractor(model, {{"bn1", "bn1"}, {"relu", "relu"}})->forward(x);
  CHECK(torch::equal(out["bn1"], bn1));
  CHECK(torch::equal(out["relu"], torch::relu(bn1)));
  // Unshared (as in the model's own forward), ResNet's stem ReLU works in place, as torchvision's inplace=True.
  const auto steps = model->steps();
  REQUIRE(steps[2].name == "relu");
  torch::Tensor fresh = bn1.clone();
  const void* memory = fresh.data_ptr();
  const torch::Tensor y = steps[2].fn(std::move(fresh));
  CHECK(y.data_ptr() == memory);
  CHECK(torch::equal(y, torch::relu(bn1)));
}

TEST_CASE("feature_extractor: state dict is the model's up to the last requested layer") {
  auto model = resnet18();
  auto fx = feature_extractor(model, {{"layer2", "out"}});
  const auto keys = keys_of(*fx);
  CHECK(std::find(keys.begin(), keys.end(), "conv1.weight") != keys.end());
  CHECK(std::find(keys.begin(), keys.end(), "layer2.1.bn2.running_var") != keys.end());
  CHECK(std::find(keys.begin(), keys.end(), "layer3.0.conv1.weight") == keys.end());
  CHECK(std::find(keys.begin(), keys.end(), "fc.weight") == keys.end());
}

TEST_CASE("feature_extractor: layers after the last requested one are not run") {
  torch::nn::Sequential seq(torch::nn::Functional([](torch::Tensor x) { return x + 1; }),
                            torch::nn::Functional([](torch::Tensor x) { return x * 2; }),
                            torch::nn::Functional([](torch::Tensor) -> torch::Tensor {
                              throw std::runtime_error("layer 2 ran");
                            }));
  auto fx = feature_extractor(seq, {{"1", "doubled"}, {"0", "plus"}});
  const auto out = fx->forward(torch::zeros({1}));
  CHECK(out["plus"].item<float>() == 1);
  CHECK(out["doubled"].item<float>() == 2);
}

TEST_CASE("feature_extractor: nested names in any builder's output; unknown names list the valid ones") {
  torch::NoGradGuard no_grad;
  auto fx = feature_extractor(mobilenet_v3_large(), {{"features.4", "aux"}, {"features.16", "out"}});
  fx->eval();
  const auto out = fx->forward(torch::randn({1, 3, 64, 64}));
  CHECK(out["out"].size(1) == 960);
  CHECK(out["aux"].size(1) == 40);
  CHECK_THROWS_WITH_AS(feature_extractor(resnet18(), {{"layer5", "x"}}),
                       doctest::Contains("feature_extractor: unknown layer 'layer5' (valid: conv1, bn1, relu, maxpool, "
                                         "layer1, layer1.0, layer1.1, layer2,"),
                       UsageError);
  CHECK_THROWS_WITH_AS(feature_extractor(resnet18(), {{"layer1.7", "x"}}), doctest::Contains("unknown layer 'layer1.7'"),
                       UsageError);
  CHECK_THROWS_AS(feature_extractor(resnet18(), {{"fc.weight", "x"}}), UsageError);
  CHECK_THROWS_WITH_AS(feature_extractor(resnet18(), {{"layer1", "a"}, {"layer1", "b"}}),
                       doctest::Contains("requested twice"), UsageError);
}

TEST_CASE("the composition example: DeepLabV3 over a MobileNetV3 backbone") {
  auto backbone = feature_extractor(mobilenet_v3_large(), {{"features.16", "out"}});
  auto model = DeepLabV3(backbone, DeepLabHead(960, 5));
  model->eval();
  torch::NoGradGuard no_grad;
  auto out = model->forward(torch::randn({1, 3, 96, 96}));
  CHECK(out.keys() == std::vector<std::string>{"out"});
  CHECK(out.at("out").sizes() == torch::IntArrayRef{1, 5, 96, 96});
  auto fcn = FCN(feature_extractor(resnet18(), {{"layer3", "aux"}, {"layer4", "out"}}), FCNHead(512, 3),
                 FCNHead(256, 3));
  fcn->eval();
  auto both = fcn->forward(torch::randn({2, 3, 40, 56}));
  CHECK(both.keys() == std::vector<std::string>{"out", "aux"});
  CHECK(both["aux"].sizes() == torch::IntArrayRef{2, 3, 40, 56});
  auto lraspp = LRASPP(feature_extractor(resnet18(), {{"layer2", "low"}, {"layer4", "high"}}), 128, 512, 4);
  lraspp->eval();
  CHECK(lraspp->forward(torch::randn({1, 3, 64, 64}))["out"].sizes() == torch::IntArrayRef{1, 4, 64, 64});
}

TEST_CASE("ImageClassifier over any backbone") {
  auto model = ImageClassifier(feature_extractor(mobilenet_v3_small(), {{"features", "out"}}), 7, 0.2);
  model->eval();
  torch::NoGradGuard no_grad;
  CHECK(model->forward(torch::randn({3, 3, 64, 64})).sizes() == torch::IntArrayRef{3, 7});
  const auto keys = keys_of(*model);
  CHECK(keys.front() == "backbone.features.0.0.weight");
  CHECK(std::find(keys.begin(), keys.end(), "fc.weight") != keys.end());
  CHECK(model->fc->weight.sizes() == torch::IntArrayRef{7, 576});
}

TEST_CASE("fine-tuning: load everything but the head, re-initialise the head, report what was skipped") {
  auto pretrained = resnet18();
  const auto path = temp_path("r18.safetensors");
  save_safetensors(path, state_of(*pretrained));
  std::optional<ResNet> model;
  {
    ArchitectureOnly uninitialised;  // garbage everywhere until the load
    model = resnet18({}, {.num_classes = 10});
  }
  const LoadReport report = load_checkpoint(**model, path, {.skip = {"fc.*"}});
  CHECK(report.ok());
  CHECK(report.skipped == std::vector<std::string>{"fc.weight", "fc.bias"});
  const auto expected = state_of(*pretrained);
  for (const auto& item : state_of(**model)) {
    const std::string& k = item.key();
    CAPTURE(k);
    if (k.rfind("fc.", 0) == 0) continue;
    REQUIRE(expected.contains(k));
    CHECK(torch::equal(item.value(), expected[k]));
  }
  CHECK((*model)->fc->weight.sizes() == torch::IntArrayRef{10, 512});
  const double bound = 1.0 / std::sqrt(512.0);  // PyTorch's default Linear init
  CHECK((*model)->fc->weight.abs().max().item<double>() <= bound);
  CHECK((*model)->fc->bias.abs().max().item<double>() <= bound);
  CHECK_THROWS_AS(load_checkpoint(**model, path), LoadError);  // without skip, the head contradicts
}

TEST_CASE("freeze and unfreeze by parameter-name globs") {
  auto model = resnet18();
  const auto frozen = freeze(*model, {"conv1.*", "layer[12].*"});
  CHECK(frozen.front() == "conv1.weight");
  for (const auto& p : model->named_parameters()) {
    CAPTURE(p.key());
    const bool expect_frozen = p.key().rfind("conv1.", 0) == 0 || p.key().rfind("layer1.", 0) == 0 ||
                               p.key().rfind("layer2.", 0) == 0;
    CHECK(p.value().requires_grad() == !expect_frozen);
  }
  CHECK_THROWS_WITH_AS(freeze(*model, {"head.*"}), "freeze: 'head.*' matches no parameter name", UsageError);
  CHECK(unfreeze(*model, {"*"}).size() == model->parameters().size());
}

TEST_CASE("segmentation builders: weights fix num_classes and aux_loss; weights_backbone by name") {
  ArchitectureOnly no_download;
  CHECK_THROWS_WITH_AS(fcn_resnet50(FCN_ResNet50_Weights::DEFAULT, {.num_classes = 5}),
                       "FCN_ResNet50_Weights.COCO_WITH_VOC_LABELS_V1: option 'num_classes' must be 21, got 5",
                       UsageError);
  CHECK_THROWS_WITH_AS(deeplabv3_resnet50(DeepLabV3_ResNet50_Weights::DEFAULT, {.aux_loss = false}),
                       doctest::Contains("option 'aux_loss' must be true, got false"), UsageError);
  CHECK_THROWS_WITH_AS(lraspp_mobilenet_v3_large({}, {.aux_loss = true}),
                       doctest::Contains("does not use auxiliary loss"), UsageError);
  auto model = fcn_resnet50(FCN_ResNet50_Weights::DEFAULT);
  CHECK(!model->aux_classifier.is_empty());
  const auto& info = model_info("deeplabv3_mobilenet_v3_large");
  CHECK(info.default_options.at("weights_backbone") == "MobileNet_V3_Large_Weights.IMAGENET1K_V1");
  CHECK(info.task == "segmentation");
  Model m = get_model("fcn_resnet101", "", {{"weights_backbone", nullptr}, {"num_classes", 4}});
  m.module->eval();
  CHECK(m.forward(torch::zeros({1, 3, 32, 32})).at("out").sizes() == torch::IntArrayRef{1, 4, 32, 32});
}
