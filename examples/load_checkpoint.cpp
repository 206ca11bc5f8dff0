// Build a ResNet-50 and load a checkpoint file (torch.save zip, legacy, or safetensors), then classify a
// random image. With typed weights instead, the hub downloads and verifies the file:
//   auto model = mz::resnet50(mz::ResNet50_Weights::IMAGENET1K_V2);
#include <modelzoo/modelzoo.h>

#include <iostream>

int main(int argc, char** argv) {
  auto model = mz::resnet18();  // random init, torchvision's scheme
  if (argc > 1) {
    const mz::LoadReport report = mz::load_checkpoint(*model, argv[1]);  // strict; throws mz::LoadError
    std::cout << "loaded " << report.loaded.size() << " tensors from " << argv[1] << "\n";
  }
  model->eval();
  torch::NoGradGuard no_grad;
  const auto logits = model->forward(torch::randn({1, 3, 224, 224}));
  const auto& categories = mz::ResNet18_Weights::DEFAULT.meta().categories.value();  // null for feature weights
  std::cout << "top-1: " << categories.at(logits.argmax(1).item<std::int64_t>()) << "\n";
  return 0;
}
