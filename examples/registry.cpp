// Models and weights by name: list, inspect, and build through the type-erased registry.
#include <modelzoo/modelzoo.h>

#include <iostream>

int main() {
  for (const mz::ModelInfo* m : mz::list_models({"resnet*"}, {"resnet1*"})) {
    std::cout << m->name << " (" << m->task << "):";
    for (const mz::WeightsRecord* w : mz::get_model_weights(m->name)) std::cout << " " << w->name();
    std::cout << "\n";
  }
  const mz::WeightsRecord& w = mz::get_weight("ResNet50_Weights.IMAGENET1K_V2");
  std::cout << w.url << " acc@1=" << w.meta.metrics.at("ImageNet-1K").at("acc@1") << "\n";
  mz::Model model = mz::get_model("resnet18", "", {{"num_classes", 10}});
  model.module->eval();
  const mz::TensorDict out = model.forward(torch::randn({1, 3, 64, 64}));  // {"output": logits}
  std::cout << "output: " << out.at("output").sizes() << "\n";
  return out.at("output").size(1) == 10 ? 0 : 1;
}
