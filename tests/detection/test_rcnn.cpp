// Builder semantics of the R-CNN family that the parity script does not see: torchvision's
// trainable-parameter counts, FrozenBatchNorm2d and eps 0 exactly where torchvision puts them,
// num_classes from the weights, composition over any backbone, and bad input as typed errors.
#include <doctest/doctest.h>

#include "tests/support/support.h"

using namespace mz;

namespace {

std::int64_t trainable(const torch::nn::Module& m) {
  std::int64_t n = 0;
  for (const auto& p : m.parameters())
    if (p.requires_grad()) ++n;
  return n;
}

template <class Fn>
std::vector<std::int64_t> counts(Fn build, int max) {
  std::vector<std::int64_t> out;
  ArchitectureOnly no_download;  // weights_backbone configures the model; nothing is fetched
  for (int k = 0; k <= max; ++k) out.push_back(trainable(*build(k)));
  return out;
}

std::vector<double> frozen_eps(torch::nn::Module& m) {
  std::vector<double> eps;
  nn::for_each<nn::FrozenBatchNorm2dImpl>(m, [&](nn::FrozenBatchNorm2dImpl& b) { eps.push_back(b.options.eps()); });
  return eps;
}

}  // namespace

TEST_CASE("trainable_backbone_layers gives torchvision's trainable-parameter counts (test_models.py)") {
  using V = std::vector<std::int64_t>;
  CHECK(counts([](int k) { return fasterrcnn_resnet50_fpn({}, {.weights_backbone = ResNet50_Weights::IMAGENET1K_V1,
                                                                 .trainable_backbone_layers = k}); }, 5) ==
        V{30, 40, 59, 72, 82, 83});
  CHECK(counts([](int k) { return fasterrcnn_resnet50_fpn_v2({}, {.weights_backbone = ResNet50_Weights::IMAGENET1K_V1,
                                                                    .trainable_backbone_layers = k}); }, 5) ==
        V{50, 80, 137, 176, 206, 209});
  CHECK(counts([](int k) { return maskrcnn_resnet50_fpn({}, {.weights_backbone = ResNet50_Weights::IMAGENET1K_V1,
                                                               .trainable_backbone_layers = k}); }, 5) ==
        V{42, 52, 71, 84, 94, 95});
  CHECK(counts([](int k) { return keypointrcnn_resnet50_fpn({}, {.weights_backbone = ResNet50_Weights::IMAGENET1K_V1,
                                                                   .trainable_backbone_layers = k}); }, 5) ==
        V{48, 58, 77, 90, 100, 101});
  const V mobilenet = {22, 23, 44, 70, 91, 97, 100};
  CHECK(counts([](int k) { return fasterrcnn_mobilenet_v3_large_fpn(
                               {}, {.weights_backbone = MobileNet_V3_Large_Weights::IMAGENET1K_V1,
                                    .trainable_backbone_layers = k}); }, 6) == mobilenet);
  CHECK(counts([](int k) { return fasterrcnn_mobilenet_v3_large_320_fpn(
                               {}, {.weights_backbone = MobileNet_V3_Large_Weights::IMAGENET1K_V1,
                                    .trainable_backbone_layers = k}); }, 6) == mobilenet);
  // Without pretrained weights every layer trains, whatever was asked (torchvision warns).
  ArchitectureOnly no_init;
  CHECK(trainable(*fasterrcnn_resnet50_fpn({}, {.weights_backbone = std::nullopt, .trainable_backbone_layers = 1})) ==
        trainable(*fasterrcnn_resnet50_fpn({}, {.weights_backbone = std::nullopt})));
  CHECK_THROWS_WITH_AS(fasterrcnn_resnet50_fpn({}, {.trainable_backbone_layers = 6}),
                       doctest::Contains("[0,5], got 6"), UsageError);
}

