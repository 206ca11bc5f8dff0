// Text encoders and heads: the eval fast path against the plain path, get_model(head) semantics
// through the builders' real load path, freezing, tied masked-LM weights, old key names, bad input.
#include <doctest/doctest.h>

#include "tests/support/support.h"

namespace {

using mz::RobertaOptions;
using nlohmann::json;

const json kTiny = {{"vocab_size", 50},       {"embedding_dim", 16},  {"ffn_dimension", 24},
                    {"padding_idx", 1},       {"max_seq_len", 20},    {"num_attention_heads", 2},
                    {"num_encoder_layers", 2}, {"dropout", 0.1},       {"scaling", nullptr},
                    {"normalize_before", false}};

RobertaOptions tiny(json extra = json::object()) {
  json o = kTiny;
  o.erase("scaling");
  o.update(extra);
  return mz::options_from_json<RobertaOptions>(o, "roberta_base");
}

// Ids [B, T]: row i has lengths[i] real tokens (>= 3), then padding (1).
torch::Tensor tokens(std::vector<std::int64_t> lengths, std::int64_t width) {
  auto t = torch::ones({static_cast<std::int64_t>(lengths.size()), width}, torch::kLong);
  for (std::size_t i = 0; i < lengths.size(); ++i)
    t[static_cast<std::int64_t>(i)].narrow(0, 0, lengths[i]).copy_(torch::randint(3, 50, {lengths[i]}, torch::kLong));
  return t;
}

// Registers RoBERTa_Base_Weights.<value> with the tiny config, its file holding `tensors` (file:// URL).
mz::RoBERTa_Base_Weights tiny_weights(const std::string& value, const mz::TensorDict& tensors) {
  ::setenv("MZ_CACHE_DIR", mz::test::temp_path("cache").c_str(), 1);
  mz::WeightsRecord r = mz::RoBERTa_Base_Weights::ENCODER.record();
  const std::string file = mz::test::temp_path(value + ".safetensors");
  mz::save_safetensors(file, tensors);
  r.value_name = value;
  r.url = "file://" + file;
  r.is_default = false;
  r.source = "tests";
  r.meta.extra["config"] = kTiny;
  mz::register_weights(r);
  return mz::RoBERTa_Base_Weights::from_name(value);
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

TEST_CASE("the eval fast path (nested tensors) equals the plain path, with exact zeros and trimming") {
  torch::manual_seed(0);
  auto model = mz::roberta_base({}, tiny());
  model->eval();
  const auto ids = tokens({5, 3}, 8);  // every row ends in padding: trimmed to 5
  torch::Tensor fast, plain;
  {
    torch::NoGradGuard no_grad;
    fast = model->forward(ids);
  }
  plain = model->forward(ids).detach();  // gradients wanted: the plain path
  CHECK(fast.sizes() == torch::IntArrayRef({2, 5, 16}));
  CHECK(plain.sizes() == torch::IntArrayRef({2, 8, 16}));
  CHECK(fast[1].narrow(0, 3, 2).abs().max().item<double>() == 0.0);  // padded positions
  CHECK(max_diff(fast[0], plain[0].narrow(0, 0, 5)) < 1e-5);
  CHECK(max_diff(fast[1].narrow(0, 0, 3), plain[1].narrow(0, 0, 3)) < 1e-5);

  model->freeze_encoder();  // nothing needs gradients: the fast path even with grad mode on
  CHECK(model->forward(ids).sizes() == torch::IntArrayRef({2, 5, 16}));
}

TEST_CASE("odd heads and pre-norm layers follow PyTorch's path choices") {
  torch::manual_seed(1);
  auto odd = mz::roberta_base({}, tiny({{"num_attention_heads", 1}}));
  odd->eval();
  torch::NoGradGuard no_grad;
  CHECK(odd->forward(tokens({5, 3}, 8)).size(1) == 8);  // no nested tensor: not trimmed
  auto pre = mz::roberta_base({}, tiny({{"normalize_before", true}}));
  pre->eval();
  CHECK(pre->forward(tokens({5, 3}, 8)).size(1) == 8);
}

TEST_CASE("weights with a head: the fresh head wins, the report says what was skipped") {
  torch::manual_seed(2);
  auto source = mz::roberta_base({}, tiny({{"head", {{"type", "classification"}, {"num_classes", 3}}}}));
  mz::TensorDict saved = mz::test::state_of(*source);
  for (auto& item : saved)
    if (item.key().rfind("head.", 0) == 0) item.value().fill_(7.0);  // what a checkpoint's head would say
  const auto w = tiny_weights("TEST_WITH_HEAD", saved);

  auto model = mz::roberta_base(w, {.freeze_encoder = true, .head = {{"type", "classification"}, {"num_classes", 3}}});
  REQUIRE(model->load_report);
  const auto& report = *model->load_report;
  CHECK(report.skipped == std::vector<std::string>{"head.dense.weight", "head.dense.bias", "head.out_proj.weight",
                                                   "head.out_proj.bias"});
  CHECK(report.missing.empty());
  CHECK(report.unexpected.empty());
  auto params = mz::test::tensors_of(*model);
  CHECK(torch::equal(params.at("encoder.transformer.token_embedding.weight"),
                     saved.at("encoder.transformer.token_embedding.weight")));
  CHECK((params.at("head.dense.weight") != 7.0).all().item<bool>());  // fresh, not the checkpoint's
  for (const auto& p : model->encoder->parameters()) CHECK_FALSE(p.requires_grad());
  for (const auto& p : model->head->parameters()) CHECK(p.requires_grad());
  model->eval();
  torch::NoGradGuard no_grad;
  CHECK(model->forward(tokens({4, 2}, 4)).sizes() == torch::IntArrayRef({2, 3}));

  // without a head the same file is refused: its head.* keys are unexpected (a strict load)
  CHECK_THROWS_AS(mz::roberta_base(w, {}), mz::LoadError);
  // options that contradict the weights' config are an error naming the option
  CHECK_THROWS_WITH_AS(mz::roberta_base(w, {.embedding_dim = 32, .head = {{"type", "span"}}}),
                       doctest::Contains("embedding_dim"), mz::UsageError);
}

TEST_CASE("heads over the encoder's features: token classification, span, masked LM tied to the embedding") {
  torch::manual_seed(3);
  torch::NoGradGuard no_grad;
  const auto ids = tokens({6, 6}, 6);
  auto tagger = mz::roberta_base({}, tiny({{"head", {{"type", "token_classification"}, {"num_classes", 5}}}}));
  tagger->eval();
  CHECK(tagger->forward(ids).sizes() == torch::IntArrayRef({2, 6, 5}));
  CHECK(mz::test::has_key(*tagger, "head.out_proj.weight"));

  auto qa = mz::roberta_base({}, tiny({{"head", {{"type", "span"}}}}));
  qa->eval();
  mz::TensorDict in;
  in.insert("input", ids);
  const auto out = qa->run(in);
  CHECK(out.keys() == std::vector<std::string>{"start_logits", "end_logits"});
  CHECK(out.at("start_logits").sizes() == torch::IntArrayRef({2, 6}));

  auto mlm = mz::roberta_base({}, tiny({{"head", {{"type", "mlm"}}}}));
  mlm->eval();
  CHECK(mz::test::keys_of(*mlm->head) ==
        std::vector<std::string>{"bias", "dense.weight", "dense.bias", "layer_norm.weight", "layer_norm.bias"});
  auto& head = dynamic_cast<mz::MaskedLMHeadImpl&>(*mlm->head);
  const auto features = mlm->encoder->forward(ids);
  const auto embedding = mlm->encoder->transformer->token_embedding->weight;
  auto expected = torch::linear(head.layer_norm(torch::gelu(head.dense(features))), embedding) + head.bias;
  CHECK(max_diff(mlm->forward(ids), expected) < 1e-6);
  embedding.mul_(2.0);  // tied: the head follows the embedding matrix itself
  auto after = torch::linear(head.layer_norm(torch::gelu(head.dense(features))), embedding) + head.bias;
  CHECK(max_diff(head.forward(features), after) < 1e-6);

  CHECK_THROWS_WITH_AS(mz::roberta_base({}, tiny({{"head", {{"type", "pooler"}}}})), doctest::Contains("unknown type"),
                       mz::UsageError);
  CHECK_THROWS_WITH_AS(mz::roberta_base({}, tiny({{"head", {{"type", "classification"}}}})),
                       doctest::Contains("num_classes"), mz::UsageError);
  CHECK_THROWS_WITH_AS(mz::roberta_base({}, tiny({{"head", {{"type", "span"}, {"n_classes", 2}}}})),
                       doctest::Contains("unknown option 'n_classes'"), mz::UsageError);
}

TEST_CASE("old checkpoint key names load through the adaptation hook") {
  torch::manual_seed(4);
  auto source = mz::roberta_base({}, tiny());
  mz::TensorDict old;
  for (const auto& item : mz::test::state_of(*source)) {
    std::string k = item.key();
    const auto at = k.find("layers.layers.");
    if (at != std::string::npos) {
      k.replace(at, 14, "layers.");
      for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
               {"self_attn.in_proj_", "attention.input_projection."},
               {"self_attn.out_proj.", "attention.output_projection."},
               {"linear1.", "residual_mlp.mlp.0."},
               {"linear2.", "residual_mlp.mlp.3."},
               {"norm1.", "attention_layer_norm."},
               {"norm2.", "final_layer_norm."}})
        if (auto p = k.find(from); p != std::string::npos) k.replace(p, from.size(), to);
    }
    old.insert(k, item.value());
  }
  CHECK(old.contains("encoder.transformer.layers.1.attention.input_projection.weight"));
  CHECK(old.contains("encoder.transformer.layers.0.residual_mlp.mlp.3.bias"));
  auto model = mz::roberta_base({}, tiny());
  const auto report = mz::load_state(*model, old);
  CHECK(report.ok());
  CHECK(report.adapted.size() == 24);
  CHECK(mz::test::same_state(*model, *source));
}

