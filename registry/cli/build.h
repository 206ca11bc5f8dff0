// Building a model the way the CLI's --checkpoint / --weights contract says (mz forward, bench, predict),
// or from a saved model's directory.
#pragma once

#include <fstream>
#include <iomanip>
#include <limits>
#include <optional>
#include <sstream>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "modelzoo/checkpoint.h"
#include "modelzoo/pretrained.h"
#include "modelzoo/registry.h"
#include "modelzoo/weights.h"

namespace mz::cli {

// The memory the kernel can still give this process: MemAvailable + SwapFree of /proc/meminfo, in bytes
// (nullopt where there is no such file).
inline std::optional<double> available_memory() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  double kb = 0, total = 0;
  int found = 0;
  while (in >> key >> kb) {
    if (key == "MemAvailable:" || key == "SwapFree:") total += kb, ++found;
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  if (found == 0) return std::nullopt;
  return total * 1024;
}

// Refuses, before anything is allocated, a random init or a checkpoint copy whose float32 parameters alone
// (num_params of `weights`, the model's default ones when empty) exceed the memory available: the kernel's
// OOM killer would end the process without a word (t5_11b's 45 GB on a 24 GB machine). Not where the
// parameters are mapped from a file's pages (--mmap, and weights from the hub cache, so not for --weights),
// nor with options, for which num_params does not say what is built.
inline void check_memory(const ModelInfo& info, const std::string& weights, const nlohmann::json& options,
                         bool copies_checkpoint) {
  for (const auto& [key, value] : options.items())
    if (key != "weights_backbone") return;
  const std::string prefix = info.weights_enum + ".";  // as the builders take a name: VALUE or Enum.VALUE
  const std::string name =
      weights.empty() ? info.default_weights() : (weights.rfind(prefix, 0) == 0 ? "" : prefix) + weights;
  const WeightsRecord* w = find_weights(name);
  const auto available = available_memory();
  if (w == nullptr || w->meta.num_params <= 0 || !available) return;
  const double need = 4.0 * static_cast<double>(w->meta.num_params);
  if (need <= *available) return;
  std::ostringstream reason;
  reason << std::fixed << std::setprecision(1) << "its " << w->meta.num_params << " parameters need "
         << need / 1e9 << " GB as float32, more than the " << *available / 1e9
         << " GB this machine has available (MemAvailable + SwapFree)"
         << (copies_checkpoint ? "; --mmap maps the checkpoint's pages instead of copying them" : "");
  throw Error(info.name, reason.str());
}

// --weights NAME loads those weights (through the hub). --checkpoint FILE builds with no weights at
// all (backbone weights off too, parameters left uninitialised) and then loads the file strictly.
// Neither (allowed only when weights_required is false, e.g. mz bench) gives torchvision's random
// init, again without downloading backbone weights. `storage` applies to --checkpoint (--mmap).
// `like` (--like WEIGHT, with --checkpoint) builds the configuration of that weight of the model
// (e.g. FrozenBatchNorm2d with eps 0 for a detector's COCO_V1) instead of the plain one, downloading nothing.
// A saved model's directory (mz::save_pretrained) in place of the name is built from its config.json
// and loaded from its model.safetensors (mz::from_pretrained); it takes none of these options.
inline Model build(const std::string& name, const std::string& checkpoint, const std::string& weights,
                   nlohmann::json options, bool weights_required = true, Storage storage = Storage::Copy,
                   const std::string& like = "") {
  if (pretrained::is_dir(name)) {
    if (!checkpoint.empty() || !weights.empty() || !like.empty() || !options.empty())
      throw UsageError(name, "a saved model directory takes no --checkpoint, --weights, --like, --num-classes or "
                             "--options: its config.json says how to build it");
    return from_pretrained(name);
  }
  if (!like.empty() && checkpoint.empty()) throw UsageError(name, "--like WEIGHT needs --checkpoint FILE");
  if (!checkpoint.empty() && !weights.empty())
    throw UsageError(name, "give only one of --checkpoint FILE and --weights NAME");
  if (weights_required && checkpoint.empty() && weights.empty())
    throw UsageError(name, "give one of --checkpoint FILE and --weights NAME");
  const ModelInfo& info = model_info(name);
  if (!weights.empty()) return info.build(weights, options);
  if (like.empty() && info.default_options.contains("weights_backbone") && !options.contains("weights_backbone"))
    options["weights_backbone"] = nullptr;
  if (checkpoint.empty() || storage == Storage::Copy) check_memory(info, like, options, !checkpoint.empty());
  if (checkpoint.empty()) return info.build("", options);
  std::optional<Model> m;
  {
    ArchitectureOnly uninitialised;  // the strict load below fills every parameter and buffer
    m = info.build(like, options);
  }
  LoadOptions load;
  load.storage = storage;
  load_checkpoint(*m->module, checkpoint, load);
  return *m;
}

// --options JSON (builder options by their Python names), plus --num-classes where given.
inline nlohmann::json parse_options(const std::string& text, const std::optional<std::int64_t>& num_classes) {
  nlohmann::json options;
  try {
    options = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw UsageError("--options", std::string("not valid JSON: ") + e.what());
  }
  if (!options.is_object()) throw UsageError("--options", "must be a JSON object");
  if (num_classes) options["num_classes"] = *num_classes;
  return options;
}

// --mmap, for the commands that take --checkpoint.
inline void add_mmap_flag(CLI::App* command, bool& mmap) {
  command->add_flag("--mmap", mmap,
                    "With --checkpoint: the parameters use the file's pages (copy-on-write) instead of copies, "
                    "as weights from the hub cache always do; the file must not be rewritten in place meanwhile");
}
inline Storage storage(bool mmap) { return mmap ? Storage::Map : Storage::Copy; }

// --optimize, for the commands that run a model: mz::optimize_for_inference on the first input.
inline void add_optimize_flag(CLI::App* command, bool& optimize) {
  command->add_flag("--optimize", optimize,
                    "Optimise for inference (mz::optimize_for_inference: norms folded, oneDNN layouts where faster), "
                    "checked against the unoptimised outputs (a detector's dense ones) on the first input");
}

}  // namespace mz::cli
