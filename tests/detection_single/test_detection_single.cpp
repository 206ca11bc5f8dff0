// RetinaNet, FCOS, SSD and SSDLite against torchvision 0.14.1, stage by stage, on the fixtures
// tests/detection_single/oracle.py writes (one per case of its table; MZ_DS_FIXTURES names their
// directory): the transform's output, backbone maps from the oracle's batch, head outputs from the
// oracle's maps (rel <= 1e-4), anchors, postprocess_detections on the oracle's head outputs and anchors
// (exact), and the end-to-end detections where the oracle certified the margins. Plus torchvision's
// trainable-layer parameter counts, the legacy RetinaNet head names, and bad input.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "modelzoo/detection/box_coder.h"
#include "modelzoo/detection/fcos.h"
#include "modelzoo/detection/ops.h"
#include "modelzoo/detection/retinanet.h"
#include "modelzoo/detection/ssd.h"
#include "modelzoo/detection/ssdlite.h"
#include "tests/support/support.h"

namespace fs = std::filesystem;
using mz::TensorDict;
using Ratios = std::vector<std::vector<int64_t>>;

namespace {

double rel_err(const torch::Tensor& got, const torch::Tensor& want) {
  if (want.numel() == 0) return got.numel() == 0 ? 0.0 : 1.0;
  const double scale = std::max(want.abs().max().item<double>(), 1e-6);
  return (got.to(torch::kDouble) - want.to(torch::kDouble)).abs().max().item<double>() / scale;
}

void check_close(const std::string& what, const torch::Tensor& got, const torch::Tensor& want, double tol = 1e-4) {
  INFO(what << ": got " << got.sizes() << ", want " << want.sizes());
  REQUIRE(got.sizes() == want.sizes());
  CHECK(rel_err(got, want) <= tol);
}

void check_equal(const std::string& what, const torch::Tensor& got, const torch::Tensor& want) {
  INFO(what << ": got " << got.sizes() << " " << got.scalar_type() << ", want " << want.sizes() << " "
            << want.scalar_type());
  REQUIRE(got.sizes() == want.sizes());
  CHECK((got.scalar_type() == want.scalar_type()));
  CHECK(torch::equal(got, want));
}

struct Fixture {
  std::string name;
  nlohmann::json meta;
  TensorDict t;
  std::vector<torch::Tensor> list(const std::string& prefix) const {
    std::vector<torch::Tensor> out;
    for (size_t i = 0; t.contains(prefix + std::to_string(i)); ++i) out.push_back(t.at(prefix + std::to_string(i)));
    return out;
  }
  std::vector<mz::ImageSize> image_sizes() const {
    std::vector<mz::ImageSize> out;
    auto s = t.at("transform.image_sizes");
    for (int64_t i = 0; i < s.size(0); ++i) out.push_back({s[i][0].item<int64_t>(), s[i][1].item<int64_t>()});
    return out;
  }
};

std::vector<Fixture> fixtures() {
  const char* dir = std::getenv("MZ_DS_FIXTURES");
  REQUIRE_MESSAGE(dir != nullptr, "MZ_DS_FIXTURES names the directory oracle.py wrote");
  std::vector<Fixture> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".json") continue;
    Fixture f;
    f.name = e.path().stem().string();
    std::ifstream in(e.path());
    in >> f.meta;
    auto path = e.path();
    f.t = mz::read_checkpoint(path.replace_extension(".safetensors").string());
    out.push_back(std::move(f));
  }
  std::sort(out.begin(), out.end(), [](const Fixture& a, const Fixture& b) { return a.name < b.name; });
  REQUIRE(out.size() >= 10);
  return out;
}

TensorDict state_of(const TensorDict& t) {
  TensorDict out;
  for (const auto& item : t)
    if (item.key().rfind("state.", 0) == 0) out.insert(item.key().substr(6), item.value());
  return out;
}

