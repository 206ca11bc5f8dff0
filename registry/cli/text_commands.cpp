// mz tokenize | embed | generate: text through a weight's tokenizer pipeline (or one's own tokenizer
// files), through its encoder, or through T5's greedy decoding and back to text.
#include <ctime>
#include <fstream>
#include <iostream>

#include <torch/torch.h>

#include "modelzoo/modelzoo.h"
#include "modelzoo/text/tokenizers.h"
#include "registry/cli/build.h"
#include "registry/cli/cli.h"

namespace mz::cli {
namespace {

using nlohmann::json;

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// A weight name gives the weight; a model name its DEFAULT weight.
const WeightsRecord& text_weight(const std::string& name) {
  const WeightsRecord& w = name.find('.') != std::string::npos ? get_weight(name) : get_weight(model_info(name).default_weights());
  if (w.task != "text") throw UsageError(w.name(), "is not a text weight (task " + w.task + ")");
  return w;
}

struct TokenizeArgs {
  std::vector<std::string> args;  // [WEIGHT] TEXT...
  std::string sentencepiece, vocab, file;
  std::pair<std::string, std::string> gpt2;  // ENCODER_JSON VOCAB_BPE
  bool json = false, stats = false;
};

// The weight's whole transform, or the local tokenizer (+ vocabulary) with nothing added.
std::pair<text::TextTransform, std::vector<std::string>> transform_and_texts(const TokenizeArgs& a) {
  if (!a.sentencepiece.empty() && !a.gpt2.first.empty()) throw UsageError("mz tokenize", "give only one of --sentencepiece and --gpt2");
  std::shared_ptr<text::Tokenizer> tokenizer;
  if (!a.sentencepiece.empty()) tokenizer = std::make_shared<text::SentencePieceTokenizer>(a.sentencepiece);
  if (!a.gpt2.first.empty()) tokenizer = std::make_shared<text::GPT2BPETokenizer>(a.gpt2.first, a.gpt2.second);
  if (tokenizer) {
    std::optional<text::Vocab> vocab;
    if (!a.vocab.empty()) vocab = text::Vocab::load(a.vocab);
    text::TextTransformOptions raw;  // no truncation, no added tokens
    return {text::TextTransform(tokenizer, std::move(vocab), raw), a.args};
  }
  if (!a.vocab.empty()) throw UsageError("--vocab", "goes with --sentencepiece or --gpt2 (a weight brings its own)");
  if (a.args.empty()) throw UsageError("mz tokenize", "give a WEIGHT (or --sentencepiece / --gpt2) and TEXT");
  const WeightsRecord& w = text_weight(a.args.front());
  return {text::TextTransform::from_record(w), std::vector<std::string>(a.args.begin() + 1, a.args.end())};
}

void run_tokenize(const TokenizeArgs& a) {
  auto [transform, texts] = transform_and_texts(a);
  if (!a.file.empty()) {
    std::ifstream in(a.file, std::ios::binary);
    if (!in) throw UsageError(a.file, "cannot open");
    for (std::string line; std::getline(in, line);) texts.push_back(line);
  }
  std::vector<std::vector<std::int64_t>> all(texts.size());
  std::size_t tokens = 0;
  const double start = cpu_seconds();
  for (std::size_t i = 0; i < texts.size(); ++i) tokens += (all[i] = transform.ids(texts[i])).size();
  const double spent = cpu_seconds() - start;
  if (a.stats)  // the tokenising alone, in this process's CPU time (what scripts/bench_text.sh compares)
    std::cerr << json{{"texts", texts.size()}, {"tokens", tokens}, {"cpu_seconds", spent}}.dump() << "\n";
  json out = json::array();
  std::string lines;  // written at once: a stream write per line costs more than tokenising it
  for (std::size_t k = 0; k < texts.size(); ++k) {
    const std::string& t = texts[k];
    const std::vector<std::int64_t>& ids = all[k];
    if (a.json) {
      out.push_back({{"text", t}, {"ids", ids}, {"pieces", transform.tokenizer().encode(t).pieces}});
      continue;
    }
    for (std::size_t i = 0; i < ids.size(); ++i) (lines += i ? " " : "") += std::to_string(ids[i]);
    lines += "\n";
  }
  std::cout << (a.json ? out.dump(1) + "\n" : lines) << std::flush;
}

struct EmbedArgs {
  std::string weight, checkpoint, output, options = "{}";
  std::vector<std::string> texts;
  bool json = false;
};

void run_embed(const EmbedArgs& a) {
  if (!a.output.empty()) check_output_file(a.output);
  const WeightsRecord& w = text_weight(a.weight);
  const json options = parse_options(a.options, std::nullopt);
  const text::TextTransform transform = text::TextTransform::from_record(w);
  const torch::Tensor ids = transform(a.texts);
  Model model = build(w.model, a.checkpoint, a.checkpoint.empty() ? w.name() : "", options);
  std::optional<LoadReport> report;
  if (const auto* roberta = dynamic_cast<const RobertaModelImpl*>(model.module.get())) report = roberta->load_report;
  if (const auto* t5 = dynamic_cast<const T5ModelImpl*>(model.module.get())) report = t5->load_report;
  if (report && !report->skipped.empty())  // torchtext's get_model(head=...) says nothing; we do
    std::cerr << "mz embed: " << report->skipped.size() << " head tensors are freshly initialised (not in " << w.name()
              << ")\n";
  model.module->eval();
  torch::InferenceMode guard;
  TensorDict inputs;
  inputs.insert("input", ids);
  TensorDict outputs = model.run(inputs);
  if (!a.output.empty()) {
    outputs.insert("input", ids);
    save_safetensors(a.output, outputs);
  }
  // an encoder-decoder (T5) embeds with its encoder
  const std::string key = outputs.contains("encoder_output") ? "encoder_output" : outputs.contains("output") ? "output" : outputs.front().key();
  const torch::Tensor features = outputs.at(key);
  if (a.json) {
    json out = json::array();
    for (std::size_t i = 0; i < a.texts.size(); ++i) {
      const torch::Tensor row = features[static_cast<std::int64_t>(i)].contiguous().to(torch::kFloat64);
      json entry = {{"text", a.texts[i]}, {"ids", transform.ids(a.texts[i])}, {"shape", row.sizes().vec()}};
      // the first position's features: the <s> token, which RobertaClassificationHead reads
      const torch::Tensor first = row.dim() >= 2 ? row[0] : row;
      entry["first"] = std::vector<double>(first.data_ptr<double>(), first.data_ptr<double>() + first.numel());
      out.push_back(entry);
    }
    std::cout << out.dump() << "\n";
  } else if (a.output.empty()) {
    std::cout << "output " << features.sizes() << "\n";
  } else {
    std::cout << a.output << "\n";
  }
}

struct GenerateArgs {
  std::string weight, checkpoint, options = "{}";
  std::vector<std::string> texts;
  std::int64_t max_length = 512;  // T5Wrapper.generate's max_seq_len default
  bool json = false;
};

// The weight's transform, greedy decoding (T5ModelImpl::generate), and SentencePiece's DecodeIds of
// each row (the start token and the padding after </s> decode to nothing, as in T5Transform.decode).
// With --checkpoint the model has the weight's configuration, updated by --options.
void run_generate(const GenerateArgs& a) {
  // a model name: its GENERATION weight (the one with the language-model head), else its DEFAULT
  const WeightsRecord* named = nullptr;
  if (a.weight.find('.') == std::string::npos)
    for (const WeightsRecord* r : get_model_weights(a.weight))
      if (r->value_name == "GENERATION") named = r;
  const WeightsRecord& w = named ? *named : text_weight(a.weight);
  const json steps = w.meta.extra.value("text_transform", json::array());
  if (!steps.is_array() || steps.empty() || !steps[0].is_object() || steps[0].value("op", "") != "T5Transform")
    throw UsageError(w.name(), "is not a T5 weight (mz generate decodes with T5 and its T5Transform)");
  json options = parse_options(a.options, std::nullopt);
  if (!a.checkpoint.empty() && w.meta.extra.contains("config")) {
    json config = w.meta.extra.at("config");
    config.update(options);
    options = config;
  }
  const auto linear_head = [](const json& j, bool otherwise) {
    return j.is_object() && j.contains("linear_head") && j["linear_head"].is_boolean() ? j["linear_head"].get<bool>()
                                                                                       : otherwise;
  };
  if (!linear_head(options, linear_head(w.meta.extra.value("config", json::object()), true)))  // before any download
    throw UsageError(w.name(), "generation needs the language-model head (linear_head; GENERATION weights)");
  const text::TextTransform transform = text::TextTransform::from_record(w);
  const auto* spm = dynamic_cast<const text::SentencePieceTokenizer*>(&transform.tokenizer());
  Model model = build(w.model, a.checkpoint, a.checkpoint.empty() ? w.name() : "", options);
  auto* t5 = dynamic_cast<T5ModelImpl*>(model.module.get());
  if (!t5 || !spm) throw UsageError(w.name(), "is not a T5 weight (mz generate decodes with T5 and its T5Transform)");
  model.module->eval();
  torch::InferenceMode guard;
  const torch::Tensor tokens = t5->generate(transform(a.texts), a.max_length, steps[0].value("eos_idx", std::int64_t{1}));
  json out = json::array();
  for (std::size_t i = 0; i < a.texts.size(); ++i) {
    const torch::Tensor row = tokens[static_cast<std::int64_t>(i)].contiguous();
    const std::vector<std::int64_t> ids(row.data_ptr<std::int64_t>(), row.data_ptr<std::int64_t>() + row.numel());
    const std::string decoded = spm->decode(ids);
    if (a.json) out.push_back({{"text", a.texts[i]}, {"ids", ids}, {"output", decoded}});
    else std::cout << decoded << "\n";
  }
  if (a.json) std::cout << out.dump(1) << "\n";
}

}  // namespace

void add_text_commands(CLI::App& app) {
  auto ta = std::make_shared<TokenizeArgs>();
  auto* tokenize = app.add_subcommand(
      "tokenize", "Token ids of TEXT: the weight's whole text transform, or a local tokenizer's raw ids");
  tokenize->add_option("args", ta->args, "[WEIGHT] TEXT... (no WEIGHT with --sentencepiece or --gpt2)");
  tokenize->add_option("--sentencepiece", ta->sentencepiece, "A local SentencePiece model instead of a weight's");
  tokenize->add_option("--gpt2", ta->gpt2, "Local GPT-2 BPE files: ENCODER_JSON VOCAB_BPE");
  tokenize->add_option("--vocab", ta->vocab, "With a local tokenizer: a torchtext vocab.pt mapping its tokens");
  tokenize->add_option("--file", ta->file, "Tokenize each line of FILE too (after the TEXT arguments)");
  tokenize->add_flag("--json", ta->json, "JSON: text, ids and the tokenizer's pieces");
  tokenize->add_flag("--stats", ta->stats, "Print {texts, tokens, cpu_seconds} of the tokenising alone to stderr");
  tokenize->callback([ta] { run_tokenize(*ta); });

  auto ea = std::make_shared<EmbedArgs>();
  auto* embed = app.add_subcommand("embed", "Encode TEXT with a text weight (its transform, then its encoder)");
  embed->add_option("weight", ea->weight, "Text weight (or model: its DEFAULT)")->required();
  embed->add_option("texts", ea->texts, "Texts")->required();
  embed->add_option("--checkpoint", ea->checkpoint, "Load this file instead of the weight's (its transform stays)");
  embed->add_option("--options", ea->options, "Builder options as JSON, e.g. a head");
  embed->add_option("--output", ea->output, "Write the outputs and the ids ('input') to this safetensors file");
  embed->add_flag("--json", ea->json, "JSON per text: ids, shape of its features, and its first position's features");
  embed->callback([ea] { run_embed(*ea); });

  auto ga = std::make_shared<GenerateArgs>();
  auto* generate = app.add_subcommand("generate", "Greedy text generation with a T5 weight (its transform, model, decoding)");
  generate->add_option("weight", ga->weight, "T5 weight with the language-model head, e.g. T5_Small_Weights.GENERATION "
                                             "(or model: its GENERATION weight)")->required();
  generate->add_option("texts", ga->texts, "Texts, e.g. \"translate English to German: Hello\"")->required();
  generate->add_option("--checkpoint", ga->checkpoint,
                       "Load this file into the weight's configuration (updated by --options) instead of its file");
  generate->add_option("--options", ga->options, "Builder options as JSON");
  generate->add_option("--max-length", ga->max_length, "At most this many decoding steps (default 512)")
      ->check(CLI::Range(1, 1 << 20));
  generate->add_flag("--json", ga->json, "JSON per text: the generated ids (with the start token 0) and their text");
  generate->callback([ga] { run_generate(*ga); });
}

}  // namespace mz::cli