TEST_CASE("run() refuses bad token ids with a usage error naming the problem") {
  auto model = mz::roberta_base({}, tiny());
  model->eval();
  torch::NoGradGuard no_grad;
  auto run = [&](torch::Tensor t) {
    mz::TensorDict in;
    in.insert("input", t);
    return model->run(in);
  };
  CHECK(run(tokens({3}, 3)).at("output").sizes() == torch::IntArrayRef({1, 3, 16}));
  CHECK_THROWS_WITH_AS(run(torch::zeros({1, 3})), doctest::Contains("must be integers"), mz::UsageError);
  CHECK_THROWS_WITH_AS(run(torch::zeros({3}, torch::kLong)), doctest::Contains("[B, T]"), mz::UsageError);
  CHECK_THROWS_WITH_AS(run(torch::full({1, 3}, 50, torch::kLong)), doctest::Contains("outside the vocabulary"),
                       mz::UsageError);
  CHECK_THROWS_WITH_AS(run(torch::full({1, 3}, -1, torch::kLong)), doctest::Contains("outside the vocabulary"),
                       mz::UsageError);
  CHECK_THROWS_WITH_AS(run(torch::full({1, 19}, 5, torch::kLong)), doctest::Contains("longer than the position table"),
                       mz::UsageError);
  CHECK_THROWS_WITH_AS(model->run(mz::TensorDict()), doctest::Contains("no tensor named 'input'"), mz::UsageError);
}

TEST_CASE("the transform pieces: Truncate, AddToken and padding, as torchtext composes them") {
  CHECK(torch::equal(mz::text::pad_ids({{5, 6, 7}, {8}, {}}, 1),
                     torch::tensor({5, 6, 7, 8, 1, 1, 1, 1, 1}, torch::kLong).view({3, 3})));
  mz::text::Vocab vocab({"<s>", "<pad>", "</s>", "<unk>", "a", "b", "a"}, 3);
  CHECK(vocab.lookup_indices({"a", "b", "zzz"}) == std::vector<std::int64_t>{4, 5, 3});
  CHECK_THROWS_WITH_AS(mz::text::Vocab({"x"}).lookup_indices({"y"}), doctest::Contains("not in the vocabulary"),
                       mz::UsageError);
  CHECK_THROWS_WITH_AS(mz::text::check_utf8("ok\xC0\xAF"), doctest::Contains("invalid UTF-8 at byte 2"), mz::UsageError);
  CHECK_THROWS_AS(mz::text::check_utf8("\xED\xA0\x80"), mz::UsageError);  // a surrogate
  CHECK_NOTHROW(mz::text::check_utf8("h\xC3\xA9 \xF0\x9F\x91\x8D"));
}