// The model of a fixture: the builder with the fixture's options (and the weights whose configuration
// it has), architecture only, then the oracle's state dict, loaded strictly.
mz::Model build(const Fixture& f) {
  std::optional<mz::Model> m;
  {
    mz::ArchitectureOnly uninitialised;
    m = mz::get_model(f.meta.at("model"), f.meta.at("weights"), nlohmann::json::parse(f.meta.at("options").get<std::string>()));
  }
  const auto report = mz::load_state(*m->module, state_of(f.t));
  INFO(report.summary());
  REQUIRE(report.ok());
  m->module->eval();
  return *m;
}

void check_detections(const std::string& what, const std::vector<mz::Detection>& got, const Fixture& f,
                      const std::string& prefix, bool exact) {
  const auto boxes = f.list(prefix + ".boxes."), scores = f.list(prefix + ".scores."), labels = f.list(prefix + ".labels.");
  REQUIRE(got.size() == boxes.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const std::string w = what + " image " + std::to_string(i);
    if (exact) {
      check_equal(w + " boxes", got[i].boxes, boxes[i]);
      check_equal(w + " scores", got[i].scores, scores[i]);
      check_equal(w + " labels", got[i].labels, labels[i]);
    } else {
      // Detections whose scores differ by less than the tolerance may come in either order: compare them
      // sorted by label, then x1.
      INFO(w);
      REQUIRE(got[i].labels.sizes() == labels[i].sizes());
      auto order = [](const torch::Tensor& l, const torch::Tensor& b) {
        return (l.to(torch::kDouble) * 1e6 + b.select(1, 0).to(torch::kDouble)).argsort();
      };
      const auto g = order(got[i].labels, got[i].boxes), r = order(labels[i], boxes[i]);
      CHECK(torch::equal(got[i].labels.index({g}), labels[i].index({r})));
      // Boxes within 1e-5 of their largest coordinate (8e-3 px at 800 px): float32 rounding in another order of
      // the same operations moves them (mz's eager norms, applied in place in one pass, moved those of
      // retinanet_resnet50_fpn_v2 by 1.3e-3 px).
      const double extent = std::max(boxes[i].abs().max().item<double>(), 1.0);
      CHECK((got[i].boxes.index({g}) - boxes[i].index({r})).abs().max().item<double>() <= 1e-5 * extent);
      CHECK((got[i].scores.index({g}) - scores[i].index({r})).abs().max().item<double>() <= 1e-4);
    }
  }
}

// The stages every single-stage detector shares, over its own head outputs type.
template <class Impl, class HeadOutputs>
void check_stages(Impl& model, const Fixture& f, const std::vector<std::string>& head_names,
                  const std::vector<torch::Tensor HeadOutputs::*>& head_fields) {
  torch::NoGradGuard no_grad;
  const auto images = f.list("input.");
  mz::ImageList list = model.transform->forward(images);
  check_close("transform", list.tensors, f.t.at("transform.tensors"), 1e-6);
  CHECK((list.image_sizes == f.image_sizes()));

  const auto maps = model.features(f.t.at("transform.tensors"));
  const auto want_maps = f.list("features.");
  REQUIRE(maps.size() == want_maps.size());
  for (size_t i = 0; i < maps.size(); ++i) check_close("features." + std::to_string(i), maps[i], want_maps[i]);

  HeadOutputs head = model.head->forward(want_maps);
  HeadOutputs oracle_head;
  for (size_t i = 0; i < head_names.size(); ++i) {
    check_close("head." + head_names[i], head.*head_fields[i], f.t.at("head." + head_names[i]));
    oracle_head.*head_fields[i] = f.t.at("head." + head_names[i]);
  }

  mz::ImageList oracle_list{f.t.at("transform.tensors"), f.image_sizes()};
  const auto anchors = model.anchor_generator->forward(oracle_list, want_maps);
  const auto want_anchors = f.list("anchors.");
  REQUIRE(anchors.size() == want_anchors.size());
  for (size_t i = 0; i < anchors.size(); ++i) check_close("anchors." + std::to_string(i), anchors[i], want_anchors[i], 1e-7);

  if constexpr (std::is_same_v<HeadOutputs, mz::SSDHeadOutputs>) {
    check_detections("postprocess", model.postprocess_detections(oracle_head, want_anchors, f.image_sizes()), f, "post",
                     true);
  } else {
    const auto per_level_sizes = [&] {
      std::vector<int64_t> n;
      int64_t hw = 0;
      for (const auto& m : want_maps) hw += m.size(2) * m.size(3);
      const int64_t a = oracle_head.cls_logits.size(1) / hw;
      for (const auto& m : want_maps) n.push_back(m.size(2) * m.size(3) * a);
      return n;
    }();
    check_detections("postprocess",
                     model.postprocess_detections(oracle_head, want_anchors, per_level_sizes, f.image_sizes()), f, "post",
                     true);
  }
  if (f.meta.at("certified") == "1") check_detections("end to end", model.forward(images), f, "det", false);
}

