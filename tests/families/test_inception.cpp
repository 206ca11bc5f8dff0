// Builder semantics of Inception v3 that the generic registry, metadata and parity tests do not see.
#include <doctest/doctest.h>

#include "tests/support/support.h"

using namespace mz;
using namespace mz::test;

TEST_CASE("inception_v3 with weights: transform_input on, the aux head stays (aux_logits=false is an error)") {
  ArchitectureOnly no_download;
  Inception3 model = inception_v3(Inception_V3_Weights::DEFAULT);
  CHECK(model->transform_input);
  CHECK(model->aux_logits());
  CHECK(has_key_starting(*model, "AuxLogits.fc."));
  CHECK(nn::num_params(*model) == Inception_V3_Weights::IMAGENET1K_V1.meta().num_params);
  Inception3Options o;
  o.aux_logits = false;
  CHECK_THROWS_WITH_AS(inception_v3(Inception_V3_Weights::DEFAULT, o),
                       "Inception_V3_Weights.IMAGENET1K_V1: option 'aux_logits' must be true, got false", UsageError);
  Inception3Options t;
  t.transform_input = false;
  CHECK(!inception_v3(Inception_V3_Weights::DEFAULT, t)->transform_input);
}

TEST_CASE("inception_v3 without weights: aux_logits and init_weights as in Python") {
  Inception3 model = inception_v3();
  CHECK(model->aux_logits());
  CHECK(!model->transform_input);
  // init_weights: truncated N(0, 0.1) everywhere except AuxLogits.fc, N(0, 0.001).
  CHECK(model->fc->weight.std().item<double>() == doctest::Approx(0.1).epsilon(0.05));
  CHECK(model->AuxLogits->fc->weight.std().item<double>() == doctest::Approx(0.001).epsilon(0.05));

  Inception3Options o;
  o.aux_logits = false;
  o.init_weights = false;
  Inception3 plain = inception_v3({}, o);
  CHECK(!plain->aux_logits());
  CHECK(!has_key_starting(*plain, "AuxLogits."));
  CHECK(plain->fc->weight.std().item<double>() < 0.02);  // U(-1/sqrt(2048), 1/sqrt(2048))

  SUBCASE("training mode returns the aux logits too") {
    model->train();
    const auto out = model->forward_outputs(torch::randn({2, 3, 299, 299}));
    CHECK(out.logits.sizes() == torch::IntArrayRef{2, 1000});
    CHECK(out.aux_logits.sizes() == torch::IntArrayRef{2, 1000});
  }
}
