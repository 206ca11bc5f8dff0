// mz list | info | convert | forward | bench
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <set>
#include <sstream>

#include <torch/torch.h>

#include "modelzoo/modelzoo.h"
#include "registry/cli/cli.h"
#include "registry/cli/build.h"

namespace mz::cli {
namespace {

using nlohmann::json;

std::string format_metric(const WeightsRecord& r, const char* name) {
  for (const auto& [dataset, values] : r.meta.metrics)
    if (auto it = values.find(name); it != values.end() && !std::isnan(it->second)) {
      std::ostringstream s;
      s << std::fixed << std::setprecision(3) << it->second;
      return s.str();
    }
  return "-";
}

std::vector<const WeightsRecord*> weights_of(const std::vector<const ModelInfo*>& models) {
  std::vector<const WeightsRecord*> out;
  for (const ModelInfo* m : models)
    for (const WeightsRecord* r : get_model_weights(m->name)) out.push_back(r);
  return out;
}

// ---- list -------------------------------------------------------------------------------------
struct ListArgs {
  std::vector<std::string> globs, exclude;
  std::string task;
  bool json = false, models = false, markdown = false;
};

void run_list(const ListArgs& a) {
  if (!a.task.empty()) {
    std::set<std::string> tasks;
    for (const ModelInfo* m : list_models({}, {}, "")) tasks.insert(m->task);
    if (!tasks.count(a.task)) {
      std::string valid;
      for (const auto& t : tasks) valid += (valid.empty() ? "" : ", ") + t;
      throw UsageError("--task", "unknown task '" + a.task + "' (valid: " + valid + ")");
    }
  }
  const auto models = list_models(a.globs, a.exclude, a.task);
  if (a.models) {
    if (a.json) {
      json out = json::array();
      for (const ModelInfo* m : models)
        out.push_back({{"model", m->name}, {"task", m->task}, {"weights_enum", m->weights_enum},
                       {"module", m->module}, {"options", m->default_options}});
      std::cout << out.dump(1) << "\n";
    } else {
      for (const ModelInfo* m : models) std::cout << m->name << "\n";
    }
    return;
  }
  const auto weights = weights_of(models);
  if (a.json) {
    json out = json::array();
    for (const WeightsRecord* r : weights) out.push_back(to_json(*r));
    std::cout << out.dump(1) << "\n";
  } else if (a.markdown) {
    std::cout << "| model | task | weights | default | params | acc@1 | acc@5 |\n"
                 "|---|---|---|---|---:|---:|---:|\n";
    for (const WeightsRecord* r : weights)
      std::cout << "| `" << r->model << "` | " << r->task << " | `" << r->name() << "` | "
                << (r->is_default ? "yes" : "") << " | " << std::fixed << std::setprecision(1)
                << r->meta.num_params / 1e6 << "M | " << format_metric(*r, "acc@1") << " | "
                << format_metric(*r, "acc@5") << " |\n";
  } else {
    for (const WeightsRecord* r : weights)
      std::cout << std::left << std::setw(48) << r->name() << std::setw(22) << r->model << std::setw(4)
                << (r->is_default ? "*" : "") << std::right << std::setw(8) << format_metric(*r, "acc@1") << "\n";
  }
}

// ---- info -------------------------------------------------------------------------------------
// A saved model's directory: its config.json (validated), whole with --json.
void run_info_dir(const std::string& dir, bool as_json) {
  const json config = pretrained::read_config(dir);
  if (as_json) {
    std::cout << config.dump(1) << "\n";
    return;
  }
  const auto line = [](const std::string& key, const std::string& value) {
    std::cout << std::left << std::setw(18) << key << " " << value << "\n";
  };
  line("directory", dir);
  for (const char* key : {"model", "schema", "modelzoo_version"}) line(key, config[key].get<std::string>());
  for (const json& w : config["weights"])
    line("weights", w.value("name", "?") + " (" + (w.value("url", json()).is_string() ? w["url"].get<std::string>() : "no URL") +
                        ", sha256 " + (w.value("sha256", json()).is_string() ? w["sha256"].get<std::string>() : "unknown") + ")");
  for (const auto& [file, entry] : config["files"].items())
    line(file, "sha256 " + entry["sha256"].get<std::string>() + ", " + entry["size"].dump() + " bytes");
  if (config.contains("preset")) {
    const json& p = config["preset"];
    const json categories = p["meta"].value("categories", json());
    line("preset", p["transforms"]["preset"].get<std::string>() + " (of " + p["weight"].get<std::string>() + "), " +
                       (categories.is_array() ? std::to_string(categories.size()) : std::string("no")) + " categories");
  }
  line("spec", config["spec"].dump());
}

void run_info(const std::string& name, bool as_json) {
  if (pretrained::is_dir(name)) return run_info_dir(name, as_json);
  json out;
  if (const ModelInfo* m = find_model(name)) {
    json weights = json::array();
    std::string default_weight;
    for (const WeightsRecord* r : get_model_weights(name)) {
      weights.push_back(r->name());
      if (r->is_default) default_weight = r->name();
    }
    out = {{"model", m->name}, {"task", m->task}, {"weights_enum", m->weights_enum}, {"module", m->module},
           {"default", default_weight}, {"weights", weights}, {"options", m->default_options}};
  } else {
    const auto dot = name.find('.');
    if (dot == std::string::npos) model_info(name);  // throws "unknown model" with suggestions
    out = to_json(get_weight(name));
  }
  if (as_json) {
    std::cout << out.dump(1) << "\n";
    return;
  }
  for (const auto& [k, v] : out.items()) {
    if (k == "meta") {
      for (const auto& [mk, mv] : v.items()) {
        std::string text = mv.is_string() ? mv.get<std::string>() : mv.dump();
        if (mk == "categories" && !mv.is_null())
          text = std::to_string(mv.size()) + (mv.empty() ? "" : " (" + mv[0].get<std::string>() + ", ...)");
        std::cout << std::left << std::setw(14) << mk << " " << text << "\n";
      }
    } else {
      std::cout << std::left << std::setw(14) << k << " " << (v.is_string() ? v.get<std::string>() : v.dump()) << "\n";
    }
  }
}

// ---- forward ----------------------------------------------------------------------------------
struct ForwardArgs {
  std::string model, checkpoint, weights, input, output, options = "{}", like, adapter;
  bool mmap = false, optimize = false, dense = false;
  std::optional<std::int64_t> num_classes;
};

void run_forward(const ForwardArgs& a) {
  check_output_file(a.output);
  Model m = build(a.model, a.checkpoint, a.weights, parse_options(a.options, a.num_classes), true, storage(a.mmap),
                  a.like);
  if (a.dense && !m.dense)
    throw UsageError("--dense", a.model + " has no dense outputs: only detectors select among theirs");
  if (!a.adapter.empty()) {  // its base is the --weights (none with --checkpoint); merged: no per-call cost
    lora::load(*m.module, a.adapter, a.weights.empty() ? std::vector<std::string>{} : std::vector{a.weights});
    lora::merge(*m.module);
  }
  const TensorDict inputs = Checkpoint(a.input).tensors();
  m.module->eval();
  torch::InferenceMode guard;
  TensorDict outputs;
  try {
    if (a.optimize) optimize_for_inference(m, inputs);
    outputs = a.dense ? m.dense(inputs) : m.run(inputs);
  } catch (const UsageError& e) {
    throw UsageError(a.input, e.what());  // name the file the bad tensor came from
  }
  save_safetensors(a.output, outputs);
}

// ---- convert ----------------------------------------------------------------------------------
void run_convert(const std::string& in, const std::string& out) {
  check_output_file(out);
  Checkpoint ckpt(in);
  save_safetensors(out, ckpt.tensors(), {{"format", "pt"}, {"converted_from", ckpt.format()}});
  std::cout << out << "\n";
}

// ---- bench ------------------------------------------------------------------------------------
struct BenchArgs {
  std::string model, checkpoint, weights, options = "{}", input;
  std::int64_t size = 224, batch = 1, repeat = 5;
  bool json = false, mmap = false, load_only = false, optimize = false;
};

double rss_mb(const char* field) {  // "VmRSS:" or "VmHWM:" from /proc/self/status
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field, 0) == 0) return std::stod(line.substr(std::strlen(field))) / 1024.0;
  return 0;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

void run_bench(const BenchArgs& a) {
  using clock = std::chrono::steady_clock;
  const json options = parse_options(a.options, std::nullopt);
  const double baseline = rss_mb("VmRSS:");
  std::vector<double> load_ms, forward_ms;
  double load_peak = 0;
  std::optional<Model> model;
  for (std::int64_t i = 0; i < std::max<std::int64_t>(a.repeat, 1); ++i) {
    model.reset();  // free the previous copy before measuring the next load
    const auto t0 = clock::now();
    model = build(a.model, a.checkpoint, a.weights, options, /*weights_required=*/false, storage(a.mmap));
    load_ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
    if (i == 0) load_peak = rss_mb("VmHWM:");  // the first load: what a process that loads once sees
  }
  model->module->eval();
  torch::InferenceMode guard;
  const TensorDict x = a.input.empty() ? model_info(a.model).example_inputs(a.batch, a.size) : read_checkpoint(a.input);
  json optimized = nullptr;
  if (a.optimize) {
    const OptimizeReport r = optimize_for_inference(*model, x);
    optimized = {{"folded", r.folded}, {"channels_last", r.channels_last}, {"prepacked", r.prepacked},
                 {"blocked", r.blocked}, {"packed_linear", r.packed_linear},
                 {"bf16x3_linear", r.bf16x3_linear}, {"max_relative_error", r.max_relative_error}};
  }
  if (!a.load_only) model->run(x);  // warm-up
  for (std::int64_t i = 0; i < (a.load_only ? 0 : std::max<std::int64_t>(a.repeat, 1)); ++i) {
    const auto t0 = clock::now();
    model->run(x);
    forward_ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
  }
  // With --input, the inputs' shapes stand in for --size and --batch.
  json shapes = json::object();
  if (!a.input.empty())
    for (const auto& item : x) shapes[item.key()] = item.value().sizes().vec();
  const json out = {{"model", a.model}, {"checkpoint", a.checkpoint},
                    {"size", a.input.empty() ? json(a.size) : json(nullptr)},
                    {"batch", a.input.empty() ? json(a.batch) : json(nullptr)}, {"input", shapes},
                    {"repeat", a.repeat}, {"mmap", a.mmap}, {"optimize", a.optimize}, {"optimized", optimized},
                    {"threads", torch::get_num_threads()}, {"blas", resolved_blas()},
                    {"load_ms", median(load_ms)}, {"forward_ms", a.load_only ? json(nullptr) : json(median(forward_ms))},
                    {"baseline_rss_mb", baseline}, {"load_peak_rss_mb", load_peak},
                    {"peak_rss_mb", rss_mb("VmHWM:")}};
  if (a.json) {
    std::cout << out.dump() << "\n";
    return;
  }
  std::cout << std::fixed << std::setprecision(2) << a.model << ": load " << median(load_ms) << " ms";
  if (!a.load_only)
    std::cout << ", forward " << median(forward_ms) << " ms ("
              << (a.input.empty() ? "batch " + std::to_string(a.batch) + ", " + std::to_string(a.size) + "x" +
                                        std::to_string(a.size)
                                  : "input " + shapes.dump())
              << ")";
  if (a.optimize)
    std::cout << ", optimised (" << optimized["folded"] << " norms folded, " << optimized["prepacked"]
              << " convolutions prepacked, " << optimized["blocked"] << " in oneDNN's layout, "
              << optimized["packed_linear"] << " linear maps packed, " << optimized["bf16x3_linear"]
              << " of them split into bfloat16 parts)";
  std::cout << ", peak RSS " << rss_mb("VmHWM:") << " MB (baseline " << baseline << " MB), " << torch::get_num_threads()
            << " threads, BLAS " << (out["blas"].get<std::string>().empty() ? "none" : out["blas"].get<std::string>())
            << "\n";
}

}  // namespace

