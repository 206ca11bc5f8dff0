// T5 through the C++ API: typed weights and their configuration, shapes of the outputs, the relative
// position buckets (values from torchtext's _relative_position_bucket), generation's contract, bad input.
// Numerical parity with torchtext is t5_parity.py's and t5_cli.py's.
#include <doctest/doctest.h>

#include "tests/support/support.h"

namespace {

using nlohmann::json;

mz::T5Options tiny_t5(json extra = json::object()) {
  json o = {{"encoder_only", false}, {"linear_head", false}, {"embedding_dim", 16},       {"qkv_dim", 4},
            {"num_attention_heads", 2}, {"num_encoder_layers", 2}, {"num_decoder_layers", 2}, {"ffn_dimension", 24},
            {"vocab_size", 50}};
  o.update(extra);
  return mz::options_from_json<mz::T5Options>(o, "t5_small");
}

}  // namespace

TEST_CASE("T5 weights: three per size, DEFAULT is FULL, options that contradict the weights are errors") {
  CHECK(mz::T5_Small_Weights::DEFAULT == mz::T5_Small_Weights::FULL);
  CHECK(mz::T5_11B_Weights::GENERATION.name() == "T5_11B_Weights.GENERATION");
  CHECK(mz::T5_Base_Weights::ENCODER.record().meta.extra.at("config").at("encoder_only") == true);
  CHECK(mz::T5_3B_Weights::GENERATION.record().url == "https://download.pytorch.org/models/text/t5.3b.generation.pt");
  mz::T5Options o;
  o.encoder_only = false;
  CHECK_THROWS_WITH_AS(mz::t5_small(mz::T5_Small_Weights::ENCODER, o),
                       "T5_Small_Weights.ENCODER: option 'encoder_only' must be true, got false", mz::UsageError);
  {
    mz::ArchitectureOnly no_download;
    auto encoder = mz::t5_small(mz::T5_Small_Weights::ENCODER);
    CHECK(encoder->conf.encoder_only);
    CHECK(!encoder->decoder);
    CHECK(!encoder->lm_head);
    auto generation = mz::t5_small(mz::T5_Small_Weights::GENERATION);
    CHECK(generation->lm_head);
    CHECK(generation->named_parameters().contains("decoder.layers.0.self_attn.relative_attention_bias.weight"));
    CHECK(!generation->named_parameters().contains("decoder.layers.1.self_attn.relative_attention_bias.weight"));
  }
}

TEST_CASE("T5 outputs: encoder [B, T, D]; decoder [B, T_dec, D] or logits [B, T_dec, V]; run() names them; freeze_model") {
  torch::manual_seed(0);
  torch::NoGradGuard no_grad;
  const auto ids = torch::tensor({5, 6, 7, 1, 8, 9, 1, 0}, torch::kLong).view({2, 4});
  auto full = mz::t5_small({}, tiny_t5());
  full->eval();
  auto out = full->forward(ids);
  CHECK(out.encoder_output.sizes() == torch::IntArrayRef{2, 4, 16});
  CHECK(out.decoder_output.sizes() == torch::IntArrayRef{2, 1, 16});  // the start token alone
  auto lm = mz::t5_small({}, tiny_t5({{"linear_head", true}}));
  lm->eval();
  const auto dec = torch::tensor({0, 5, 6, 0, 7, 0}, torch::kLong).view({2, 3});
  CHECK(lm->forward(ids, dec).decoder_output.sizes() == torch::IntArrayRef{2, 3, 50});
  mz::TensorDict inputs;
  inputs.insert("input", ids);
  inputs.insert("decoder_input", dec);
  auto named = lm->run(inputs);
  CHECK(named.contains("output"));
  CHECK(named.contains("encoder_output"));
  auto encoder = mz::t5_small({}, tiny_t5({{"encoder_only", true}}));
  encoder->eval();
  CHECK_THROWS_WITH_AS(encoder->run(inputs), "decoder_input: an encoder-only T5 (encoder_only) takes no decoder input",
                       mz::UsageError);
  auto frozen = mz::t5_small({}, tiny_t5({{"freeze_model", true}}));
  for (const auto& p : frozen->parameters()) CHECK(!p.requires_grad());
  inputs = mz::TensorDict();
  inputs.insert("input", torch::tensor({{5, 50, 1}}, torch::kLong));
  CHECK_THROWS_WITH_AS(full->run(inputs), "input: token id 50 is outside the vocabulary [0, 50)", mz::UsageError);
}

