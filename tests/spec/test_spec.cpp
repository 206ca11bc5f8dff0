// Building specs: every spec of examples/specs builds and runs, the seed's state dict is torchvision's,
// _select_, _replace_ and mz::replace, a component registered in one line, weights provenance, and
// errors that name the JSON path.
#include <doctest/doctest.h>

#include <fstream>

#include "tests/spec/spec_test.h"

using namespace mz;
using nlohmann::json;
using test::example_spec;
using test::usage_error;

namespace {

TensorDict run(const Model& m, const std::string& name, torch::Tensor input) {
  m.module->eval();
  torch::NoGradGuard no_grad;
  TensorDict in;
  in.insert(name, std::move(input));
  return m.run(in);
}

// "" when the shapes are equal, else the keys that differ.
std::string diff(const test::Shapes& got, const test::Shapes& want) {
  std::string out;
  for (const auto& [k, v] : want)
    if (!got.count(k) || got.at(k) != v) out += " want:" + k;
  for (const auto& [k, v] : got)
    if (!want.count(k)) out += " extra:" + k;
  return out;
}

// A component of the user's own, usable in specs after one registration line.
struct ScaleImpl : torch::nn::Module {
  explicit ScaleImpl(double f) : factor(f) {}
  torch::Tensor forward(const torch::Tensor& x) { return x * factor; }
  double factor;
};
TORCH_MODULE(Scale);

}  // namespace

MZ_REGISTER_COMPONENT(TestScale, [](spec::Args& a) { return Scale(a.get<double>("factor")); });

TEST_CASE("examples/specs: Faster R-CNN over MobileNetV2 features has torchvision's state dict and runs") {
  const spec::Built built = spec::build(spec::load(example_spec("faster_rcnn_mobilenet_v2.json"), {"backbone.weights=null"}));
  std::ifstream in(std::getenv("MZ_SPEC_ORACLE"));
  const json oracle = json::parse(in);
  test::Shapes want;
  for (const json& entry : oracle.at("faster_rcnn_mobilenet_v2")) want[entry[0].get<std::string>()] = entry[1].get<test::Ints>();
  REQUIRE(want.size() > 300);
  CHECK(diff(test::shapes_of(*built.model.module), want) == "");
  CHECK(test::has_key(*built.model.module, "backbone.0.0.weight"));  // _select_: not backbone.features.0.0
  CHECK(built.model.name == "FasterRCNN");
  CHECK(built.weights.empty());
  CHECK(built.spec["backbone"]["weights"].is_null());
  const TensorDict out = run(built.model, "input", torch::rand({1, 3, 160, 200}));
  CHECK(out.contains("boxes.0"));
  CHECK(out.contains("scores.0"));
}

TEST_CASE("examples/specs: a variant as a delta (_base_), merged, with a reference to a kwarg of its base") {
  const spec::Built built =
      spec::build(spec::load(example_spec("faster_rcnn_mobilenet_v2_small.json"), {"backbone.weights=null"}));
  CHECK(built.spec["num_classes"] == 3);
  CHECK(built.spec["rpn_anchor_generator"] == json::parse(R"({"_target_": "AnchorGenerator",
      "sizes": [[16, 32, 64, 128, 256]], "aspect_ratios": [[0.5, 1.0, 2.0]]})"));
  CHECK(built.spec["rpn_head"]["in_channels"] == 1280);
  const auto shapes = test::shapes_of(*built.model.module);
  CHECK(shapes.at("roi_heads.box_predictor.cls_score.weight") == test::Ints{3, 1024});
  CHECK(shapes.at("rpn.head.conv.0.0.weight") == test::Ints{1280, 1280, 3, 3});
  CHECK(run(built.model, "input", torch::rand({1, 3, 200, 240})).contains("labels.0"));
}

TEST_CASE("examples/specs: RetinaNet over a ResNet-50 FPN") {
  const Model m = build(spec::load(example_spec("retinanet_resnet50_fpn.json"),
                                   {"backbone.weights=null", "min_size=128", "max_size=160"}));
  CHECK(test::has_key(*m.module, "backbone.fpn.extra_blocks.p6.weight"));
  CHECK(test::has_key(*m.module, "head.classification_head.cls_logits.bias"));
  CHECK(test::shapes_of(*m.module).at("head.classification_head.cls_logits.weight") == test::Ints{9 * 91, 256, 3, 3});
  CHECK(run(m, "input", torch::rand({1, 3, 128, 160})).contains("boxes.0"));
}

