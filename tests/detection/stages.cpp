// mz_detection_stages MODEL OPTIONS_JSON LIKE CHECKPOINT ORACLE.safetensors OUT.safetensors
//
// Runs a detector's stages, each on the oracle's own inputs to that stage, for parity_detection.py:
// builds MODEL (the configuration of weight LIKE, or the plain one when LIKE is "-") without init,
// loads CHECKPOINT strictly, and writes what each stage gives. Keys (i: image, l: level, k: order):
//   t.tensors, t.sizes                 transform(image.<i>)
//   feat.<k>.<name>                    backbone(oracle t.tensors)
//   rpn.logits.<l>, rpn.deltas.<l>     rpn.head(oracle feats)
//   rpn.proposals.<i>, rpn.scores.<i>  filter_proposals over the oracle's logits and deltas
//   box.class_logits, box.box_regression   roi_heads' box branch on the oracle's proposals
//   det.<field>.<i>                    postprocess_detections on the oracle's box outputs, masks and
//                                      keypoints from the oracle's mask.logits / kp.logits
//   mask.logits, kp.logits             the mask / keypoint branch on the oracle's detections
//   final.<field>.<i>                  the whole model on image.<i>
// Model classes other than the R-CNN family are added to the table in run_stages.
#include <iostream>

#include "modelzoo/detection/faster_rcnn.h"
#include "modelzoo/modelzoo.h"

using namespace mz;

namespace {

std::vector<torch::Tensor> numbered(const TensorDict& d, const std::string& prefix) {
  std::vector<torch::Tensor> out;
  for (int i = 0; d.contains(prefix + std::to_string(i)); ++i) out.push_back(d.at(prefix + std::to_string(i)));
  return out;
}

// feat.<k>.<name> entries in k order, as the backbone's named maps.
TensorDict features_of(const TensorDict& d) {
  TensorDict out;
  for (int k = 0;; ++k) {
    const std::string prefix = "feat." + std::to_string(k) + ".";
    bool found = false;
    for (const auto& item : d)
      if (item.key().rfind(prefix, 0) == 0) {
        out.insert(item.key().substr(prefix.size()), item.value());
        found = true;
      }
    if (!found) return out;
  }
}

std::vector<ImageSize> sizes_of(const torch::Tensor& t) {
  std::vector<ImageSize> out;
  for (std::int64_t i = 0; i < t.size(0); ++i) out.push_back({t[i][0].item<std::int64_t>(), t[i][1].item<std::int64_t>()});
  return out;
}

void put_detections(TensorDict& out, const std::string& prefix, const std::vector<Detection>& dets) {
  for (const auto& item : detections_to_dict(dets)) out.insert(prefix + item.key(), item.value());
}

void rcnn_stages(GeneralizedRCNNImpl& m, const TensorDict& oracle, TensorDict& out) {
  const auto images = numbered(oracle, "image.");
  const ImageList il = m.transform->forward(images);
  out.insert("t.tensors", il.tensors);
  std::vector<std::int64_t> flat;
  for (const auto& s : il.image_sizes) flat.insert(flat.end(), s.begin(), s.end());
  out.insert("t.sizes", torch::tensor(flat).view({-1, 2}));

  const ImageList oil{oracle.at("t.tensors"), sizes_of(oracle.at("t.sizes"))};
  const TensorDict feats = m.features(oil.tensors);
  int k = 0;
  for (const auto& item : feats) out.insert("feat." + std::to_string(k++) + "." + item.key(), item.value());

  const TensorDict ofeats = features_of(oracle);
  const auto maps = ofeats.values();
  const auto [logits, deltas] = m.rpn->head->forward(maps);
  for (std::size_t l = 0; l < logits.size(); ++l) {
    out.insert("rpn.logits." + std::to_string(l), logits[l]);
    out.insert("rpn.deltas." + std::to_string(l), deltas[l]);
  }
  const auto ologits = numbered(oracle, "rpn.logits."), odeltas = numbered(oracle, "rpn.deltas.");
  const auto anchors = m.rpn->anchor_generator->forward(oil, maps);
  std::vector<std::int64_t> per_level;
  for (const auto& o : ologits) per_level.push_back(o.size(1) * o.size(2) * o.size(3));
  const auto [objectness, flat_deltas] = concat_box_prediction_layers(ologits, odeltas);
  const auto proposals = m.rpn->box_coder.decode(flat_deltas, anchors).view({static_cast<std::int64_t>(anchors.size()), -1, 4});
  const auto [boxes, scores] = m.rpn->filter_proposals(proposals, objectness, oil.image_sizes, per_level);
  for (std::size_t i = 0; i < boxes.size(); ++i) {
    out.insert("rpn.proposals." + std::to_string(i), boxes[i]);
    out.insert("rpn.scores." + std::to_string(i), scores[i]);
  }

  const auto oproposals = numbered(oracle, "rpn.proposals.");
  const auto [class_logits, box_regression] = m.roi_heads->box_logits(ofeats, oproposals, oil.image_sizes);
  out.insert("box.class_logits", class_logits);
  out.insert("box.box_regression", box_regression);
  auto dets = m.roi_heads->postprocess_detections(oracle.at("box.class_logits"), oracle.at("box.box_regression"),
                                                  oproposals, oil.image_sizes);
  const auto det_boxes = numbered(oracle, "det.boxes."), det_labels = numbered(oracle, "det.labels.");
  if (m.roi_heads->has_mask()) {
    out.insert("mask.logits", m.roi_heads->mask_logits(ofeats, det_boxes, oil.image_sizes));
    const auto probs = maskrcnn_inference(oracle.at("mask.logits"), det_labels);
    for (std::size_t i = 0; i < dets.size(); ++i) dets[i].masks = probs[i];
  }
  if (m.roi_heads->has_keypoint()) {
    out.insert("kp.logits", m.roi_heads->keypoint_logits(ofeats, det_boxes, oil.image_sizes));
    std::vector<std::int64_t> per_image;
    for (const auto& b : det_boxes) per_image.push_back(b.size(0));
    const auto heatmaps = oracle.at("kp.logits").split_with_sizes(per_image, 0);
    for (std::size_t i = 0; i < dets.size(); ++i) {
      auto [kp, kp_scores] = heatmaps_to_keypoints(heatmaps[i], det_boxes[i]);
      dets[i].keypoints = kp;
      dets[i].keypoints_scores = kp_scores;
    }
  }
  put_detections(out, "det.", dets);
  put_detections(out, "final.", m.forward(images));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 7) {
    std::cerr << "usage: mz_detection_stages MODEL OPTIONS_JSON LIKE CHECKPOINT ORACLE OUT\n";
    return 2;
  }
  try {
    torch::manual_seed(0);
    const std::string like = std::string(argv[3]) == "-" ? "" : argv[3];
    std::optional<Model> model;
    {
      ArchitectureOnly uninitialised;
      model = get_model(argv[1], like, nlohmann::json::parse(argv[2]));
    }
    load_checkpoint(*model->module, argv[4]);
    model->module->eval();
    torch::NoGradGuard no_grad;
    const TensorDict oracle = read_checkpoint(argv[5]);
    TensorDict out;
    if (auto* rcnn = dynamic_cast<GeneralizedRCNNImpl*>(model->module.get())) {
      rcnn_stages(*rcnn, oracle, out);
    } else {
      std::cerr << argv[1] << ": no stages for this model class\n";
      return 3;
    }
    save_safetensors(argv[6], out);
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
  return 0;
}
