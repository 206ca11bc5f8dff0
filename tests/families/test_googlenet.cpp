// Builder semantics of GoogLeNet that the generic registry, metadata and parity tests do not see.
#include <doctest/doctest.h>

#include "builders/common.h"
#include "tests/support/support.h"

using namespace mz;
using namespace mz::test;

TEST_CASE("googlenet with weights: transform_input on, aux heads loaded and then dropped") {
  GoogLeNetOptions src_options;
  src_options.init_weights = false;
  GoogLeNet src = googlenet({}, src_options);  // aux heads by default without weights
  REQUIRE(src->aux_logits());
  randomize_norms(*src);
  const GoogLeNet_Weights w = local_weights(GoogLeNet_Weights::IMAGENET1K_V1, state_of(*src));

  GoogLeNet model = googlenet(w);  // strict load: the checkpoint's aux1/aux2 keys must have a home
  CHECK(model->transform_input);
  CHECK(!model->aux_logits());
  CHECK(!has_key_starting(*model, "aux1."));
  CHECK(!has_key_starting(*model, "aux2."));
  CHECK(nn::num_params(*model) == GoogLeNet_Weights::IMAGENET1K_V1.meta().num_params);
  CHECK(model->steps().front().name == "transform_input");

  torch::NoGradGuard no_grad;
  src->eval();
  model->eval();
  const auto x = torch::randn({1, 3, 32, 32});
  CHECK(torch::allclose(model->forward(x), src->forward(mz::detail::inception_transform_input(x)), 1e-5, 1e-5));

  SUBCASE("aux heads kept when asked for, with their loaded values") {
    GoogLeNetOptions o;
    o.aux_logits = true;
    GoogLeNet with_aux = googlenet(w, o);
    REQUIRE(with_aux->aux_logits());
    CHECK(torch::equal(with_aux->aux1->fc2->weight, src->aux1->fc2->weight));
    CHECK(torch::equal(with_aux->aux2->conv->bn->running_var, src->aux2->conv->bn->running_var));
  }
  SUBCASE("transform_input given by the caller is kept") {
    GoogLeNetOptions o;
    o.transform_input = false;
    GoogLeNet plain = googlenet(w, o);
    CHECK(!plain->transform_input);
    plain->eval();
    CHECK(torch::allclose(plain->forward(x), src->forward(x), 1e-5, 1e-5));
  }
}

TEST_CASE("googlenet with weights rejects aux_logits=false, init_weights=true and another num_classes") {
  ArchitectureOnly no_download;
  auto with = [](auto edit) {
    GoogLeNetOptions o;
    edit(o);
    return googlenet(GoogLeNet_Weights::DEFAULT, o);
  };
  CHECK_THROWS_WITH_AS(with([](auto& o) { o.aux_logits = false; }),
                       "GoogLeNet_Weights.IMAGENET1K_V1: option 'aux_logits' must be true, got false", UsageError);
  CHECK_THROWS_WITH_AS(with([](auto& o) { o.init_weights = true; }),
                       "GoogLeNet_Weights.IMAGENET1K_V1: option 'init_weights' must be false, got true", UsageError);
  CHECK_THROWS_AS(with([](auto& o) { o.num_classes = 10; }), UsageError);
  CHECK_NOTHROW(with([](auto& o) { o.init_weights = false; }));
}

TEST_CASE("googlenet without weights: aux_logits and init_weights as in Python") {
  GoogLeNet defaults = googlenet();
  CHECK(defaults->aux_logits());  // GoogLeNet's own default is True
  CHECK(!defaults->transform_input);
  CHECK(has_key_starting(*defaults, "aux1.fc2."));
  // init_weights (default true): truncated N(0, 0.01); PyTorch's default is far wider here.
  CHECK(defaults->conv1->conv->weight.std().item<double>() == doctest::Approx(0.01).epsilon(0.1));

  GoogLeNetOptions o;
  o.aux_logits = false;
  o.init_weights = false;
  GoogLeNet plain = googlenet({}, o);
  CHECK(!plain->aux_logits());
  CHECK(!has_key_starting(*plain, "aux1."));
  CHECK(plain->conv1->conv->weight.std().item<double>() > 0.03);  // U(-1/sqrt(147), 1/sqrt(147))
}

TEST_CASE("googlenet in training mode also returns the aux heads' logits") {
  GoogLeNetOptions o;
  o.num_classes = 7;
  GoogLeNet model = googlenet({}, o);
  model->train();
  const auto out = model->forward_outputs(torch::randn({2, 3, 32, 32}));
  CHECK(out.logits.sizes() == torch::IntArrayRef{2, 7});
  CHECK(out.aux_logits1.sizes() == torch::IntArrayRef{2, 7});
  CHECK(out.aux_logits2.sizes() == torch::IntArrayRef{2, 7});
  model->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({1, 3, 32, 32});
  const auto eval = model->forward_outputs(x);
  CHECK(!eval.aux_logits1.defined());
  CHECK(torch::equal(eval.logits, model->forward(x)));
}
