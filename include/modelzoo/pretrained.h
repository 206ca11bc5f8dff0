// Saved models: a directory holding what is needed to rebuild a model and its tensors (README "Save and
// load with config"), as Hugging Face's save_pretrained / from_pretrained.
//
//   mz::spec::Built built = mz::spec::build(mz::spec::load("classifier.json"));
//   ... fine-tune built.model ...
//   mz::save_pretrained(built.model, built.spec, "my-model");   // my-model/config.json, model.safetensors
//   mz::Model model = mz::from_pretrained("my-model");           // built with no weights, loaded strictly
//
// config.json (schema "modelzoo.pretrained/1") holds the resolved spec, the provenance of every weight
// the spec names (name, URL, SHA-256), the SHA-256 and size of model.safetensors, the modelzoo version
// and, optionally, the weight entry whose preset and categories `mz predict DIR` uses. Both files are
// untrusted input: every problem is a typed error naming the file (CheckpointError for config.json and
// for a model.safetensors that does not match its digest; LoadError for a missing, unexpected or
// mis-shaped tensor).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "modelzoo/registry.h"
#include "modelzoo/spec.h"

namespace mz {

struct SaveOptions {
  // Write into DIR even when it holds other files (they stay). Without it, DIR must not exist, be
  // empty, or be a saved model (which is replaced).
  bool overwrite = false;
  // The weight ("Enum.VALUE") whose preset and categories `mz predict DIR` uses; "" takes the root
  // node's own weights, if it names any.
  std::string preset_of;
  // Categories replacing the weight's (a fine-tuned head); [] for none.
  std::optional<std::vector<std::string>> categories;
};

// Writes DIR/model.safetensors (every parameter and buffer of model.module), then DIR/config.json,
// each by temp file + rename: a directory without config.json is not a saved model, and config.json
// pins model.safetensors by digest, so a crash never leaves a directory that loads wrongly. The spec
// is resolved first and built once without initialising anything (mz::ArchitectureOnly) to find the
// weights it names and to check that the model has its state-dict keys and shapes: what cannot be
// loaded back is refused (UsageError) before anything is written.
void save_pretrained(const Model& model, const nlohmann::json& spec, const std::string& dir,
                     const SaveOptions& options = {});

// Rebuilds the model of a saved directory (built with no weights: nothing is downloaded) and loads
// model.safetensors strictly, after checking its SHA-256 against config.json.
Model from_pretrained(const std::string& dir);

namespace pretrained {

inline constexpr int kSchemaVersion = 1;  // config.json's "schema": "modelzoo.pretrained/1"
inline constexpr const char* kConfig = "config.json";
inline constexpr const char* kTensors = "model.safetensors";

// True when `path` is a directory with a config.json (what the CLI takes in place of a model name).
bool is_dir(const std::string& path);
// config.json of DIR, validated: CheckpointError naming the file when it is missing, not JSON, of a
// newer schema or missing a field.
nlohmann::json read_config(const std::string& dir);
// from_pretrained, plus the resolved spec and the weights' names it records.
spec::Built load(const std::string& dir);

}  // namespace pretrained
}  // namespace mz