TEST_CASE("examples/specs: DeepLabV3 over MobileNetV3 features") {
  const Model m = build(spec::load(example_spec("deeplabv3_mobilenet_v3_large.json"), {"backbone.model.weights=null"}));
  CHECK(test::has_key(*m.module, "backbone.16.0.weight"));  // torchvision's deeplabv3_mobilenet_v3_large names
  CHECK(run(m, "input", torch::rand({1, 3, 64, 64})).at("out").sizes() == torch::IntArrayRef{1, 21, 64, 64});
}

TEST_CASE("examples/specs: RoBERTa with a classification head") {
  const spec::Built built =
      spec::build(spec::load(example_spec("roberta_classifier.json"), {"encoder_conf.num_encoder_layers=2"}));
  CHECK(built.spec["head"]["input_dim"] == 768);
  CHECK(test::shapes_of(*built.model.module).at("head.dense.weight") == test::Ints{768, 768});
  const auto out = run(built.model, "input", torch::randint(3, 20, {2, 8}, torch::kLong));
  CHECK(out.at("output").sizes() == torch::IntArrayRef{2, 2});
}

TEST_CASE("examples/specs: wav2vec 2.0 with an utterance classifier") {
  const Model m = build(spec::load(example_spec("wav2vec2_utterance_classifier.json"), {"encoder.weights=null"}));
  CHECK(test::has_key(*m.module, "head.projection.weight"));
  CHECK(run(m, "input", torch::randn({2, 4000})).at("output").sizes() == torch::IntArrayRef{2, 10});
}

TEST_CASE("_replace_ swaps sub-modules by state-dict path; mz::replace does it in C++") {
  const Model m = build(json::parse(R"({"_target_": "resnet18", "weights": null, "_replace_": {
      "layer4": {"_target_": "Sequential", "_args_": [{"_target_": "Identity"}]},
      "fc": {"_target_": "Linear", "in_features": 256, "out_features": 3}}})"));
  CHECK(!test::has_key_starting(*m.module, "layer4."));
  CHECK(run(m, "input", torch::rand({1, 3, 64, 64})).at("output").sizes() == torch::IntArrayRef{1, 3});

  auto model = mobilenet_v2();
  replace(*model, "classifier.1", nn::Linear(1280, 3));  // same type: in place, the parent's member follows
  replace(*model, "classifier.0", torch::nn::Identity());  // another type, inside a Sequential
  CHECK(std::dynamic_pointer_cast<torch::nn::IdentityImpl>(model->classifier->ptr(0)) != nullptr);
  model->eval();
  CHECK(model->forward(torch::rand({1, 3, 64, 64})).sizes() == torch::IntArrayRef{1, 3});
  CHECK(usage_error([&] { replace(*model, "classifier.2", nn::Linear(1, 1)); }) ==
        "classifier.2: torch::nn::SequentialImpl has no sub-module '2' (children: 0, 1)");
  auto resnet = resnet18();
  CHECK(usage_error([&] { replace(*resnet, "layer1.0.conv1", torch::nn::Identity()); })
            .find("layer1.0.conv1: cannot replace a mz::nn::Conv2dImpl inside a ") == 0);
}

TEST_CASE("a component registered in one line (MZ_REGISTER_COMPONENT) is usable in specs") {
  const Model m = build(json::parse(R"({"_target_": "Sequential", "_args_": [
      {"_target_": "Linear", "in_features": 4, "out_features": 2}, {"_target_": "TestScale", "factor": 0}]})"));
  CHECK(torch::equal(run(m, "input", torch::rand({3, 4})).at("output"), torch::zeros({3, 2})));
  const std::vector<std::string> names = spec::component_names();
  CHECK(std::count(names.begin(), names.end(), "TestScale") == 1);
}

TEST_CASE("weights named by a node are loaded and listed (provenance)") {
  auto source = resnet18();
  const auto w = test::local_weights(ResNet18_Weights::IMAGENET1K_V1, test::state_of(*source));
  const spec::Built built = spec::build(json{{"_target_", "resnet18"}, {"weights", w.name()}});
  CHECK(built.weights == std::vector<std::string>{w.name()});
  CHECK(test::same_state(*built.model.module, *source));
}