// torchvision's trainable parameters for trainable_backbone_layers = 0, 1, ... (test_models.py).
template <class Options, class Builder>
void check_trainable(Builder builder, const std::vector<int64_t>& counts) {
  for (size_t k = 0; k < counts.size(); ++k) {
    mz::ArchitectureOnly uninitialised;  // the backbone weights are named (so layers freeze) but not fetched
    Options o;
    o.trainable_backbone_layers = static_cast<int64_t>(k);
    auto model = builder(std::nullopt, o);
    int64_t trainable = 0;
    for (const auto& p : model->parameters()) trainable += p.requires_grad() ? 1 : 0;
    INFO("trainable_backbone_layers " << k);
    CHECK(trainable == counts[k]);
  }
}

}  // namespace

TEST_CASE("every stage matches torchvision, in BN, FrozenBN, eps-0 and old-name configurations") {
  for (const auto& f : fixtures()) {
    SUBCASE(f.name.c_str()) {
      INFO(f.name << " (seed " << f.meta.at("seed").get<std::string>() << ", certified "
                  << f.meta.at("certified").get<std::string>() << ")");
      mz::Model m = build(f);
      {  // Model::dense, end to end: the oracle's head outputs, compared always (they are continuous)
        torch::NoGradGuard no_grad;
        mz::TensorDict inputs;
        const auto images = f.list("input.");
        for (size_t i = 0; i < images.size(); ++i) inputs.insert("input." + std::to_string(i), images[i]);
        REQUIRE(m.dense);
        const mz::TensorDict dense = m.dense(inputs);
        size_t heads = 0;
        for (const auto& item : f.t) heads += item.key().rfind("head.", 0) == 0;
        CHECK(dense.size() == heads);
        for (const auto& item : dense) check_close("dense " + item.key(), item.value(), f.t.at("head." + item.key()));
      }
      if (auto* ssd = dynamic_cast<mz::SSDImpl*>(m.module.get())) {
        check_stages<mz::SSDImpl, mz::SSDHeadOutputs>(*ssd, f, {"bbox_regression", "cls_logits"},
                                                      {&mz::SSDHeadOutputs::bbox_regression,
                                                       &mz::SSDHeadOutputs::cls_logits});
      } else if (auto* retina = dynamic_cast<mz::RetinaNetImpl*>(m.module.get())) {
        check_stages<mz::RetinaNetImpl, mz::RetinaNetHeadOutputs>(*retina, f, {"cls_logits", "bbox_regression"},
                                                                  {&mz::RetinaNetHeadOutputs::cls_logits,
                                                                   &mz::RetinaNetHeadOutputs::bbox_regression});
      } else if (auto* fcos = dynamic_cast<mz::FCOSImpl*>(m.module.get())) {
        check_stages<mz::FCOSImpl, mz::FCOSHeadOutputs>(
            *fcos, f, {"cls_logits", "bbox_regression", "bbox_ctrness"},
            {&mz::FCOSHeadOutputs::cls_logits, &mz::FCOSHeadOutputs::bbox_regression,
             &mz::FCOSHeadOutputs::bbox_ctrness});
      } else {
        FAIL("no stage check for " << f.meta.at("model"));
      }
    }
  }
}

