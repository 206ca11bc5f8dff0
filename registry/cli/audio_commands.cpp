// mz transcribe: speech files to text with an ASR bundle's weights (greedy CTC over its labels).
#include <iostream>

#include <torch/torch.h>

#include "modelzoo/modelzoo.h"
#include "registry/cli/cli.h"
#include "weights/json_number.h"

namespace mz::cli {
namespace {

using nlohmann::json;

struct TranscribeArgs {
  std::string weight, checkpoint;
  std::vector<std::string> files;
  bool json = false;
};

void run_transcribe(const TranscribeArgs& a) {
  for (const std::string& file : a.files)  // before fetching the weights
    if (const std::string why = unreadable_file(file); !why.empty()) throw AudioError(file, why);
  const WeightsRecord& w = get_weight(a.weight);
  if (w.task != "audio" || !w.meta.extra.contains("labels"))
    throw UsageError(w.name(), "mz transcribe needs the weights of an ASR bundle (with labels)");
  const auto labels = w.meta.extra.at("labels").get<std::vector<std::string>>();
  const auto sample_rate = detail::integer<std::int64_t>(w.meta.extra.at("sample_rate"), w.name(), "meta.sample_rate");
  const ModelInfo& info = model_info(w.model);
  std::optional<Model> model;
  if (a.checkpoint.empty()) {
    model = info.build(w.name(), json::object());
  } else {
    {
      ArchitectureOnly uninitialised;  // the weights' configuration (aux rows, rows to drop); the file fills it
      model = info.build(w.name(), json::object());
    }
    load_checkpoint(*model->module, a.checkpoint);  // aux as released or already trimmed: told apart by shape
  }
  auto* encoder = dynamic_cast<Wav2Vec2ModelImpl*>(model->module.get());
  if (!encoder) throw UsageError(w.model, "is not a speech encoder");
  encoder->eval();
  torch::InferenceMode guard;
  json results = json::array();
  for (const std::string& file : a.files) {
    const torch::Tensor wave = audio::load_waveform(file, sample_rate);
    if (encoder->feature_extractor->output_length(wave.size(0)) < 1)
      throw AudioError(file, "too short: " + std::to_string(wave.size(0)) + " samples at " +
                                 std::to_string(sample_rate) + " Hz give the model no frame");
    const torch::Tensor emissions = encoder->forward(wave.unsqueeze(0)).first[0];
    const auto ids = audio::ctc_greedy_ids(emissions);
    const std::string text = audio::ctc_greedy_text(ids, labels);
    if (a.json) results.push_back({{"file", file}, {"text", text}, {"ids", ids}});
    else std::cout << text << std::endl;
  }
  if (a.json) std::cout << results.dump(1) << "\n";
}

}  // namespace

void add_audio_commands(CLI::App& app) {
  auto ta = std::make_shared<TranscribeArgs>();
  auto* transcribe = app.add_subcommand(
      "transcribe", "Speech to text with an ASR bundle's weights: decode (WAV, FLAC, Ogg/Vorbis, ...), mix down to "
                    "mono, resample to the bundle's rate, greedy CTC; one line of text per file");
  transcribe->add_option("WEIGHT", ta->weight, "ASR weights, e.g. Wav2Vec2Base_Weights.WAV2VEC2_ASR_BASE_960H")
      ->required();
  transcribe->add_option("AUDIO", ta->files, "Audio files")->required();
  transcribe->add_option("--checkpoint", ta->checkpoint,
                         "A file in torchaudio's model layout instead of the download (aux as released or trimmed)");
  transcribe->add_flag("--json", ta->json, "JSON: per file its text and frame-level label ids");
  transcribe->callback([ta] { run_transcribe(*ta); });
}

}  // namespace mz::cli
