// Dumps, for a sample of models, every parameter and buffer after seeded random init and the
// outputs of one eval-mode forward pass on a seeded input, as raw bytes: the same program built
// against two revisions of modelzoo must write identical files (scripts/check_identical.sh).
// Only APIs that both revisions share are used.
#include <fstream>
#include <iostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <modelzoo/modelzoo.h>

namespace {

template <class T, class = void>
struct has_key : std::false_type {};
template <class T>
struct has_key<T, std::void_t<decltype(std::declval<T>().key())>> : std::true_type {};

template <class Item>
std::pair<std::string, torch::Tensor> entry(const Item& item) {
  if constexpr (has_key<Item>::value)
    return {item.key(), item.value()};
  else
    return {item.first, item.second};
}

void write(std::ofstream& out, const std::string& name, const torch::Tensor& t) {
  const torch::Tensor c = t.detach().contiguous().cpu();
  out << name << " " << c.sizes() << " " << c.scalar_type() << "\n";
  out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.numel() * c.element_size()));
  out << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: dump OUT_DIR\n";
    return 2;
  }
  torch::set_num_threads(1);
  const nlohmann::json no_backbone = {{"weights_backbone", nullptr}};
  const std::vector<std::tuple<std::string, nlohmann::json, int>> sample = {
      {"alexnet", {}, 64},           {"resnet18", {}, 64},
      {"resnext50_32x4d", {}, 64},   {"densenet121", {}, 64},
      {"googlenet", {}, 64},         {"inception_v3", {}, 96},
      {"squeezenet1_1", {}, 64},     {"vgg11_bn", {}, 64},
      {"mnasnet0_5", {}, 64},        {"mobilenet_v2", {}, 64},
      {"mobilenet_v3_small", {}, 64}, {"shufflenet_v2_x0_5", {}, 64},
      {"efficientnet_b0", {}, 64},   {"efficientnet_v2_s", {}, 64},
      {"regnet_y_400mf", {}, 64},    {"convnext_tiny", {}, 64},
      {"vit_b_16", {{"image_size", 32}}, 32}, {"swin_t", {}, 64},
      {"swin_v2_t", {}, 64},         {"maxvit_t", {}, 224},
      {"fcn_resnet50", no_backbone, 64}, {"deeplabv3_mobilenet_v3_large", no_backbone, 64},
      {"lraspp_mobilenet_v3_large", no_backbone, 64},
  };
  for (const auto& [name, options, size] : sample) {
    torch::manual_seed(0);
    mz::Model m = mz::get_model(name, "", options.is_null() ? nlohmann::json::object() : options);
    m.module->eval();
    std::ofstream out(std::string(argv[1]) + "/" + name + ".bin", std::ios::binary);
    for (const auto& p : m.module->named_parameters()) write(out, p.key(), p.value());
    for (const auto& b : m.module->named_buffers()) write(out, b.key(), b.value());
    torch::manual_seed(1);
    const torch::Tensor x = torch::randn({2, 3, size, size});
    torch::NoGradGuard no_grad;
    for (const auto& item : m.forward(x)) {
      const auto [key, value] = entry(item);
      write(out, "output." + key, value);
    }
    std::cout << name << "\n";
  }
  return 0;
}