// torchvision's SSD.postprocess_detections (models/detection/ssd.py), op for op.
std::vector<mz::Detection> upstream_ssd_postprocess(const mz::SSDOptions& o, const mz::SSDHeadOutputs& head,
                                                    const torch::Tensor& anchors, const mz::ImageSize& size) {
  const mz::BoxCoder box_coder({10.0, 10.0, 5.0, 5.0});
  const torch::Tensor scores = torch::softmax(head.cls_logits, -1)[0];
  const torch::Tensor boxes =
      mz::ops::clip_boxes_to_image(box_coder.decode_single(head.bbox_regression[0], anchors), {size[0], size[1]});
  std::vector<torch::Tensor> all_boxes, all_scores, all_labels;
  for (int64_t label = 1; label < scores.size(-1); ++label) {
    torch::Tensor score = scores.select(1, label);
    const torch::Tensor keep = score > o.score_thresh;
    score = score.index({keep});
    const auto [top, idxs] = score.topk(std::min(o.topk_candidates, score.size(0)));
    all_boxes.push_back(boxes.index({keep}).index({idxs}));
    all_scores.push_back(top);
    all_labels.push_back(torch::full_like(top, label, torch::kLong));
  }
  const torch::Tensor b = torch::cat(all_boxes), s = torch::cat(all_scores), l = torch::cat(all_labels);
  const torch::Tensor keep = mz::ops::batched_nms(b, s, l, o.nms_thresh).slice(0, 0, o.detections_per_img);
  mz::Detection d;
  d.boxes = b.index({keep});
  d.scores = s.index({keep});
  d.labels = l.index({keep});
  return {d};
}

TEST_CASE("SSD's per-class selection equals upstream's ops: tied scores, a threshold between a float and its double") {
  mz::ArchitectureOnly uninitialised;
  mz::SSDLite320MobileNetV3LargeOptions o;
  o.num_classes = 6;
  o.weights_backbone.reset();
  auto model = mz::ssdlite320_mobilenet_v3_large({}, o);
  torch::manual_seed(11);
  int cases = 0;
  for (int64_t anchors : {1, 40, 700})
    for (int64_t topk : {3, 50, 400}) {
      mz::SSDHeadOutputs head;
      head.cls_logits = (torch::randn({1, anchors, 6}) * 2).round() / 2;  // few distinct scores: ties
      head.bbox_regression = torch::randn({1, anchors, 4}) * 0.5;
      const torch::Tensor xy = torch::rand({anchors, 2}) * 200;
      const torch::Tensor priors = torch::cat({xy, xy + torch::rand({anchors, 2}) * 80 + 1}, 1);
      const float some_score = torch::softmax(head.cls_logits, -1)[0][0][1].item<float>();
      // Just below one score as a double, that very score as a float: Tensor > Scalar compares in
      // float, so upstream drops it (a double comparison would keep it).
      for (double thresh : {0.0, std::nextafter(static_cast<double>(some_score), 0.0), 0.1}) {
        model->options.score_thresh = thresh;
        model->options.topk_candidates = topk;
        const auto got = model->postprocess_detections(head, {priors}, {{240, 200}});
        const auto want = upstream_ssd_postprocess(model->options, head, priors, {240, 200});
        CAPTURE(anchors);
        CAPTURE(topk);
        CAPTURE(thresh);
        CHECK(torch::equal(got[0].boxes, want[0].boxes));
        CHECK(torch::equal(got[0].scores, want[0].scores));
        CHECK(torch::equal(got[0].labels, want[0].labels));
        if (anchors > 1) CHECK(want[0].scores.numel() > 0);
        ++cases;
      }
    }
  CHECK(cases == 27);
}

TEST_CASE("trainable-parameter counts equal torchvision's test_detection_model_trainable_backbone_layers") {
  check_trainable<mz::RetinaNetResNet50FPNOptions>(&mz::retinanet_resnet50_fpn, {36, 46, 65, 78, 88, 89});
  mz::RetinaNetResNet50FPNV2Options v2;
  CHECK_FALSE(v2.weights_backbone.has_value());
  check_trainable<mz::RetinaNetResNet50FPNV2Options>(
      [](std::optional<mz::RetinaNet_ResNet50_FPN_V2_Weights> w, mz::RetinaNetResNet50FPNV2Options o) {
        o.weights_backbone = mz::ResNet50_Weights::IMAGENET1K_V1;
        return mz::retinanet_resnet50_fpn_v2(w, o);
      },
      {44, 74, 131, 170, 200, 203});
  check_trainable<mz::FCOSResNet50FPNOptions>(&mz::fcos_resnet50_fpn, {54, 64, 83, 96, 106, 107});
  check_trainable<mz::SSD300VGG16Options>(&mz::ssd300_vgg16, {45, 51, 57, 63, 67, 71});
  check_trainable<mz::SSDLite320MobileNetV3LargeOptions>(&mz::ssdlite320_mobilenet_v3_large,
                                                         {96, 99, 138, 200, 239, 257, 266});
}

