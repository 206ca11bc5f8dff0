// The README's save/load example (issue 15): a fine-tuned classifier saved with its config and loaded back (tests/docs checks it).
#include <modelzoo/modelzoo.h>

#include <filesystem>

int main() {
  // resnet18 with a new 3-class head ("weights": "ResNet18_Weights.DEFAULT" would start from ImageNet's)
  const nlohmann::json spec = nlohmann::json::parse(R"({"_target_": "resnet18", "weights": null,
    "_replace_": {"fc": {"_target_": "Linear", "in_features": 512, "out_features": 3}}})");
  mz::Model model = mz::build(spec);
  torch::optim::SGD sgd(model.module->parameters(), /*lr=*/0.01);
  torch::Tensor images = torch::rand({4, 3, 64, 64}), labels = torch::tensor({0, 1, 2, 0});
  torch::cross_entropy_loss(model.forward(images).at("output"), labels).backward();
  sgd.step();

  // dir/config.json (the resolved spec, the weights' provenance, the digest of the tensors) + dir/model.safetensors
  const std::string dir = (std::filesystem::temp_directory_path() / "mz-example-finetuned").string();
  mz::save_pretrained(model, spec, dir, {.overwrite = true});
  // Rebuilt from config.json with no weights to download, then model.safetensors loaded strictly.
  mz::Model loaded = mz::from_pretrained(dir);

  model.module->eval();
  loaded.module->eval();
  const bool same = torch::equal(model.forward(images).at("output"), loaded.forward(images).at("output"));
  std::filesystem::remove_all(dir);
  return same ? 0 : 1;
}
