// torchtext's VocabTransform, Truncate, AddToken and to_tensor, and a bundle's whole text transform.
#include <algorithm>

#include "modelzoo/errors.h"
#include "modelzoo/hub.h"
#include "modelzoo/text/tokenizers.h"
#include "weights/checkpoint/formats/formats.h"
#include "weights/json_number.h"

namespace mz::text {

std::string read_asset(const std::string& path);  // gpt2_bpe.cpp

Vocab::Vocab(std::vector<std::string> itos, std::optional<std::int64_t> default_index)
    : itos_(std::move(itos)), default_index_(default_index) {
  // torchtext's Vocab keeps the first index of a repeated token
  for (std::size_t i = 0; i < itos_.size(); ++i) stoi_.emplace(itos_[i], static_cast<std::int64_t>(i));
}

Vocab Vocab::load(const std::string& path) {
  const std::string bytes = read_asset(path);
  formats::ByteView view{reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()};
  formats::TorchtextVocab v = formats::parse_torchtext_vocab(view, path);
  return Vocab(std::move(v.itos), v.has_default_index ? std::optional<std::int64_t>(v.default_index) : std::nullopt);
}

std::vector<std::int64_t> Vocab::lookup_indices(const std::vector<std::string>& tokens) const {
  std::vector<std::int64_t> out;
  out.reserve(tokens.size());
  for (const auto& t : tokens) {
    auto it = stoi_.find(t);
    if (it != stoi_.end()) out.push_back(it->second);
    else if (default_index_) out.push_back(*default_index_);
    else throw UsageError("text", "token " + nlohmann::json(t).dump() + " is not in the vocabulary, which has no default index");
  }
  return out;
}

TextTransform::TextTransform(std::shared_ptr<Tokenizer> tokenizer, std::optional<Vocab> vocab,
                             TextTransformOptions options)
    : tokenizer_(std::move(tokenizer)), vocab_(std::move(vocab)), options_(options) {
  if (!tokenizer_) throw UsageError("TextTransform", "no tokenizer");
  if (options_.max_seq_len && *options_.max_seq_len < 0) throw UsageError("TextTransform", "negative max_seq_len");
}

std::vector<std::int64_t> TextTransform::ids(std::string_view text) const {
  std::vector<std::int64_t> ids = vocab_ ? vocab_->lookup_indices(tokenizer_->tokens(text)) : tokenizer_->ids(text);
  if (options_.max_seq_len && static_cast<std::int64_t>(ids.size()) > *options_.max_seq_len)
    ids.resize(static_cast<std::size_t>(*options_.max_seq_len));
  if (options_.begin_token) ids.insert(ids.begin(), *options_.begin_token);
  if (options_.end_token) ids.push_back(*options_.end_token);
  return ids;
}

std::vector<std::vector<std::int64_t>> TextTransform::ids(const std::vector<std::string>& texts) const {
  std::vector<std::vector<std::int64_t>> out;
  for (const auto& t : texts) out.push_back(ids(t));
  return out;
}

torch::Tensor TextTransform::operator()(const std::vector<std::string>& texts) const {
  return pad_ids(ids(texts), options_.padding_value);
}

torch::Tensor pad_ids(const std::vector<std::vector<std::int64_t>>& batch, std::int64_t padding_value) {
  std::size_t width = 0;
  for (const auto& row : batch) width = std::max(width, row.size());
  auto out = torch::full({static_cast<std::int64_t>(batch.size()), static_cast<std::int64_t>(width)}, padding_value,
                         torch::kLong);
  auto a = out.accessor<std::int64_t, 2>();
  for (std::size_t i = 0; i < batch.size(); ++i)
    for (std::size_t j = 0; j < batch[i].size(); ++j) a[i][j] = batch[i][j];
  return out;
}

namespace {

// An asset of a weights record (a tokenizer file, a vocabulary) as a record of its own, so that the hub
// fetches, verifies and caches it as it does weights.
std::string fetch_asset(const WeightsRecord& owner, const std::string& url) {
  return hub::fetch(hub::asset_record(owner, url));
}

}  // namespace

TextTransform TextTransform::from_weights(const Weights& weights) { return from_record(weights.record()); }

TextTransform TextTransform::from_record(const WeightsRecord& record) {
  const auto& extra = record.meta.extra;
  if (!extra.contains("text_transform") || !extra["text_transform"].is_array())
    throw UsageError(record.name(), "has no text transform (meta.text_transform)");
  std::shared_ptr<Tokenizer> tokenizer;
  std::optional<Vocab> vocab;
  TextTransformOptions options;
  options.padding_value = extra.value("padding_value", std::int64_t{1});
  try {
    for (const auto& step : extra["text_transform"]) {
      const std::string op = step.at("op").get<std::string>();
      if (op == "GPT2BPETokenizer") {
        tokenizer = std::make_shared<GPT2BPETokenizer>(fetch_asset(record, step.at("encoder_json_path").get<std::string>()),
                                                       fetch_asset(record, step.at("vocab_bpe_path").get<std::string>()));
      } else if (op == "SentencePieceTokenizer") {
        tokenizer = std::make_shared<SentencePieceTokenizer>(fetch_asset(record, step.at("sp_model_path").get<std::string>()));
      } else if (op == "T5Transform") {  // SentencePiece ids -> Truncate -> eos appended -> padded
        tokenizer = std::make_shared<SentencePieceTokenizer>(fetch_asset(record, step.at("sp_model_path").get<std::string>()));
        options.max_seq_len = detail::integer<std::int64_t>(step.at("max_seq_len"), record.name(), "text_transform max_seq_len");
        options.end_token = detail::integer<std::int64_t>(step.at("eos_idx"), record.name(), "text_transform eos_idx");
        options.padding_value = detail::integer<std::int64_t>(step.at("padding_idx"), record.name(), "text_transform padding_idx");
      } else if (op == "VocabTransform") {
        vocab = Vocab::load(fetch_asset(record, step.at("vocab").get<std::string>()));
      } else if (op == "Truncate") {
        options.max_seq_len = detail::integer<std::int64_t>(step.at("max_seq_len"), record.name(), "text_transform max_seq_len");
      } else if (op == "AddToken") {
        (step.at("begin").get<bool>() ? options.begin_token : options.end_token) = detail::integer<std::int64_t>(step.at("token"), record.name(), "text_transform token");
      } else {
        throw UsageError(record.name(), "unknown text transform step '" + op + "'");
      }
    }
  } catch (const nlohmann::json::exception& e) {
    throw UsageError(record.name(), std::string("malformed text transform: ") + e.what());
  }
  return TextTransform(std::move(tokenizer), std::move(vocab), options);
}

}  // namespace mz::text
