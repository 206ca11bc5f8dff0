// Weights records of torchtext 0.14.1's text models: RoBERTa and XLM-R, base and large
// (torchtext.models.roberta.bundler), and T5's 15 prototype bundles (torchtext.prototype.models.t5).
// Upstream's file names carry no hash: the hub records the SHA-256 of the first download. meta.extra
// holds the bundle's name, its configuration ("config": RobertaEncoderConf or T5Conf), its text
// transform as data ("text_transform": the steps and the URLs of their assets, which the hub fetches
// and caches like weights) and the padding value. Checked field for field by tests/oracle/tt_dump.py.
#include "weights/records.h"

namespace mz::data {
namespace {

constexpr const char* kBucket = "https://download.pytorch.org/models/text/";

std::string bucket(const char* file) { return std::string(kBucket) + file; }

nlohmann::json encoder_conf(std::int64_t vocab_size, std::int64_t dim, std::int64_t ffn, std::int64_t heads,
                            std::int64_t layers) {
  return {{"vocab_size", vocab_size}, {"embedding_dim", dim},       {"ffn_dimension", ffn},
          {"padding_idx", 1},         {"max_seq_len", 514},         {"num_attention_heads", heads},
          {"num_encoder_layers", layers}, {"dropout", 0.1},         {"scaling", nullptr},
          {"normalize_before", false}};
}

// Tokenizer -> VocabTransform -> Truncate(max_seq_len) -> AddToken(0, begin) -> AddToken(2, end).
nlohmann::json roberta_transform(nlohmann::json tokenizer, const char* vocab, std::int64_t max_seq_len) {
  return nlohmann::json::array({std::move(tokenizer),
                                {{"op", "VocabTransform"}, {"vocab", bucket(vocab)}},
                                {{"op", "Truncate"}, {"max_seq_len", max_seq_len}},
                                {{"op", "AddToken"}, {"token", 0}, {"begin", true}},
                                {{"op", "AddToken"}, {"token", 2}, {"begin", false}}});
}

nlohmann::json gpt2_transform(std::int64_t max_seq_len) {
  return roberta_transform({{"op", "GPT2BPETokenizer"},
                            {"encoder_json_path", bucket("gpt2_bpe_encoder.json")},
                            {"vocab_bpe_path", bucket("gpt2_bpe_vocab.bpe")}},
                           "roberta.vocab.pt", max_seq_len);
}

nlohmann::json xlmr_transform(std::int64_t max_seq_len) {
  return roberta_transform({{"op", "SentencePieceTokenizer"}, {"sp_model_path", bucket("xlmr.sentencepiece.bpe.model")}},
                           "xlmr.vocab.pt", max_seq_len);
}

constexpr const char* kRobertaDocs =
    "RoBERTa iterates on BERT's pretraining procedure, including training the model longer, with bigger batches "
    "over more data; removing the next sentence prediction objective; training on longer sequences; and dynamically "
    "changing the masking pattern applied to the training data. The RoBERTa model was pretrained on the reunion of "
    "five datasets: BookCorpus, English Wikipedia, CC-News, OpenWebText, and STORIES. Together theses datasets "
    "contain over a 160GB of text. Originally published by the authors of RoBERTa under MIT License and "
    "redistributed with the same license. [`License <https://github.com/pytorch/fairseq/blob/main/LICENSE>`__, "
    "`Source <https://github.com/pytorch/fairseq/tree/main/examples/roberta#pre-trained-models>`__] Please refer to "
    ":func:`torchtext.models.RobertaBundle` for the usage.";
constexpr const char* kXlmrDocs =
    "The XLM-RoBERTa model was proposed in `Unsupervised Cross-lingual Representation Learning at Scale "
    "<https://arxiv.org/abs/1911.02116>`. It is a large multi-lingual language model, trained on 2.5TB of filtered "
    "CommonCrawl data and based on the RoBERTa model architecture. Originally published by the authors of "
    "XLM-RoBERTa under MIT License and redistributed with the same license. [`License "
    "<https://github.com/pytorch/fairseq/blob/main/LICENSE>`__, `Source "
    "<https://github.com/pytorch/fairseq/tree/main/examples/xlmr#pre-trained-models>`__] Please refer to "
    ":func:`torchtext.models.RobertaBundle` for the usage.";

WeightsRecord encoder(const char* enum_name, const char* bundle, const char* file, std::int64_t num_params,
                      nlohmann::json config, nlohmann::json transform, const std::string& docs) {
  WeightsRecord r;
  r.enum_name = enum_name;
  r.value_name = "ENCODER";
  r.url = bucket(file);
  r.meta.num_params = num_params;
  r.meta.docs = docs;
  r.meta.extra = {{"bundle", bundle},
                  {"config", std::move(config)},
                  {"text_transform", std::move(transform)},
                  {"padding_value", 1}};
  r.transforms.preset = "TextTransform";
  return r;
}

// T5 (torchtext.prototype.models.t5.bundler): per size, the encoder-only, the encoder-decoder and the
// generation (linear_head) bundles, all with T5Transform(t5_tokenizer_base.model, max_seq_len=512,
// eos_idx=1, padding_idx=0). Value names: ENCODER, FULL, GENERATION; DEFAULT is FULL, the
// configuration of T5Conf's defaults (encoder_only and linear_head false).
struct T5Size {
  const char* enum_name;  // T5_Small_Weights
  const char* upper;      // bundle names: T5_SMALL_ENCODER, T5_SMALL, T5_SMALL_GENERATION
  const char* file;       // t5.small.encoder.pt, t5.small.pt, t5.small.generation.pt
  const char* doc_name;   // "small", "3B"
  std::int64_t dim, qkv_dim, heads, layers, ffn;
  std::int64_t num_params[3];  // encoder, full, generation
};

constexpr const char* kT5Docs =
    "The T5 model was proposed in `Exploring the Limits of Transfer Learning with a Unified Text-to-Text "
    "Transformer <http://jmlr.org/papers/v21/20-074.html>`. It introduces a unified framework that converts "
    "text-based language problems, such as translation, question-answering, and summarization, into a text-to-text "
    "format. The Colossal Clean Crawled Corpus (C4) dataset is used to pre-train the model on a masked language "
    "modeling task, and various datasets are used to fine-tune the model on each downstream task. The model's "
    "architecture is a modified version of the canonical Transformer architecture. Originally published by the "
    "authors of T5 under Apache License, Version 2.0 and redistributed with the same license. [`License "
    "<https://github.com/google-research/text-to-text-transfer-transformer/blob/main/LICENSE>`__, `Source "
    "<https://github.com/google-research/text-to-text-transfer-transformer#released-model-checkpoints>`__] Please "
    "refer to :func:`torchtext.prototype.models.T5Bundle` for the usage.";

std::vector<WeightsRecord> t5(const T5Size& s) {
  static const char* const kValues[] = {"ENCODER", "FULL", "GENERATION"};
  static const char* const kBundleSuffix[] = {"_ENCODER", "", "_GENERATION"};
  static const char* const kFileSuffix[] = {".encoder.pt", ".pt", ".generation.pt"};
  static const char* const kWhat[] = {
      " is an encoder-only model from a pre-trained T5 model with the %s configuration. It returns the normalized "
      "output from the final layer of the encoder. ",
      " is an encoder-decoder model from a pre-trained T5 model with the %s configuration. It returns the normalized "
      "output from the final layer of the decoder. ",
      " is an encoder-decoder model from a pre-trained T5 model with the %s configuration. It returns the output of "
      "the final layer of the decoder after passing through a linear layer to project the hidden states to the model "
      "vocabulary. This output can then be used for language generation. "};
  std::vector<WeightsRecord> out;
  for (int i = 0; i < 3; ++i) {
    const std::string bundle = std::string(s.upper) + kBundleSuffix[i];
    std::string what = kWhat[i];
    what.replace(what.find("%s"), 2, s.doc_name);
    WeightsRecord r;
    r.enum_name = s.enum_name;
    r.value_name = kValues[i];
    r.url = bucket((std::string(s.file) + kFileSuffix[i]).c_str());
    r.meta.num_params = s.num_params[i];
    r.meta.docs = bundle + what + kT5Docs;
    const nlohmann::json config = {
        {"encoder_only", i == 0}, {"linear_head", i == 2}, {"embedding_dim", s.dim}, {"qkv_dim", s.qkv_dim},
        {"num_attention_heads", s.heads}, {"num_encoder_layers", s.layers}, {"num_decoder_layers", s.layers},
        {"ffn_dimension", s.ffn}, {"dropout", 0.1}, {"activation", "relu"}, {"layer_norm_eps", 1e-6},
        {"relative_attention_num_buckets", 32}, {"relative_attention_max_distance", 128}, {"padding_idx", 0},
        {"max_seq_len", 512}, {"vocab_size", 32128}, {"training", false}};
    r.meta.extra = {{"bundle", bundle},
                    {"config", config},
                    {"text_transform", nlohmann::json::array({{{"op", "T5Transform"},
                                                               {"sp_model_path", bucket("t5_tokenizer_base.model")},
                                                               {"max_seq_len", 512},
                                                               {"eos_idx", 1},
                                                               {"padding_idx", 0}}})},
                    {"padding_value", 0}};
    r.transforms.preset = "TextTransform";
    out.push_back(std::move(r));
  }
  return out;
}

// NOLINTNEXTLINE(cert-err58-cpp): registration at load time is the point.
const bool registered =
    add("text", "roberta_base", "ENCODER", {
        encoder("RoBERTa_Base_Weights", "ROBERTA_BASE_ENCODER", "roberta.base.encoder.pt", 124054272,
                encoder_conf(50265, 768, 3072, 12, 12), gpt2_transform(254),
                std::string("Roberta Encoder with Base configuration ") + kRobertaDocs),
    }) &&
    add("text", "roberta_large", "ENCODER", {
        encoder("RoBERTa_Large_Weights", "ROBERTA_LARGE_ENCODER", "roberta.large.encoder.pt", 354309120,
                encoder_conf(50265, 1024, 4096, 16, 24), gpt2_transform(510),
                std::string("Roberta Encoder with Large configuration ") + kRobertaDocs),
    }) &&
    add("text", "xlmr_base", "ENCODER", {
        encoder("XLMR_Base_Weights", "XLMR_BASE_ENCODER", "xlmr.base.encoder.pt", 277452288,
                encoder_conf(250002, 768, 3072, 12, 12), xlmr_transform(254),
                std::string("XLM-R Encoder with Base configuration ") + kXlmrDocs),
    }) &&
    add("text", "xlmr_large", "ENCODER", {
        encoder("XLMR_Large_Weights", "XLMR_LARGE_ENCODER", "xlmr.large.encoder.pt", 558839808,
                encoder_conf(250002, 1024, 4096, 16, 24), xlmr_transform(510),
                std::string("XLM-R Encoder with Large configuration ") + kXlmrDocs),
    }) &&
    add("text", "t5_small", "FULL",
        t5({"T5_Small_Weights", "T5_SMALL", "t5.small", "small", 512, 64, 8, 6, 2048, {35330816, 60506624, 76956160}})) &&
    add("text", "t5_base", "FULL",
        t5({"T5_Base_Weights", "T5_BASE", "t5.base", "base", 768, 64, 12, 12, 3072, {109628544, 222903552, 247577856}})) &&
    add("text", "t5_large", "FULL",
        t5({"T5_Large_Weights", "T5_LARGE", "t5.large", "large", 1024, 64, 16, 24, 4096,
            {334939648, 737668096, 770567168}})) &&
    add("text", "t5_3b", "FULL",
        t5({"T5_3B_Weights", "T5_3B", "t5.3b", "3B", 1024, 128, 32, 24, 16384, {1240909824, 2851598336, 2884497408}})) &&
    add("text", "t5_11b", "FULL",
        t5({"T5_11B_Weights", "T5_11B", "t5.11b", "11B", 1024, 128, 128, 24, 65536,
            {4864791552, 11307321344, 11340220416}}));

}  // namespace
}  // namespace mz::data