TEST_CASE("builders follow torchvision's weights semantics") {
  mz::ArchitectureOnly uninitialised;
  SUBCASE("weights force num_classes") {
    mz::RetinaNetResNet50FPNOptions o;
    o.num_classes = 5;
    CHECK_THROWS_WITH_AS(mz::retinanet_resnet50_fpn(mz::RetinaNet_ResNet50_FPN_Weights::COCO_V1, o),
                         "RetinaNet_ResNet50_FPN_Weights.COCO_V1: option 'num_classes' must be 91, got 5",
                         mz::UsageError);
  }
  SUBCASE("trainable_backbone_layers is checked when something is pretrained") {
    mz::SSD300VGG16Options o;
    o.trainable_backbone_layers = 6;
    CHECK_THROWS_AS(mz::ssd300_vgg16({}, o), mz::UsageError);
  }
  SUBCASE("SSDLite without backbone weights has the reduced tail (num_params of the weights)") {
    mz::SSDLite320MobileNetV3LargeOptions o;
    o.weights_backbone.reset();
    CHECK(mz::nn::num_params(*mz::ssdlite320_mobilenet_v3_large({}, o)) == 3440060);
  }
}

TEST_CASE("bad input is a typed error naming the problem") {
  mz::ArchitectureOnly uninitialised;
  auto backbone = mz::ops::SequentialBlock(mz::nn::Conv2d(torch::nn::Conv2dOptions(3, 8, 3).stride(2)));
  SUBCASE("DefaultBoxGenerator: steps per level") {
    CHECK_THROWS_WITH_AS(mz::DefaultBoxGenerator(Ratios{{2}, {2, 3}}, 0.15, 0.9, {}, {8}),
                         "DefaultBoxGenerator: aspect_ratios and steps should have the same length", mz::UsageError);
  }
  SUBCASE("SSD: backbone levels and anchor levels") {
    CHECK_THROWS_WITH_AS(mz::SSD(backbone, mz::DefaultBoxGenerator(Ratios{{2}, {2}}), {64, 64}, 3),
                         "SSD: the backbone gives 1 feature maps, the anchor generator has aspect ratios for 2",
                         mz::UsageError);
  }
  SUBCASE("FCOS: one anchor per location") {
    CHECK_THROWS_WITH_AS(mz::FCOS(backbone, 3, {}, mz::AnchorGenerator({{32}}, {{0.5, 1.0}})),
                         "FCOS: the anchor generator must give one anchor per location, got 2", mz::UsageError);
  }
  SUBCASE("RetinaNet: levels that disagree on channels") {
    struct TwoLevelsImpl : torch::nn::Module {
      TensorDict forward(const torch::Tensor& x) {
        TensorDict out;
        out.insert("a", torch::zeros({x.size(0), 8, 4, 4}));
        out.insert("b", torch::zeros({x.size(0), 16, 2, 2}));
        return out;
      }
    };
    TORCH_MODULE(TwoLevels);
    CHECK_THROWS_WITH_AS(mz::RetinaNet(TwoLevels(), 3), "RetinaNet: the backbone's levels disagree on channels: 'a' has 8, 'b' has 16",
                         mz::UsageError);
  }
  SUBCASE("an image that is not 3 x H x W float") {
    mz::SSD model(backbone, mz::DefaultBoxGenerator(Ratios{{2}}), {64, 64}, 3);
    model->eval();
    CHECK_THROWS_AS(model->forward({torch::rand({1, 64, 64})}), mz::UsageError);
    CHECK_THROWS_AS(model->forward({}), mz::UsageError);
  }
}
