// The README's detection example (issue 12's seed): Faster R-CNN over any backbone (tests/docs checks it).
#include <modelzoo/modelzoo.h>

int main() {
  auto backbone = mz::mobilenet_v2()->features;   // or mz::mobilenet_v2(mz::MobileNet_V2_Weights::DEFAULT)
  auto anchors = mz::AnchorGenerator({{32, 64, 128, 256, 512}}, {{0.5, 1.0, 2.0}});
  auto pooler = mz::MultiScaleRoIAlign({"0"}, 7, 2);
  auto model = mz::FasterRCNN(backbone, {.num_classes = 2, .out_channels = 1280,
                                         .rpn_anchor_generator = anchors, .box_roi_pool = pooler});
  model->eval();
  auto detections = model->forward({torch::rand({3, 300, 400}), torch::rand({3, 500, 400})});
  return detections.size() == 2 && detections[1].boxes.size(1) == 4 ? 0 : 1;
}
