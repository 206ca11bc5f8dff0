// Spec components: layers, feature extraction and image heads (kwargs as torch.nn's and torchvision's).
#include <algorithm>

#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

#include "builders/spec/parts.h"
#include "modelzoo/heads/compose.h"
#include "modelzoo/heads/segmentation.h"

namespace mz::spec {
namespace {

using nlohmann::json;

// return_nodes: {"layer": "name"} (ordered as the model runs them, as torchvision's
// IntermediateLayerGetter returns them), [["layer", "name"], ...], or ["layer", ...] (named as the layer).
std::vector<std::pair<std::string, std::string>> return_nodes(Args& a, torch::nn::Module& model) {
  const json v = a.get<json>("return_nodes");
  std::vector<std::pair<std::string, std::string>> nodes;
  try {
    if (v.is_object()) {
      for (const auto& [layer, name] : v.items()) nodes.emplace_back(layer, name.get<std::string>());
      const auto order = FeatureExtractorImpl::layer_names(model);
      auto rank = [&](const std::string& layer) { return std::find(order.begin(), order.end(), layer) - order.begin(); };
      std::stable_sort(nodes.begin(), nodes.end(), [&](const auto& x, const auto& y) { return rank(x.first) < rank(y.first); });
    } else if (v.is_array()) {
      for (const json& item : v)
        nodes.push_back(item.is_string() ? std::pair(item.get<std::string>(), item.get<std::string>())
                                         : item.get<std::pair<std::string, std::string>>());
    } else {
      throw UsageError(a.path("return_nodes"), "");
    }
  } catch (const std::exception&) {
    throw UsageError(a.path("return_nodes"), "{\"layer\": \"name\", ...} or a list of layers, got " + v.dump());
  }
  return nodes;
}

}  // namespace

MZ_REGISTER_COMPONENT(Linear, [](Args& a) {
  auto options = torch::nn::LinearOptions(a.get<std::int64_t>("in_features"), a.get<std::int64_t>("out_features"));
  return initialised(nn::Linear(options.bias(a.get("bias", true))));
});
MZ_REGISTER_COMPONENT(Conv2d, [](Args& a) {
  torch::nn::Conv2dOptions options(a.get<std::int64_t>("in_channels"), a.get<std::int64_t>("out_channels"),
                                   pair_arg(a, "kernel_size", 0));
  options.stride(pair_arg(a, "stride", 1)).padding(pair_arg(a, "padding", 0)).dilation(pair_arg(a, "dilation", 1));
  return initialised(nn::Conv2d(options.groups(a.get<std::int64_t>("groups", 1)).bias(a.get("bias", true))));
});
MZ_REGISTER_COMPONENT(BatchNorm2d, [](Args& a) {
  torch::nn::BatchNormOptions options(a.get<std::int64_t>("num_features"));
  return initialised(nn::BatchNorm2d(options.eps(a.get("eps", 1e-5)).momentum(a.get("momentum", 0.1))));
});
MZ_REGISTER_COMPONENT(ReLU, [](Args& a) { return torch::nn::ReLU(torch::nn::ReLUOptions(a.get("inplace", false))); });
MZ_REGISTER_COMPONENT(Dropout, [](Args& a) { return torch::nn::Dropout(a.get("p", 0.5)); });
MZ_REGISTER_COMPONENT(Identity, [](Args&) { return torch::nn::Identity(); });
MZ_REGISTER_COMPONENT(Sequential, [](Args& a) {
  torch::nn::Sequential seq;
  const std::vector<Part> layers = a.positional();
  for (std::size_t i = 0; i < layers.size(); ++i)
    seq->push_back(layers[i].as<torch::nn::AnyModule>(a.path("_args_." + std::to_string(i))));
  return seq;
});

MZ_REGISTER_COMPONENT(feature_extractor, [](Args& a) {
  auto model = a.get<std::shared_ptr<torch::nn::Module>>("model");
  return FeatureExtractor(model, return_nodes(a, *model));
});
MZ_REGISTER_COMPONENT(ImageClassifier, [](Args& a) {
  return ImageClassifier(a.get<FeatureExtractor>("backbone"), a.get<std::int64_t>("num_classes"), a.get("dropout", 0.0));
});

MZ_REGISTER_COMPONENT(DeepLabHead, [](Args& a) {
  return initialised(DeepLabHead(a.get<std::int64_t>("in_channels"), a.get<std::int64_t>("num_classes"),
                                 a.get<std::vector<std::int64_t>>("atrous_rates", {12, 24, 36})));
});
MZ_REGISTER_COMPONENT(FCNHead, [](Args& a) {
  return initialised(FCNHead(a.get<std::int64_t>("in_channels"), a.get<std::int64_t>("channels")));
});
MZ_REGISTER_COMPONENT(DeepLabV3, [](Args& a) {
  return DeepLabV3(a.get<FeatureExtractor>("backbone"), a.get<torch::nn::AnyModule>("classifier"),
                   a.get("aux_classifier", torch::nn::AnyModule()));
});
MZ_REGISTER_COMPONENT(FCN, [](Args& a) {
  return FCN(a.get<FeatureExtractor>("backbone"), a.get<torch::nn::AnyModule>("classifier"),
             a.get("aux_classifier", torch::nn::AnyModule()));
});
MZ_REGISTER_COMPONENT(LRASPP, [](Args& a) {
  LRASPP model(a.get<FeatureExtractor>("backbone"), a.get<std::int64_t>("low_channels"),
               a.get<std::int64_t>("high_channels"), a.get<std::int64_t>("num_classes"),
               a.get<std::int64_t>("inter_channels", 128));
  initialised(model->classifier);  // the backbone keeps its weights
  return model;
});

}  // namespace mz::spec
