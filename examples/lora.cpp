// The README's adapter example (issue 15): LoRA injected, trained, saved alone, loaded back (tests/docs checks it).
#include <modelzoo/modelzoo.h>

#include <filesystem>

int main() {
  const nlohmann::json spec = {{"_target_", "resnet18"}, {"weights", nullptr}, {"num_classes", 4}};
  torch::manual_seed(0);
  mz::spec::Built built = mz::spec::build(spec);  // built.weights: the base's weights, by full name (none here)
  torch::nn::Module& model = *built.model.module;
  mz::lora::inject(model, {.targets = {"layer4.*.conv*", "fc"}, .rank = 8, .alpha = 16});  // output unchanged

  // Only the adapter's tensors require grad: the base is frozen (and in eval mode, so BatchNorm is too).
  std::vector<torch::Tensor> trainable;
  for (const auto& p : model.parameters())
    if (p.requires_grad()) trainable.push_back(p);
  torch::optim::AdamW optimizer(trainable, torch::optim::AdamWOptions(1e-3));
  model.eval();
  const auto images = torch::rand({8, 3, 64, 64});
  const auto labels = torch::randint(0, 4, {8});
  for (int step = 0; step < 3; ++step) {
    optimizer.zero_grad();
    torch::cross_entropy_loss(built.model.forward(images).at("output"), labels).backward();
    optimizer.step();
  }

  // adapter.safetensors + adapter.json (the base's weights by name and SHA-256): a few KiB, not the model.
  const std::string dir = std::filesystem::temp_directory_path() / "mz-lora-example";
  std::filesystem::create_directories(dir);
  mz::lora::save(model, dir, built.weights);

  // Later, on the same base: load (another base is refused with mz::LoadError), merge for inference at base cost.
  torch::manual_seed(0);
  mz::spec::Built again = mz::spec::build(spec);
  mz::lora::load(*again.model.module, dir, again.weights);
  mz::lora::merge(*again.model.module);
  again.model.module->eval();
  torch::NoGradGuard no_grad;
  const auto diff = (again.model.forward(images).at("output") - built.model.forward(images).at("output")).abs().max();
  return diff.item<double>() < 1e-5 ? 0 : 1;
}
