// What the text builders share: configuration from a weights record's meta.config with the caller's
// options, a task head over the encoder's features, and the checks of token ids every text model's run()
// makes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <torch/types.h>

#include "builders/common.h"
#include "modelzoo/checkpoint.h"
#include "modelzoo/text/heads.h"
#include "modelzoo/text/roberta.h"  // text::EmbeddingImpl

namespace mz::text {

// A builder's configuration source: the weights' record (or the DEFAULT weights' when none are given),
// whose meta.config holds the Python conf's fields. Without weights an option overrides the config;
// with weights an option that contradicts it is mz::UsageError naming the weights.
class ConfigSource {
 public:
  ConfigSource(const WeightsRecord& record, bool with_weights, const char* builder)
      : config_(record.meta.extra.at("config")),
        with_weights_(with_weights),
        subject_(with_weights ? record.name() : std::string(builder)) {}
  template <class T>
  T pick(const std::optional<T>& given, const char* key) const {
    const T value = config_.at(key).get<T>();
    return with_weights_ ? detail::override_param(given, value, key, subject_) : given.value_or(value);
  }
  // An option that changes no weight (dropout): the caller's value wins, weights or not.
  template <class T>
  T free(const std::optional<T>& given, const char* key) const {
    return given.value_or(config_.at(key).get<T>());
  }
  const std::string& subject() const { return subject_; }

 private:
  const nlohmann::json& config_;
  bool with_weights_;
  std::string subject_;
};

// The head `options` (TextHeadOptions as JSON; null: none) over features of width `dim`. The masked-LM
// head's projection is the token embedding matrix `*tied` points to when it runs (set it once the model
// exists).
inline std::shared_ptr<TextHeadImpl> make_head(const nlohmann::json& options, const char* builder, std::int64_t dim,
                                               std::int64_t vocab_size,
                                               std::shared_ptr<std::weak_ptr<EmbeddingImpl>> tied) {
  if (options.is_null()) return nullptr;
  return make_text_head(options_from_json<TextHeadOptions>(options, std::string(builder) + " head"), dim, vocab_size,
                        [tied] {
                          auto embedding = tied->lock();
                          if (!embedding) throw UsageError("head", "its encoder no longer exists");
                          return embedding->weight;
                        });
}

// Loading weights under a head: the fresh head wins over anything the checkpoint has for it (torchtext's
// get_model(head=...)), and the report lists those keys as skipped.
inline LoadOptions load_options_with_head(bool has_head) {
  LoadOptions load;
  if (has_head) {
    load.skip = {"head.*"};
    load.reinit_skipped = false;
  }
  return load;
}

// Token ids [B, T]: defined, integers, 2-D, within [0, vocab_size); else mz::UsageError naming `what`.
inline void check_token_ids(const torch::Tensor& tokens, const std::string& what, std::int64_t vocab_size) {
  if (!tokens.defined()) throw UsageError(what, "no tensor (token ids [B, T] are needed)");
  if (c10::isFloatingType(tokens.scalar_type()) || c10::isComplexType(tokens.scalar_type()) ||
      tokens.scalar_type() == torch::kBool)
    throw UsageError(what, std::string("token ids must be integers (int64), got ") + c10::toString(tokens.scalar_type()));
  if (tokens.dim() != 2) throw UsageError(what, "token ids must be [B, T], got " + c10::str(tokens.sizes()));
  if (tokens.numel() == 0) return;
  const auto lo = tokens.min().item<std::int64_t>(), hi = tokens.max().item<std::int64_t>();
  if (lo < 0 || hi >= vocab_size)
    throw UsageError(what, "token id " + std::to_string(lo < 0 ? lo : hi) + " is outside the vocabulary [0, " +
                               std::to_string(vocab_size) + ")");
}

}  // namespace mz::text