void add_model_commands(CLI::App& app) {
  auto list_args = std::make_shared<ListArgs>();
  auto* list = app.add_subcommand("list", "List weights (or models with --models), optionally filtered by globs");
  list->add_option("GLOB", list_args->globs, "Model name globs, e.g. 'resnet*'");
  list->add_option("--exclude", list_args->exclude, "Model name globs to leave out");
  list->add_option("--task", list_args->task, "classification, segmentation, ...");
  list->add_flag("--json", list_args->json, "Weight entries as JSON (the manifest schema)");
  list->add_flag("--models", list_args->models, "List model names instead of weights");
  list->add_flag("--markdown", list_args->markdown, "A markdown table of the weights (README)");
  list->callback([list_args] { run_list(*list_args); });

  auto info_name = std::make_shared<std::string>();
  auto info_json = std::make_shared<bool>(false);
  auto* info = app.add_subcommand("info", "Show a weight ('ResNet50_Weights.IMAGENET1K_V2'), a model ('resnet50') or "
                                          "a saved model's directory (its config.json)");
  info->add_option("NAME", *info_name, "Weight or model name, or a saved model's directory")->required();
  info->add_flag("--json", *info_json, "JSON output");
  info->callback([info_name, info_json] { run_info(*info_name, *info_json); });

  auto conv = std::make_shared<std::pair<std::string, std::string>>();
  auto* convert = app.add_subcommand("convert", "Convert any supported checkpoint to safetensors");
  convert->add_option("IN", conv->first, "torch.save zip, legacy torch.save or safetensors file")->required();
  convert->add_option("OUT", conv->second, "Output .safetensors file")->required();
  convert->callback([conv] { run_convert(conv->first, conv->second); });

  auto fa = std::make_shared<ForwardArgs>();
  auto* forward = app.add_subcommand(
      "forward", "Run a model (eval, no grad) on the tensor 'input' of a safetensors file; writes 'output' "
                 "(or each key of a dict output: out, aux, ...)");
  forward->add_option("MODEL", fa->model, "Model name, or a saved model's directory (mz build --output)")->required();
  auto* ck = forward->add_option("--checkpoint", fa->checkpoint, "Checkpoint file (built with no weights, then loaded)");
  add_mmap_flag(forward, fa->mmap);
  forward->add_option("--like", fa->like, "With --checkpoint: build the configuration of this weight of the model "
                                          "(e.g. a detector's FrozenBatchNorm2d, eps 0) before loading")->needs(ck);
  forward->add_option("--weights", fa->weights, "Weights name (downloaded and verified as needed)")->excludes(ck);
  forward->add_option("--input", fa->input, "Input .safetensors with a tensor named 'input'")->required();
  forward->add_option("--output", fa->output, "Output .safetensors")->required();
  forward->add_option("--num-classes", fa->num_classes, "Number of classes");
  forward->add_option("--options", fa->options, "Builder options as JSON, by Python kwarg names");
  forward->add_option("--adapter", fa->adapter, "Apply the LoRA adapter saved in this directory (adapter.json, "
                                                "adapter.safetensors); its base must be the --weights");
  forward->add_flag("--dense", fa->dense, "A detector's raw predictions before any selection (mz::Model::dense): "
                                          "the heads' outputs, and the R-CNN heads' on fixed boxes");
  add_optimize_flag(forward, fa->optimize);
  forward->callback([fa] { run_forward(*fa); });

  auto ba = std::make_shared<BenchArgs>();
  auto* bench = app.add_subcommand("bench", "Time load (construct + read + load, median) and forward (median)");
  bench->add_option("MODEL", ba->model, "Model name")->required();
  auto* bck = bench->add_option("--checkpoint", ba->checkpoint, "Checkpoint to load");
  add_mmap_flag(bench, ba->mmap);
  bench->add_flag("--load-only", ba->load_only, "Time the loads only");
  bench->add_option("--weights", ba->weights, "Weights to load")->excludes(bck);
  bench->add_option("--size", ba->size, "Input height and width (default 224)")->check(CLI::Range(1, 65536));
  bench->add_option("--input", ba->input, "Time the model on these named inputs (.safetensors, as mz forward "
                                          "takes them) instead of random ones of --size and --batch");
  bench->add_option("--batch", ba->batch, "Batch size (default 1)")->check(CLI::Range(1, 65536));
  bench->add_option("--repeat", ba->repeat, "Repetitions (default 5)")->check(CLI::Range(1, 1000000));
  bench->add_option("--options", ba->options, "Builder options as JSON");
  bench->add_flag("--json", ba->json, "JSON output");
  add_optimize_flag(bench, ba->optimize);
  bench->callback([ba] { run_bench(*ba); });
}

}  // namespace mz::cli