TEST_CASE("weights choose FrozenBatchNorm2d, num_classes, and eps 0 only for the v1 COCO_V1 weights") {
  ArchitectureOnly no_download;
  auto plain = fasterrcnn_resnet50_fpn({}, {.weights_backbone = std::nullopt});
  CHECK(frozen_eps(*plain).empty());
  auto like = fasterrcnn_resnet50_fpn(FasterRCNN_ResNet50_FPN_Weights::COCO_V1);
  const auto eps = frozen_eps(*like);
  CHECK(eps.size() == 53);
  CHECK(std::all_of(eps.begin(), eps.end(), [](double e) { return e == 0.0; }));
  CHECK(nn::num_params(*like) == FasterRCNN_ResNet50_FPN_Weights::COCO_V1.meta().num_params);
  auto legacy = keypointrcnn_resnet50_fpn(KeypointRCNN_ResNet50_FPN_Weights::COCO_LEGACY);
  const auto legacy_eps = frozen_eps(*legacy);
  CHECK(std::all_of(legacy_eps.begin(), legacy_eps.end(), [](double e) { return e == 1e-5; }));
  auto v1 = keypointrcnn_resnet50_fpn(KeypointRCNN_ResNet50_FPN_Weights::COCO_V1);
  CHECK(frozen_eps(*v1).front() == 0.0);
  auto fcos_like_v2 = fasterrcnn_resnet50_fpn_v2(FasterRCNN_ResNet50_FPN_V2_Weights::COCO_V1);
  CHECK(frozen_eps(*fcos_like_v2).empty());  // v2: BatchNorm2d everywhere
  CHECK_THROWS_WITH_AS(fasterrcnn_resnet50_fpn(FasterRCNN_ResNet50_FPN_Weights::COCO_V1, {.num_classes = 3}),
                       doctest::Contains("'num_classes' must be 91"), UsageError);
  CHECK(legacy->roi_heads->box_predictor->cls_score->options.out_features() == 2);
}

TEST_CASE("FasterRCNN over any backbone; bad input is a typed error naming the problem") {
  auto backbone = mobilenet_v2()->features;
  auto model = FasterRCNN(backbone, {.num_classes = 3, .min_size = {96}, .max_size = 128,
                                     .rpn_anchor_generator = AnchorGenerator({{32, 64}}, {{0.5, 1.0, 2.0}}),
                                     .box_roi_pool = MultiScaleRoIAlign({"0"}, 7, 2)});
  CHECK(test::has_key(*model, "backbone.0.0.weight"));
  CHECK(test::has_key(*model, "rpn.head.conv.0.0.weight"));
  CHECK(model->rpn->head->cls_logits->options.out_channels() == 6);
  model->eval();
  torch::NoGradGuard no_grad;
  const auto out = model->forward({torch::rand({3, 90, 120}), torch::rand({3, 70, 50})});
  REQUIRE(out.size() == 2);
  CHECK(out[0].boxes.size(1) == 4);
  CHECK((out[0].labels.scalar_type() == torch::kInt64));
  CHECK_THROWS_WITH_AS(model->forward({}), doctest::Contains("empty"), UsageError);
  CHECK_THROWS_WITH_AS(model->forward({torch::rand({90, 120})}), doctest::Contains("3 x H x W"), UsageError);
  CHECK_THROWS_WITH_AS(model->run(TensorDict()), doctest::Contains("no images"), UsageError);

  CHECK_THROWS_WITH_AS(FasterRCNN(backbone, {.num_classes = 3, .out_channels = 1280,
                                             .rpn_anchor_generator = AnchorGenerator({{32, 64}}, {{0.5, 1.0}}),
                                             .rpn_head = RPNHead(1280, 6)}),
                       doctest::Contains("anchors per location"), UsageError);
  auto uneven = feature_extractor(resnet18(), {{"layer1", "0"}, {"layer2", "1"}});
  CHECK_THROWS_WITH_AS(FasterRCNN(uneven, {.num_classes = 3}),
                       "FasterRCNN: the backbone's levels disagree on channels: '0' has 64, '1' has 128", UsageError);
  auto wrong_names = FasterRCNN(backbone, {.num_classes = 3, .min_size = {96}, .max_size = 128,
                                           .rpn_anchor_generator = AnchorGenerator({{32, 64}}, {{0.5, 1.0, 2.0}}),
                                           .box_roi_pool = MultiScaleRoIAlign({"0", "p5"}, 7, 2)});
  wrong_names->eval();
  CHECK_THROWS_WITH_AS(wrong_names->forward({torch::rand({3, 64, 64})}), doctest::Contains("'p5'"), UsageError);
  CHECK_THROWS_WITH_AS(FasterRCNN(backbone, {.out_channels = 1280}), doctest::Contains("num_classes"), UsageError);
}
