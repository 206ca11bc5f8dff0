// Speech encoders: what the oracle scripts do not see (builder semantics, the aux-row adapter, fine-tuning loads,
// heads, run()'s input errors, CTC decoding).
#include <doctest/doctest.h>

#include "tests/support/support.h"

using namespace mz;
using namespace mz::test;

namespace {

Wav2Vec2ModelOptions tiny(std::optional<std::int64_t> aux = {}) {
  Wav2Vec2ModelOptions o;
  o.extractor_conv_layer_config = {{8, 10, 5}, {8, 3, 2}};
  o.encoder_embed_dim = 8;
  o.encoder_pos_conv_kernel = 4;
  o.encoder_pos_conv_groups = 2;
  o.encoder_num_layers = 2;
  o.encoder_num_heads = 2;
  o.encoder_ff_interm_features = 16;
  o.aux_num_out = aux;
  return o;
}

TensorDict with_aux_rows(const Wav2Vec2Model& model, std::int64_t rows) {
  TensorDict state;
  for (const auto& item : state_of(*model))
    if (item.key().rfind("aux.", 0) != 0) state.insert(item.key(), item.value());
  state.insert("aux.weight", torch::arange(rows * 8, torch::kFloat32).reshape({rows, 8}));
  state.insert("aux.bias", torch::arange(rows, torch::kFloat32));
  return state;
}

}  // namespace

TEST_CASE("presets: torchaudio's parameter counts and key layout (weight norm, aux)") {
  ArchitectureOnly no_init;
  auto base = wav2vec2_base({}, {.aux_num_out = 29});
  CHECK(nn::num_params(*base) == 94370944 + 22301);
  CHECK(keys_of(*base).size() == 212);
  CHECK(has_key(*base, "encoder.transformer.pos_conv_embed.conv.weight_g"));
  CHECK(has_key(*base, "encoder.transformer.pos_conv_embed.conv.weight_v"));
  CHECK(has_key(*base, "feature_extractor.conv_layers.0.layer_norm.weight"));  // GroupNorm on layer 0 only
  CHECK(!has_key(*base, "feature_extractor.conv_layers.1.layer_norm.weight"));
  CHECK(!has_key(*base, "feature_extractor.conv_layers.0.conv.bias"));
  auto lv60k = wav2vec2_large_lv60k();
  CHECK(nn::num_params(*lv60k) == 315437696);
  CHECK(has_key(*lv60k, "feature_extractor.conv_layers.6.layer_norm.weight"));
  CHECK(has_key(*lv60k, "feature_extractor.conv_layers.6.conv.bias"));
  CHECK(!has_key(*hubert_base(), "aux.weight"));
}

TEST_CASE("options: ASR weights fix aux_num_out; pretrained weights have no aux; bad configurations are errors") {
  ArchitectureOnly no_download;
  CHECK(wav2vec2_base(Wav2Vec2Base_Weights::WAV2VEC2_ASR_BASE_960H)->aux->options.out_features() == 29);
  CHECK(wav2vec2_base(Wav2Vec2Base_Weights::VOXPOPULI_ASR_BASE_10K_ES)->remove_aux_axis ==
        std::vector<std::int64_t>{1, 2, 3, 35});
  CHECK_THROWS_WITH_AS(wav2vec2_base(Wav2Vec2Base_Weights::WAV2VEC2_ASR_BASE_960H, {.aux_num_out = 10}),
                       "Wav2Vec2Base_Weights.WAV2VEC2_ASR_BASE_960H: option 'aux_num_out' must be 29, got 10",
                       UsageError);
  CHECK_THROWS_AS(wav2vec2_base(Wav2Vec2Base_Weights::WAV2VEC2_BASE, {.aux_num_out = 10}), UsageError);
  auto o = tiny();
  o.extractor_mode = "batch_norm";
  CHECK_THROWS_WITH_AS(wav2vec2_model(o), doctest::Contains("extractor_mode"), UsageError);
  o = tiny();
  o.encoder_num_heads = 3;
  CHECK_THROWS_AS(wav2vec2_model(o), UsageError);
  CHECK_THROWS_AS(get_model("wav2vec2_base", "", {{"aux_num_out", "many"}}), UsageError);
}

