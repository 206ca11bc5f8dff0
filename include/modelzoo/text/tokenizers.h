// Text to token ids, as torchtext 0.14.1's transforms do it (torchtext.transforms).
//
//   mz::text::GPT2BPETokenizer gpt2("gpt2_bpe_encoder.json", "gpt2_bpe_vocab.bpe");
//   gpt2.encode("Hello World!").ids;                    // {15496, 2159, 0}
//   mz::text::SentencePieceTokenizer spm("xlmr.sentencepiece.bpe.model");
//   spm.encode("Hello").pieces;                         // {"▁Hello"}
//   auto transform = mz::text::TextTransform::from_weights(mz::XLMR_Base_Weights::ENCODER);  // fetches the assets
//   torch::Tensor ids = transform({"Hello world", "How are you!"});  // int64 [2, T], padded with 1
//
// Errors: text that is not valid UTF-8, or an id outside a vocabulary, is mz::UsageError naming the
// problem; an asset that does not parse is mz::CheckpointError naming the file; one that fails
// verification is the hub's mz::HubError.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <torch/types.h>

#include "modelzoo/weights.h"

namespace mz::text {

// Throws mz::UsageError("text", "invalid UTF-8 at byte N") unless `text` is valid UTF-8.
void check_utf8(std::string_view text);

struct Encoding {
  std::vector<std::int64_t> ids;    // the tokenizer's own ids
  std::vector<std::string> pieces;  // the tokens themselves (GPT-2: byte-encoded BPE tokens; SentencePiece: pieces)
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual Encoding encode(std::string_view text) const = 0;
  virtual std::vector<std::int64_t> ids(std::string_view text) const { return encode(text).ids; }
  // What torchtext's tokenizer transform returns, which its VocabTransform then looks up: GPT-2 ids as
  // decimal strings ("15496"), SentencePiece pieces.
  virtual std::vector<std::string> tokens(std::string_view text) const = 0;
};

// torchtext's GPT2BPETokenizer (csrc/gpt2_bpe_tokenizer.cpp): RE2 pre-tokenisation with the pattern
// (\'s|\'t|\'re|\'ve|\'m|\'ll|\'d| ?\pL+| ?\pN+| ?[^\s\v\pL\pN]+|[\s\v]+) and torchtext's whitespace
// post-processing, byte-to-unicode encoding, then byte-pair merges by rank. Thread-safe.
class GPT2BPETokenizer : public Tokenizer {
 public:
  GPT2BPETokenizer(const std::string& encoder_json_path, const std::string& vocab_bpe_path);
  ~GPT2BPETokenizer() override;
  Encoding encode(std::string_view text) const override;
  std::vector<std::int64_t> ids(std::string_view text) const override;
  std::vector<std::string> tokens(std::string_view text) const override;
  // The pre-tokens of `text` (UTF-8 strings), as torchtext's gpt2_bpe_pre_tokenizer returns them.
  static std::vector<std::string> pre_tokenize(std::string_view text);
  std::size_t vocab_size() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// torchtext's SentencePieceTokenizer over libsentencepiece (the same library as python3-sentencepiece).
class SentencePieceTokenizer : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& model_path);
  ~SentencePieceTokenizer() override;
  Encoding encode(std::string_view text) const override;
  std::vector<std::string> tokens(std::string_view text) const override;
  std::int64_t piece_size() const;
  std::string decode(const std::vector<std::int64_t>& ids) const;  // ids outside the model: mz::UsageError

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// torchtext.vocab.Vocab as torch.save'd in its bundles (xlmr.vocab.pt, roberta.vocab.pt), read through
// the restricted unpickler: token -> index, with an optional default index for unknown tokens.
class Vocab {
 public:
  Vocab(std::vector<std::string> itos, std::optional<std::int64_t> default_index = {});
  static Vocab load(const std::string& path);  // mz::CheckpointError naming the file when it does not parse
  std::int64_t size() const { return static_cast<std::int64_t>(itos_.size()); }
  const std::vector<std::string>& itos() const { return itos_; }
  std::optional<std::int64_t> default_index() const { return default_index_; }
  // lookup_indices: an unknown token gives the default index, or mz::UsageError without one.
  std::vector<std::int64_t> lookup_indices(const std::vector<std::string>& tokens) const;

 private:
  std::vector<std::string> itos_;
  std::unordered_map<std::string, std::int64_t> stoi_;
  std::optional<std::int64_t> default_index_;
};

// The bundle's text transform: tokenizer -> [VocabTransform] -> [Truncate] -> [AddToken begin] ->
// [AddToken end]; a batch is padded with `padding_value` (torchtext.functional.to_tensor).
struct TextTransformOptions {
  std::optional<std::int64_t> max_seq_len;  // Truncate
  std::optional<std::int64_t> begin_token;  // AddToken(token, begin=True)
  std::optional<std::int64_t> end_token;    // AddToken(token, begin=False)
  std::int64_t padding_value = 1;
};

class TextTransform {
 public:
  TextTransform(std::shared_ptr<Tokenizer> tokenizer, std::optional<Vocab> vocab, TextTransformOptions options);
  // The weights' transform (meta.extra "text_transform"), its assets fetched and verified by the hub.
  static TextTransform from_weights(const Weights& weights);
  static TextTransform from_record(const WeightsRecord& record);
  std::vector<std::int64_t> ids(std::string_view text) const;
  std::vector<std::vector<std::int64_t>> ids(const std::vector<std::string>& texts) const;
  torch::Tensor operator()(const std::vector<std::string>& texts) const;  // int64 [B, T], padded
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const std::optional<Vocab>& vocab() const { return vocab_; }
  const TextTransformOptions& options() const { return options_; }

 private:
  std::shared_ptr<Tokenizer> tokenizer_;
  std::optional<Vocab> vocab_;
  TextTransformOptions options_;
};

// torchtext.functional.to_tensor(batch, padding_value): rows padded at the end to the longest.
torch::Tensor pad_ids(const std::vector<std::vector<std::int64_t>>& batch, std::int64_t padding_value);

}  // namespace mz::text
