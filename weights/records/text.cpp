// Weights records of torchtext 0.14.1's text encoders (torchtext.models.roberta.bundler): RoBERTa and
// XLM-R, base and large. Upstream's file names carry no hash: the hub records the SHA-256 of the first
// download. meta.extra holds the bundle's name, its RobertaEncoderConf ("config"), its text transform
// as data ("text_transform": the steps and the URLs of their assets, which the hub fetches and
// caches like weights) and the padding value. Checked field for field by tests/oracle/tt_dump.py.
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
    });

}  // namespace
}  // namespace mz::data
