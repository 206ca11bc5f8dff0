// Segmentation heads over any backbone, as in torchvision.models.segmentation.
#include "modelzoo/heads/segmentation.h"

namespace mz {
namespace {

torch::Tensor upsample(const torch::Tensor& x, torch::IntArrayRef size) {
  return torch::upsample_bilinear2d(x, size, /*align_corners=*/false);
}

nn::Conv2d conv(std::int64_t in, std::int64_t out, std::int64_t k, std::int64_t padding = 0,
                std::int64_t dilation = 1, bool bias = false) {
  return nn::Conv2d(torch::nn::Conv2dOptions(in, out, k).padding(padding).dilation(dilation).bias(bias));
}

// Conv, BN, ReLU appended to a Sequential (ASPP branches and heads).
void conv_bn_relu(torch::nn::SequentialImpl& seq, std::int64_t in, std::int64_t out, std::int64_t k,
                  std::int64_t padding = 0, std::int64_t dilation = 1) {
  seq.push_back(conv(in, out, k, padding, dilation));
  seq.push_back(nn::BatchNorm2d(out));
  seq.push_back(torch::nn::ReLU());
}

// ASPPPooling: global average pool, 1x1 conv, BN, ReLU, upsampled back to the input size.
class ASPPPoolingImpl : public ops::SequentialBlockImpl {
 public:
  ASPPPoolingImpl(std::int64_t in, std::int64_t out) {
    push_back(torch::nn::AdaptiveAvgPool2d(1));
    conv_bn_relu(*this, in, out, 1);
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return upsample(ops::SequentialBlockImpl::forward(x), {x.size(-2), x.size(-1)});
  }
};
TORCH_MODULE(ASPPPooling);

}  // namespace

FCNHeadImpl::FCNHeadImpl(std::int64_t in_channels, std::int64_t channels) {
  const std::int64_t inter = in_channels / 4;
  conv_bn_relu(*this, in_channels, inter, 3, 1);
  push_back(torch::nn::Dropout(0.1));
  push_back(conv(inter, channels, 1, 0, 1, /*bias=*/true));
}

ASPPImpl::ASPPImpl(std::int64_t in_channels, std::vector<std::int64_t> rates, std::int64_t out_channels) {
  convs = register_module("convs", torch::nn::ModuleList());
  ops::SequentialBlock first;
  conv_bn_relu(*first, in_channels, out_channels, 1);
  convs->push_back(first);
  for (std::int64_t rate : rates) {
    ops::SequentialBlock branch;
    conv_bn_relu(*branch, in_channels, out_channels, 3, rate, rate);
    convs->push_back(branch);
  }
  convs->push_back(ASPPPooling(in_channels, out_channels));
  project = register_module("project", ops::SequentialBlock());
  conv_bn_relu(*project, static_cast<std::int64_t>(convs->size()) * out_channels, out_channels, 1);
  project->push_back(torch::nn::Dropout(0.5));
}

torch::Tensor ASPPImpl::forward(const torch::Tensor& x) {
  std::vector<torch::Tensor> branches;
  for (std::size_t i = 0; i + 1 < convs->size(); ++i) branches.push_back(convs[i]->as<ops::SequentialBlockImpl>()->forward(x));
  branches.push_back(convs[convs->size() - 1]->as<ASPPPoolingImpl>()->forward(x));
  return project->forward(torch::cat(branches, 1));
}

DeepLabHeadImpl::DeepLabHeadImpl(std::int64_t in_channels, std::int64_t num_classes, std::vector<std::int64_t> rates) {
  push_back(ASPP(in_channels, std::move(rates)));
  conv_bn_relu(*this, 256, 256, 3, 1);
  push_back(conv(256, num_classes, 1, 0, 1, /*bias=*/true));
}

void SegmentationModelImpl::init(FeatureExtractor bb, torch::nn::AnyModule cls, torch::nn::AnyModule aux) {
  classifier = std::move(cls);
  aux_classifier = std::move(aux);
  backbone = register_module("backbone", bb);
  register_module("classifier", classifier.ptr());
  if (!aux_classifier.is_empty()) register_module("aux_classifier", aux_classifier.ptr());
}

TensorDict SegmentationModelImpl::forward(const torch::Tensor& x) {
  const std::vector<std::int64_t> size = {x.size(-2), x.size(-1)};
  auto features = backbone->forward(x);
  TensorDict result;
  result.insert("out", upsample(classifier.forward(features["out"]), size));
  if (!aux_classifier.is_empty()) result.insert("aux", upsample(aux_classifier.forward(features["aux"]), size));
  return result;
}

LRASPPHeadImpl::LRASPPHeadImpl(std::int64_t low_channels, std::int64_t high_channels, std::int64_t num_classes,
                               std::int64_t inter_channels) {
  cbr = register_module("cbr", ops::SequentialBlock());
  conv_bn_relu(*cbr, high_channels, inter_channels, 1);
  scale = register_module("scale", ops::SequentialBlock());
  scale->push_back(torch::nn::AdaptiveAvgPool2d(1));
  scale->push_back(conv(high_channels, inter_channels, 1));
  scale->push_back(torch::nn::Sigmoid());
  low_classifier = register_module("low_classifier", conv(low_channels, num_classes, 1, 0, 1, true));
  high_classifier = register_module("high_classifier", conv(inter_channels, num_classes, 1, 0, 1, true));
}

torch::Tensor LRASPPHeadImpl::forward(const torch::Tensor& low, const torch::Tensor& high) {
  auto x = cbr->forward(high) * scale->forward(high);
  x = upsample(x, {low.size(-2), low.size(-1)});
  return low_classifier(low) + high_classifier(x);
}

LRASPPImpl::LRASPPImpl(FeatureExtractor bb, std::int64_t low_channels, std::int64_t high_channels,
                       std::int64_t num_classes, std::int64_t inter_channels) {
  backbone = register_module("backbone", bb);
  classifier = register_module("classifier", LRASPPHead(low_channels, high_channels, num_classes, inter_channels));
}

TensorDict LRASPPImpl::forward(const torch::Tensor& x) {
  auto features = backbone->forward(x);
  TensorDict result;
  result.insert("out", upsample(classifier->forward(features["low"], features["high"]), {x.size(-2), x.size(-1)}));
  return result;
}

}  // namespace mz
