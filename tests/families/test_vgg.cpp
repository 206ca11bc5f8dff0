// Builder semantics of VGG that the generic registry, metadata and parity tests do not see.
#include <doctest/doctest.h>

#include "tests/support/support.h"

using namespace mz;
using namespace mz::test;

TEST_CASE("vgg16's IMAGENET1K_FEATURES weights have no categories: num_classes stays the caller's") {
  ArchitectureOnly no_download;
  VGG features = vgg16(VGG16_Weights::IMAGENET1K_FEATURES);
  CHECK(features->classifier[6]->as<nn::LinearImpl>()->options.out_features() == 1000);
  CHECK(nn::num_params(*features) == VGG16_Weights::IMAGENET1K_FEATURES.meta().num_params);
  VGGOptions o;
  o.num_classes = 10;
  CHECK(vgg16(VGG16_Weights::IMAGENET1K_FEATURES, o)->classifier[6]->as<nn::LinearImpl>()->options.out_features() ==
        10);
  CHECK_THROWS_AS(vgg16(VGG16_Weights::IMAGENET1K_V1, o), UsageError);
  CHECK(!VGG16_Weights::IMAGENET1K_FEATURES.meta().categories);  // None in torchvision
  CHECK(VGG16_Weights::IMAGENET1K_FEATURES.transforms().std.at(0) == doctest::Approx(1.0 / 255));
  CHECK(VGG16_Weights::DEFAULT == VGG16_Weights::IMAGENET1K_V1);
}

TEST_CASE("vgg11_bn: state-dict names follow torchvision's module indices") {
  ArchitectureOnly no_download;
  VGG vgg = vgg11_bn(VGG11_BN_Weights::DEFAULT);
  for (const char* k : {"features.0.weight", "features.1.running_var", "features.4.weight", "classifier.0.weight",
                        "classifier.3.bias", "classifier.6.weight"})
    CHECK(has_key(*vgg, k));
}