TEST_CASE("lengths: floor((L - k) / s) + 1 per conv layer, clamped at 0; run() gives every frame without lengths") {
  auto model = wav2vec2_model(tiny());
  model->eval();
  torch::NoGradGuard no_grad;
  const auto [x, lengths] = model->forward(torch::randn({3, 100}), torch::tensor({100, 37, 5}));
  CHECK(x.sizes() == torch::IntArrayRef{3, 9, 8});  // (100 - 10) / 5 + 1 = 19; (19 - 3) / 2 + 1 = 9
  CHECK(lengths.equal(torch::tensor({9, 2, 0})));   // 37 -> 6 -> 2 (floor), 5 -> 0 (clamped)
  TensorDict in;
  in.insert("input", torch::randn({2, 100}));
  const TensorDict out = model->run(in);
  CHECK(out.at("lengths").equal(torch::tensor({9, 9})));
  CHECK(out.keys() == std::vector<std::string>{"output", "lengths"});
}

TEST_CASE("run(): named inputs are checked and errors name the tensor") {
  auto model = wav2vec2_model(tiny());
  model->eval();
  torch::NoGradGuard no_grad;
  auto run = [&](torch::Tensor input, std::optional<torch::Tensor> lengths = {}) {
    TensorDict in;
    in.insert("input", input);
    if (lengths) in.insert("lengths", *lengths);
    return model->run(in);
  };
  CHECK_THROWS_WITH_AS(run(torch::randn({2, 100}), torch::tensor({101, 5})),
                       "lengths: must be between 0 and the waveforms' 100 samples, got 5 to 101", UsageError);
  CHECK_THROWS_WITH_AS(run(torch::randn({2, 100}), torch::tensor({100.0, 5.0})), doctest::Contains("must be int64"),
                       UsageError);
  CHECK_THROWS_WITH_AS(run(torch::randn({2, 100}), torch::tensor({100})), doctest::Contains("[2]"), UsageError);
  CHECK_THROWS_WITH_AS(run(torch::ones({2, 100}, torch::kInt64)), doctest::Contains("input: must be floating-point"),
                       UsageError);
  CHECK_THROWS_WITH_AS(run(torch::randn({100})), doctest::Contains("input: must be floating-point waveforms"),
                       UsageError);
  CHECK_THROWS_WITH_AS(run(torch::randn({1, 12})), doctest::Contains("12 samples are too few"), UsageError);
  model->num_layers = 2;
  CHECK(run(torch::randn({1, 100})).keys() == std::vector<std::string>{"output", "lengths", "layer.0", "layer.1"});
  model->num_layers = 3;
  CHECK_THROWS_WITH_AS(run(torch::randn({1, 100})), "num_layers: must be between [1, 2], got 3", UsageError);
}

TEST_CASE("aux rows: a released checkpoint's rows are dropped by shape, a trimmed one loads as is") {
  auto model = wav2vec2_model(tiny(4));
  SUBCASE("released: 4 + 3 rows, (1, 2, 3) dropped") {
    const LoadReport report = load_state(*model, with_aux_rows(model, 7));
    CHECK(report.ok());
    CHECK(model->aux->bias.equal(torch::tensor({0.0f, 4.0f, 5.0f, 6.0f})));
    CHECK(model->aux->weight[1].equal(torch::arange(32, 40, torch::kFloat32)));
    CHECK(report.adapted == std::vector<std::string>{"aux.weight", "aux.bias"});
  }
  SUBCASE("VoxPopuli's (1, 2, 3, 5)") {
    model->remove_aux_axis = {1, 2, 3, 5};
    load_state(*model, with_aux_rows(model, 8));
    CHECK(model->aux->bias.equal(torch::tensor({0.0f, 4.0f, 6.0f, 7.0f})));
  }
  SUBCASE("trimmed") {
    load_state(*model, with_aux_rows(model, 4));
    CHECK(model->aux->bias.equal(torch::tensor({0.0f, 1.0f, 2.0f, 3.0f})));
  }
  SUBCASE("any other row count is a shape mismatch") {
    CHECK_THROWS_WITH_AS(load_state(*model, with_aux_rows(model, 6)), doctest::Contains("aux.weight"), LoadError);
  }
}

