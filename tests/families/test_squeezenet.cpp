// Builder semantics of SqueezeNet that the generic registry, metadata and parity tests do not see.
#include <doctest/doctest.h>

#include "tests/support/support.h"

using namespace mz;
using namespace mz::test;

TEST_CASE("squeezenet1_1: state-dict names follow torchvision's module indices") {
  ArchitectureOnly no_download;
  SqueezeNet squeeze = squeezenet1_1(SqueezeNet1_1_Weights::DEFAULT);
  for (const char* k : {"features.0.weight", "features.3.squeeze.weight", "features.12.expand3x3.bias",
                        "classifier.1.weight"})
    CHECK(has_key(*squeeze, k));
}

TEST_CASE("squeezenet without weights: the final conv is N(0, 0.01), every bias zero") {
  SqueezeNet model = squeezenet1_0();
  CHECK(model->final_conv->weight.std().item<double>() == doctest::Approx(0.01).epsilon(0.05));
  CHECK(model->final_conv.get() == model->classifier[1]->as<nn::Conv2dImpl>());
  nn::for_each<nn::Conv2dImpl>(*model, [](nn::Conv2dImpl& c) { CHECK(c.bias.abs().max().item<double>() == 0); });
}
