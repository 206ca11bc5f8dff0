// Spec components: the text encoder and heads (torchtext's kwargs), and the speech heads.
#include "builders/spec/parts.h"
#include "modelzoo/audio/heads.h"
#include "modelzoo/text/heads.h"
#include "modelzoo/text/roberta.h"

namespace mz::spec {
namespace {

// torchtext's RobertaEncoderConf, a plain JSON object: unset fields keep RoBERTa base's values.
RobertaEncoderConf encoder_conf(Args& a) {
  RobertaEncoderConf conf;
  const nlohmann::json given = a.get<nlohmann::json>("encoder_conf", nlohmann::json::object());
  if (!given.is_object()) throw UsageError(a.path("encoder_conf"), "a JSON object, got " + given.dump());
  const std::vector<std::pair<const char*, std::int64_t*>> ints = {
      {"vocab_size", &conf.vocab_size},       {"embedding_dim", &conf.embedding_dim},
      {"ffn_dimension", &conf.ffn_dimension}, {"padding_idx", &conf.padding_idx},
      {"max_seq_len", &conf.max_seq_len},     {"num_attention_heads", &conf.num_attention_heads},
      {"num_encoder_layers", &conf.num_encoder_layers}};
  std::string valid = "dropout, scaling, normalize_before";
  for (const auto& [name, field] : ints) valid += std::string(", ") + name;
  for (const auto& [key, value] : given.items()) {
    const std::string where = a.path("encoder_conf." + key);
    try {
      auto field = std::find_if(ints.begin(), ints.end(), [&](const auto& f) { return key == f.first; });
      if (field != ints.end() && value.is_number_integer()) *field->second = value.get<std::int64_t>();
      else if (key == "dropout" && value.is_number()) conf.dropout = value.get<double>();
      else if (key == "normalize_before" && value.is_boolean()) conf.normalize_before = value.get<bool>();
      else if (key == "scaling" && (value.is_number() || value.is_null())) continue;  // unused, as in torchtext
      else if (field != ints.end() || key == "dropout" || key == "normalize_before" || key == "scaling")
        throw UsageError(where, "wrong type for RobertaEncoderConf: " + value.dump());
      else
        throw UsageError(where, "unknown field of RobertaEncoderConf (valid: " + valid + ")");
    } catch (const nlohmann::json::exception& e) {
      throw UsageError(where, e.what());
    }
  }
  return conf;
}

}  // namespace

MZ_REGISTER_COMPONENT(RobertaModel, [](Args& a) {
  RobertaModel model(encoder_conf(a), a.get<std::shared_ptr<TextHeadImpl>>("head", nullptr));
  if (!architecture_only()) {  // torchtext's init; the head initialised itself when it was built
    model->encoder->reset_parameters();
  }
  if (a.get("freeze_encoder", false)) model->freeze_encoder();
  return model;
});
MZ_REGISTER_COMPONENT(RobertaClassificationHead, [](Args& a) {
  return initialised(RobertaClassificationHead(a.get<std::int64_t>("num_classes"), a.get<std::int64_t>("input_dim"),
                                               a.get<std::optional<std::int64_t>>("inner_dim", std::nullopt),
                                               a.get("dropout", 0.1)));
});
MZ_REGISTER_COMPONENT(TokenClassificationHead, [](Args& a) {
  return initialised(TokenClassificationHead(a.get<std::int64_t>("num_classes"), a.get<std::int64_t>("input_dim"),
                                             a.get("dropout", 0.1)));
});
MZ_REGISTER_COMPONENT(SpanHead, [](Args& a) { return initialised(SpanHead(a.get<std::int64_t>("input_dim"))); });

MZ_REGISTER_COMPONENT(wav2vec2_model, [](Args& a) { return wav2vec2_model(a.options<Wav2Vec2ModelOptions>()); });
MZ_REGISTER_COMPONENT(UtteranceClassificationHead, [](Args& a) {
  return UtteranceClassificationHead(a.get<std::int64_t>("in_features"), a.get<std::int64_t>("num_classes"));
});
// Named inputs as a speech encoder's: float "input" [B, T], optional int64 "lengths" [B] -> "output" [B, C].
MZ_REGISTER_COMPONENT(SpeechClassifier, [](Args& a) {
  SpeechClassifier model(a.get<Wav2Vec2Model>("encoder"), a.get<std::int64_t>("num_classes"),
                         a.get<std::optional<std::int64_t>>("probe_layers", std::nullopt));
  Part part = make_part(model);
  part.run = [m = model.ptr()](const TensorDict& in) {
    return detail::as_dict(m->forward(detail::tensor_input(in), in.contains("lengths") ? in.at("lengths") : torch::Tensor()));
  };
  return part;
});

}  // namespace mz::spec