TEST_CASE("fine-tuning: an ASR checkpoint into a new head skips and reports the old head") {
  auto asr = wav2vec2_model(tiny(29));
  const std::string path = temp_path("asr.safetensors");
  save_safetensors(path, state_of(*asr));
  auto model = wav2vec2_model(tiny(10));
  const LoadReport report = load_checkpoint(*model, path, {.skip = {"aux.*"}});
  CHECK(report.ok());
  CHECK(report.skipped == std::vector<std::string>{"aux.weight", "aux.bias"});
  CHECK(model->encoder->transformer->pos_conv_embed->weight_v.equal(asr->encoder->transformer->pos_conv_embed->weight_v));
  CHECK_THROWS_AS(load_checkpoint(*model, path), LoadError);  // without skip: a mismatched head is an error
  auto classifier = SpeechClassifier(wav2vec2_model(tiny()), 3);
  const LoadReport encoder_report = load_checkpoint(*classifier->encoder, path, {.skip = {"aux.*"}});
  CHECK(encoder_report.ok());  // the checkpoint's aux rows are skipped, not unexpected
  CHECK(encoder_report.loaded.size() == keys_of(*classifier->encoder).size());
}

TEST_CASE("heads: masked mean pooling, utterance classification, the weighted-layer probe") {
  const torch::Tensor x = torch::arange(12, torch::kFloat32).reshape({2, 3, 2});
  CHECK(masked_mean(x, torch::tensor({1, 3})).equal(torch::tensor({{0.0f, 1.0f}, {8.0f, 9.0f}})));
  CHECK(masked_mean(x).equal(x.mean(1)));
  auto encoder = wav2vec2_model(tiny());
  encoder->eval();
  auto clf = SpeechClassifier(encoder, 5);
  auto probe = SpeechClassifier(encoder, 5, 2);
  const auto keys = keys_of(*probe);
  CHECK(std::count(keys.begin(), keys.end(), "layer_sum.weights") == 1);
  CHECK(std::count(keys.begin(), keys.end(), "head.projection.weight") == 1);
  CHECK(has_key_starting(*clf, "encoder.feature_extractor."));
  torch::NoGradGuard no_grad;
  const torch::Tensor wave = torch::randn({2, 200}), lengths = torch::tensor({200, 120});
  CHECK(clf->forward(wave, lengths).sizes() == torch::IntArrayRef{2, 5});
  // Equal weights: the probe is the mean of the layers, pooled over each utterance's valid frames.
  auto [layers, frames] = encoder->extract_features(wave, lengths, 2);
  const torch::Tensor mixed = (layers[0] + layers[1]) / 2;
  const torch::Tensor want = probe->head->projection(masked_mean(mixed, frames));
  CHECK(torch::allclose(probe->forward(wave, lengths), want, 1e-5, 1e-6));
  // Over an encoder with aux (e.g. a CTC model), the classifier pools the aux outputs.
  CHECK(SpeechClassifier(wav2vec2_model(tiny(7)), 2)->head->projection->options.in_features() == 7);
  CHECK_THROWS_AS(SpeechClassifier(encoder, 5, 3), UsageError);
}

TEST_CASE("greedy CTC: repeats collapsed, blanks dropped, '|' is a space") {
  const std::vector<std::string> labels = {"-", "|", "A", "B", "ü"};
  CHECK(audio::ctc_greedy_text({2, 2, 0, 2, 3, 1, 1, 0, 4, 4, 1}, labels) == "AAB ü");
  CHECK(audio::ctc_greedy_text({1, 1, 0, 2, 1, 0, 1, 3, 1}, labels) == "A B");
  CHECK(audio::ctc_greedy_text({}, labels).empty());
  CHECK_THROWS_AS(audio::ctc_greedy_text({7}, labels), UsageError);
  torch::Tensor emissions = torch::zeros({3, 5});
  emissions[0][2] = 1, emissions[1][0] = 1, emissions[2][4] = 1;
  CHECK(audio::ctc_greedy_ids(emissions) == std::vector<std::int64_t>{2, 0, 4});
}

TEST_CASE("resample: rates torchaudio cannot serve in bounded memory are errors; equal rates are the identity") {
  const torch::Tensor wave = torch::randn({1000});
  CHECK(audio::resample(wave, 16000, 16000).equal(wave));
  CHECK(audio::resample(wave, 8000, 16000).size(0) == 2000);
  CHECK(audio::resample(wave, 44100, 16000).size(0) == 363);  // ceil(1000 * 160 / 441)
  CHECK_THROWS_WITH_AS(audio::resample(wave, 44101, 16000), doctest::Contains("cannot resample 44101 Hz"), UsageError);
  CHECK_THROWS_AS(audio::resample(wave, 0, 16000), UsageError);
}