TEST_CASE("relative position buckets: torchtext's values, bidirectional and causal") {
  auto model = mz::t5_small({}, tiny_t5());
  auto& attention = *model->encoder->layers->ptr<mz::text::T5LayerImpl>(0)->self_attn;
  {
    torch::NoGradGuard no_grad;  // bias row b holds b: the bias is the bucket
    attention.relative_attention_bias->weight.copy_(torch::arange(32, torch::kFloat).unsqueeze(1).expand({32, 2}));
  }
  const std::vector<std::int64_t> relative = {-200, -20, -5, -1, 0, 1, 5, 20, 200};
  const std::vector<std::int64_t> bidirectional = {15, 10, 5, 1, 0, 17, 21, 26, 31}, causal = {31, 17, 5, 1, 0, 0, 0, 0, 0};
  for (bool both_ways : {true, false}) {
    const auto bias = attention.compute_bias(201, 401, both_ways);  // query 200 sees keys 0..400
    for (std::size_t i = 0; i < relative.size(); ++i) {
      CAPTURE(relative[i]);
      CHECK(bias[0][0][200][200 + relative[i]].item<float>() == (both_ways ? bidirectional : causal)[i]);
    }
  }
}

TEST_CASE("generate: starts with 0, at most max_length steps, zeros after </s>, needs the LM head") {
  torch::manual_seed(1);
  torch::NoGradGuard no_grad;
  const auto ids = torch::tensor({5, 6, 7, 1, 8, 9, 1, 0}, torch::kLong).view({2, 4});
  auto lm = mz::t5_small({}, tiny_t5({{"linear_head", true}}));
  lm->eval();
  auto tokens = lm->generate(ids, 6);
  CHECK(tokens.size(0) == 2);
  CHECK(tokens.size(1) <= 7);
  CHECK(tokens.select(1, 0).eq(0).all().item<bool>());
  CHECK(lm->generate(ids, 0).sizes() == torch::IntArrayRef{2, 1});
  {  // </s> always wins: the decoder layers add nothing to the start token's embedding (ones), whose
     // normalised features (ones) give logit 1 * 16 * 16^-0.5 to </s> and 0 to every other id
    for (const auto& layer : *lm->decoder->layers) {
      auto& l = *layer->as<mz::text::T5LayerImpl>();
      for (auto* w : {&l.self_attn->out_proj->weight, &l.cross_attn->out_proj->weight, &l.linear2->weight}) w->zero_();
    }
    lm->token_embeddings->weight[0].fill_(1);
    lm->norm2->weight.fill_(1);
    lm->lm_head->weight.zero_();
    lm->lm_head->weight[1].fill_(1);
    auto ended = lm->generate(ids, 6);
    CHECK(ended.sizes() == torch::IntArrayRef{2, 2});
    CHECK(ended.select(1, 1).eq(1).all().item<bool>());
  }
  auto full = mz::t5_small({}, tiny_t5());
  CHECK_THROWS_WITH_AS(full->generate(ids, 4), "T5: generation needs the language-model head (linear_head; GENERATION weights)",
                       mz::UsageError);
  CHECK_THROWS_AS(lm->generate(ids.to(torch::kFloat), 4), mz::UsageError);
}

TEST_CASE("state-dict keys in torchtext's order (T5Model(T5Conf(..., 1 layer each, linear_head=True)).state_dict())") {
  mz::ArchitectureOnly uninitialised;
  auto model = mz::t5_small({}, tiny_t5({{"linear_head", true}, {"num_encoder_layers", 1}, {"num_decoder_layers", 1}}));
  std::vector<std::string> keys;
  for (const auto& item : model->named_parameters()) keys.push_back(item.key());
  const std::string attention[] = {"q_proj_weight", "k_proj_weight", "v_proj_weight", "out_proj.weight"};
  std::vector<std::string> want = {"token_embeddings.weight"};
  for (const std::string stack : {"encoder", "decoder"}) {
    const std::string layer = stack + ".layers.0.";
    for (const auto& a : attention) want.push_back(layer + "self_attn." + a);
    want.push_back(layer + "self_attn.relative_attention_bias.weight");
    for (const char* k : {"linear1.weight", "linear2.weight", "norm1.weight", "norm2.weight"}) want.push_back(layer + k);
    if (stack == "decoder") {
      for (const auto& a : attention) want.push_back(layer + "cross_attn." + a);
      want.push_back(layer + "norm3.weight");
    }
    want.push_back(stack == "encoder" ? "norm1.weight" : "norm2.weight");
  }
  want.push_back("lm_head.weight");
  CHECK(keys == want);
}

TEST_CASE("dropout only with training set (T5Conf.training) and in training mode") {
  torch::manual_seed(2);
  const auto ids = torch::tensor({5, 6, 7, 1, 8, 9, 1, 0}, torch::kLong).view({2, 4});
  auto plain = mz::t5_small({}, tiny_t5({{"dropout", 0.5}}));
  plain->train();  // training false: dropout probability 0, as torchtext's T5Model
  CHECK(torch::equal(plain->forward(ids).decoder_output, plain->forward(ids).decoder_output));
  auto dropping = mz::t5_small({}, tiny_t5({{"dropout", 0.5}, {"training", true}}));
  dropping->train();
  CHECK(!torch::equal(dropping->forward(ids).decoder_output, dropping->forward(ids).decoder_output));
  dropping->eval();
  CHECK(torch::equal(dropping->forward(ids).decoder_output, dropping->forward(ids).decoder_output));
}
