// The README's spec example (issue 15): a model from JSON, a variant as a delta, a part swapped (tests/docs checks it).
#include <modelzoo/modelzoo.h>

int main() {
  // examples/specs/faster_rcnn_mobilenet_v2.json, without the backbone's weights (nothing to download here)
  mz::spec::register_spec("detector", nlohmann::json::parse(R"({
    "_target_": "FasterRCNN",
    "backbone": {"_target_": "mobilenet_v2", "weights": null, "_select_": "features"},
    "out_channels": 1280,
    "num_classes": 2,
    "rpn_anchor_generator": {"_target_": "AnchorGenerator", "sizes": [[32, 64, 128, 256, 512]],
                             "aspect_ratios": [[0.5, 1.0, 2.0]]},
    "box_roi_pool": {"_target_": "MultiScaleRoIAlign", "featmap_names": ["0"], "output_size": 7, "sampling_ratio": 2}
  })"));
  // A variant as a delta, plus a command-line style override: `mz build detector min_size=320 num_classes=3`.
  nlohmann::json variant = {{"_base_", "detector"}, {"min_size", 320}};
  mz::Model model = mz::build(mz::spec::resolve(variant, {"num_classes=3"}));
  // Swap a part of the built model by its state-dict path.
  mz::replace(*model.module, "roi_heads.box_predictor", mz::FastRCNNPredictor(1024, 5));
  model.module->eval();
  mz::TensorDict out = model.forward(torch::rand({1, 3, 240, 320}));   // boxes.0, labels.0, scores.0
  auto* detector = dynamic_cast<mz::FasterRCNNImpl*>(model.module.get());
  return detector && detector->roi_heads->box_predictor->cls_score->weight.size(0) == 5 && out.contains("boxes.0") ? 0 : 1;
}