TEST_CASE("errors name the JSON path and list valid names or kwargs") {
  auto error = [](const char* text) { return usage_error([&] { build(json::parse(text)); }); };
  CHECK(error(R"({"_target_": "FasterRCN"})").find("model._target_: unknown target 'FasterRCN' (did you mean: FasterRCNN") == 0);
  CHECK(error(R"({"_target_": "Linear", "in_features": 4, "out_features": 2, "bais": true})") ==
        "model.bais: unknown kwarg of Linear (valid: bias, in_features, out_features)");
  CHECK(error(R"({"_target_": "Linear", "in_features": 4})") == "model.out_features: missing kwarg of Linear");
  CHECK(error(R"({"_target_": "Linear", "in_features": 4.5, "out_features": 2})") ==
        "model.in_features: wrong type for Linear: cannot be 4.5");
  CHECK(error(R"({"_target_": "Linear", "in_features": "4", "out_features": 2})").find("model.in_features: wrong type for Linear: ") == 0);
  CHECK(error(R"({"_target_": "Linear", "in_features": {"_target_": "Identity"}, "out_features": 2})") ==
        "model.in_features: Linear takes a JSON value here, not a node");
  CHECK(error(R"({"_target_": "resnet18", "num_clases": 3})").find("model.num_clases: unknown kwarg of resnet18 (valid: weights, ") == 0);
  CHECK(error(R"({"_target_": "resnet18", "weights": 3})") == "model.weights: a weights name or null, got 3");
  CHECK(error(R"({"_target_": "FasterRCNN", "backbone": 3})") == "model.backbone: expects a node {\"_target_\": NAME, ...}, got 3");
  CHECK(error(R"({"_target_": "FasterRCNN", "backbone": {"_target_": "Sequential"}, "rpn_anchor_generator": {"_target_": "Identity"}})") ==
        "model.rpn_anchor_generator: expects mz::AnchorGenerator, got Identity (torch::nn::IdentityImpl)");
  CHECK(error(R"({"_target_": "Sequential", "_args_": [{"_target_": "Linear", "in_features": 4, "out_features": 2, "x": 1}]})") ==
        "model._args_.0.x: unknown kwarg of Linear (valid: bias, in_features, out_features)");
  CHECK(error(R"({"_target_": "Identity", "_args_": []})") == "model._args_: Identity takes no positional arguments (_args_)");
  CHECK(error(R"({"_target_": "Identity", "_adapter_": []})") ==
        "model._adapter_: unknown engine key (valid: _target_, _select_, _replace_, _args_, _adapters_)");
  CHECK(error(R"({"_target_": "mobilenet_v2", "_select_": "featurez"})") ==
        "model._select_: mz::MobileNetV2Impl has no sub-module 'featurez' (children: features, classifier)");
  CHECK(error(R"({"_target_": "Identity", "_replace_": {"x": {"_target_": "Identity"}}})") ==
        "model._replace_.x: torch::nn::IdentityImpl has no sub-module 'x' (children: none)");
  CHECK(error(R"({"_target_": "FasterRCNN", "backbone": {"_target_": "Sequential"}, "num_classes": 2,
      "box_predictor": {"_target_": "FastRCNNPredictor", "in_channels": 1024, "num_classes": 2}})") ==
        "model: FasterRCNN: num_classes should be None when box_predictor is specified");
  const Model anchors = build(json::parse(R"({"_target_": "AnchorGenerator"})"));
  CHECK(usage_error([&] { anchors.forward(torch::rand({1})); }) == "model: a AnchorGenerator takes no named inputs");
}

TEST_CASE("untrusted specs: any JSON is built or refused with an exception, never a crash") {
  const char* specs[] = {
      R"({"_target_": null})", R"({"_target_": []})", R"({"_target_": "Sequential", "_args_": 3})",
      R"({"_target_": "Sequential", "_args_": [1, null, "x"]})", R"({"_target_": "Linear", "in_features": -1, "out_features": 2})",
      R"({"_target_": "Conv2d", "in_channels": 1, "out_channels": 1, "kernel_size": [1, 2, 3]})",
      R"({"_target_": "feature_extractor", "model": {"_target_": "Identity"}, "return_nodes": 5})",
      R"({"_target_": "feature_extractor", "model": {"_target_": "resnet18"}, "return_nodes": {"nope": "out"}})",
      R"({"_target_": "MultiScaleRoIAlign", "featmap_names": "0", "output_size": 7, "sampling_ratio": 2})",
      R"({"_target_": "RobertaModel", "encoder_conf": {"vocab_size": "big"}})",
      R"({"_target_": "RobertaModel", "encoder_conf": {"vocabsize": 3}})",
      R"({"_target_": "BackboneWithFPN", "backbone": {"_target_": "Identity"}, "return_layers": [], "in_channels_list": [1], "out_channels": 1})",
      R"({"_target_": "resnet_fpn_backbone", "backbone_name": "resnet5", "weights": null})",
      R"({"_target_": "Identity", "_select_": ""})", R"({"_target_": "Identity", "_replace_": []})"};
  for (const char* text : specs) {
    CAPTURE(text);
    bool refused = false;
    try {
      build(json::parse(text));
    } catch (const std::exception&) {
      refused = true;
    }
    CHECK(refused);
  }
}
