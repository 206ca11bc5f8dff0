// The README's "Compose your own model" example (tests/docs checks that they stay identical).
#include <modelzoo/modelzoo.h>

int main() {
  auto backbone = mz::feature_extractor(mz::mobilenet_v3_large(), {{"features.16", "out"}});
  auto model = mz::DeepLabV3(backbone, mz::DeepLabHead(960, 5));
  model->eval();
  auto out = model->forward(torch::randn({1, 3, 96, 96}));   // out.at("out") is [1, 5, 96, 96]
  return out.at("out").sizes() == torch::IntArrayRef{1, 5, 96, 96} ? 0 : 1;
}
