// Saved models (README "Save and load with config"): save_pretrained writes model.safetensors and then
// config.json; from_pretrained checks config.json, the digest of model.safetensors, rebuilds the spec
// with no weights and loads strictly.
#include "modelzoo/pretrained.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "modelzoo/checkpoint.h"
#include "modelzoo/lora.h"
#include "modelzoo/version.h"
#include "weights/hub/hub_impl.h"

namespace mz {
namespace {

namespace fs = std::filesystem;
namespace io = mz::hub::detail;
using nlohmann::json;

const std::string kSchema = "modelzoo.pretrained/";
// config.json's keys. Adapters are part of the spec ("_adapters_"), and their tensors of model.safetensors.
const std::set<std::string> kRequired = {"schema", "modelzoo_version", "model", "spec", "weights", "files"};
const std::set<std::string> kOptional = {"preset"};

std::string file_in(const std::string& dir, const char* name) { return (fs::path(dir) / name).string(); }

// Every parameter and buffer by state-dict key.
TensorDict state_of(const torch::nn::Module& module) {
  TensorDict out;
  for (const auto& p : module.named_parameters()) out.insert(p.key(), p.value().detach());
  for (const auto& b : module.named_buffers()) out.insert(b.key(), b.value().detach());
  return out;
}

// "" when `model` has the keys and shapes of `like`, else what differs (the first few keys).
std::string differences(const TensorDict& model, const TensorDict& like) {
  std::vector<std::string> out;
  for (const auto& item : like)
    if (!model.contains(item.key()))
      out.push_back("missing " + item.key());
    else if (model.at(item.key()).sizes() != item.value().sizes())
      out.push_back(item.key() + " has shape " + c10::str(model.at(item.key()).sizes()) + ", the spec's " +
                    c10::str(item.value().sizes()));
  for (const auto& item : model)
    if (!like.contains(item.key())) out.push_back("unexpected " + item.key());
  std::string text;
  for (std::size_t i = 0; i < out.size() && i < 5; ++i) text += (i ? "; " : "") + out[i];
  if (out.size() > 5) text += "; and " + std::to_string(out.size() - 5) + " more";
  return text;
}

// The spec built with no weights and nothing initialised. Any failure of a spec from config.json is a
// CheckpointError naming that file (`config` non-empty); of the caller's spec, a UsageError.
spec::Built build_architecture(const json& spec, const std::string& config = "") {
  ArchitectureOnly no_weights;
  try {
    return spec::build(spec);
  } catch (const Error& e) {
    if (config.empty()) throw;
    throw CheckpointError(config, std::string("spec: ") + e.what());
  } catch (const std::exception& e) {  // LibTorch's own (a shape it refuses, memory)
    if (config.empty()) throw;
    throw CheckpointError(config, std::string("spec: cannot build: ") + e.what());
  }
}

// The architecture with the model's adapters: those injected in C++ (not by the spec's own "_adapters_")
// join the resolved spec as the root's "_adapters_", so that from_pretrained recreates them (the active one
// last, so it is active again) and the strict load fills their tensors. A merged adapter is refused: its
// delta is in the base weights already and would be applied twice.
spec::Built with_adapters(torch::nn::Module& model, spec::Built architecture, const std::string& dir) {
  if (lora::names(model).empty()) return architecture;
  if (lora::merged(model))
    throw UsageError(dir, "an adapter is merged into the base weights; unmerge it (mz::lora::unmerge) before saving");
  const std::vector<std::string> declared = lora::names(*architecture.model.module);
  json added = json::array();
  for (const lora::Options& o : lora::adapters(model))
    if (std::find(declared.begin(), declared.end(), o.name) == declared.end()) added.push_back(o);
  if (added.empty()) return architecture;
  json spec = architecture.spec;
  if (!spec.is_object()) throw UsageError(dir, "the spec's root is not a node, so it cannot carry the model's adapters");
  json& list = spec["_adapters_"];
  if (list.is_null()) list = json::array();
  for (const json& o : added) list.push_back(o);
  return build_architecture(spec);
}

json provenance(const std::vector<std::string>& names) {
  json out = json::array();
  std::set<std::string> seen;
  for (const std::string& name : names) {
    if (!seen.insert(name).second) continue;
    const WeightsRecord* r = find_weights(name);
    out.push_back({{"name", name}, {"url", r ? json(r->url) : json()},
                   {"sha256", r && !r->sha256.empty() ? json(r->sha256) : json()},
                   {"hash_prefix", r && !r->hash_prefix.empty() ? json(r->hash_prefix) : json()}});
  }
  return out;
}

// The weight entry whose preset and categories `mz predict DIR` uses (null when there is none).
json preset_entry(const json& spec, const spec::Built& built, const SaveOptions& options) {
  std::string name = options.preset_of;
  if (name.empty() && spec.value("weights", json()).is_string() && find_model(spec["_target_"].get<std::string>()) &&
      !built.weights.empty())
    name = built.weights.front();  // the root builder's own weights, named first
  if (name.empty()) {
    if (options.categories) throw UsageError("categories", "need a preset: name its weight (preset_of, --preset-of)");
    return nullptr;
  }
  json entry = to_json(get_weight(name));
  if (options.categories) entry["meta"]["categories"] = *options.categories;
  return entry;
}

// A directory save_pretrained may write into: new, empty, a saved model, or anything with `overwrite`.
void prepare(const std::string& dir, bool overwrite) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec) throw UsageError(dir, "cannot create the directory: " + ec.message());
    return;
  }
  if (!fs::is_directory(dir, ec)) throw UsageError(dir, "exists and is not a directory");
  if (overwrite || fs::is_empty(dir, ec)) return;
  try {
    pretrained::read_config(dir);
  } catch (const Error&) {
    throw UsageError(dir, "not empty and not a saved model; pass overwrite (mz build --force) to write into it");
  }
}

// A required field of config.json of the given JSON type.
const json& field(const json& config, const std::string& key, json::value_t type, const std::string& file) {
  const json& v = config.at(key);
  if (v.type() != type) throw CheckpointError(file, "'" + key + "' has the wrong type: " + v.dump().substr(0, 80));
  return v;
}

}  // namespace

void save_pretrained(const Model& model, const nlohmann::json& spec, const std::string& dir,
                     const SaveOptions& options) {
  if (!model.module) throw UsageError(dir, "the model has no module to save");
  const spec::Built architecture = with_adapters(*model.module, build_architecture(spec), dir);
  const TensorDict tensors = state_of(*model.module);
  if (const std::string diff = differences(tensors, state_of(*architecture.model.module)); !diff.empty())
    throw UsageError(dir, "the model does not have its spec's state dict, so it could not be loaded back: " + diff);
  const json preset = preset_entry(architecture.spec, architecture, options);
  prepare(dir, options.overwrite);

  const std::string config_file = file_in(dir, pretrained::kConfig), tensors_file = file_in(dir, pretrained::kTensors);
  std::error_code ec;
  fs::remove(config_file, ec);  // from here until the new config.json lands, DIR is no saved model
  save_safetensors(tensors_file, tensors, {{"format", "pt"}});
  io::fsync_path(tensors_file);
  io::Sha256 digest;
  const std::uint64_t size = io::hash_file(tensors_file, digest);
  nlohmann::ordered_json config = {{"schema", kSchema + std::to_string(pretrained::kSchemaVersion)},  // as documented
                                    {"modelzoo_version", MZ_VERSION},
                                    {"model", architecture.model.name},
                                    {"spec", architecture.spec},
                                    {"weights", provenance(architecture.weights)},
                                    {"files", {{pretrained::kTensors, {{"sha256", digest.hex()}, {"size", size}}}}}};
  if (!preset.is_null()) config["preset"] = preset;
  io::write_file_atomic(config_file, config.dump(1) + "\n");
}

Model from_pretrained(const std::string& dir) { return pretrained::load(dir).model; }

namespace pretrained {

bool is_dir(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && fs::is_regular_file(file_in(path, kConfig), ec);
}

nlohmann::json read_config(const std::string& dir) {
  const std::string file = file_in(dir, kConfig);
  std::string text;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw CheckpointError(dir, "not a directory (a saved model is a directory with " +
                                                             std::string(kConfig) + " and " + kTensors + ")");
  if (!io::read_file(file, text)) throw CheckpointError(file, "missing: not a saved model directory");
  json config;
  try {
    config = json::parse(text);
  } catch (const json::exception& e) {
    throw CheckpointError(file, std::string("not JSON: ") + e.what());
  }
  if (!config.is_object()) throw CheckpointError(file, "not a JSON object");
  const json schema = config.value("schema", json());
  const std::string s = schema.is_string() ? schema.get<std::string>() : "";
  if (s.rfind(kSchema, 0) != 0 || s.size() == kSchema.size() ||
      s.find_first_not_of("0123456789", kSchema.size()) != std::string::npos || s.size() > kSchema.size() + 9)
    throw CheckpointError(file, "not a modelzoo.pretrained config (schema " + schema.dump() + ")");
  if (const int version = std::stoi(s.substr(kSchema.size())); version > kSchemaVersion)
    throw CheckpointError(file, "schema " + s + " is newer than this modelzoo reads (up to " + kSchema +
                                    std::to_string(kSchemaVersion) + "); it was written by modelzoo " +
                                    config.value("modelzoo_version", json("?")).dump() + ": upgrade modelzoo");
  for (const auto& [key, value] : config.items())
    if (!kRequired.count(key) && !kOptional.count(key))
      throw CheckpointError(file, "unknown key '" + key + "' for schema " + s);
  for (const std::string& key : kRequired)
    if (!config.contains(key)) throw CheckpointError(file, "missing '" + key + "'");
  field(config, "modelzoo_version", json::value_t::string, file);
  field(config, "model", json::value_t::string, file);
  if (!field(config, "spec", json::value_t::object, file).contains("_target_"))
    throw CheckpointError(file, "'spec' is not a node {\"_target_\": NAME, ...}");
  for (const json& w : field(config, "weights", json::value_t::array, file))
    if (!w.is_object() || !w.value("name", json()).is_string())
      throw CheckpointError(file, "'weights' must list objects with a \"name\", got " + w.dump().substr(0, 80));
  const json& files = field(config, "files", json::value_t::object, file);
  const json entry = files.value(kTensors, json());
  const json sha = entry.is_object() ? entry.value("sha256", json()) : json();
  const json size = entry.is_object() ? entry.value("size", json()) : json();
  if (!sha.is_string() || sha.get<std::string>().size() != 64 ||
      sha.get<std::string>().find_first_not_of("0123456789abcdef") != std::string::npos || !size.is_number_unsigned())
    throw CheckpointError(file, std::string("'files' must give \"") + kTensors +
                                    "\": {\"sha256\": 64 lower-case hex digits, \"size\": bytes}");
  if (config.contains("preset")) try {
      record_from_json(config["preset"], file);
    } catch (const Error& e) {
      throw CheckpointError(file, std::string("'preset': ") + e.what());
    }
  return config;
}

spec::Built load(const std::string& dir) {
  const json config = read_config(dir);
  const std::string tensors_file = file_in(dir, kTensors);
  const json& expected = config["files"][kTensors];
  io::Sha256 digest;
  std::uint64_t size = 0;
  try {
    size = io::hash_file(tensors_file, digest);
  } catch (const HubError& e) {
    throw CheckpointError(tensors_file, e.reason());
  }
  const io::Expect expect{expected["sha256"].get<std::string>(), "", expected["size"].get<std::uint64_t>()};
  if (const std::string mismatch = io::check(expect, digest.hex(), size); !mismatch.empty())
    throw CheckpointError(tensors_file, mismatch + " (config.json's record; the file changed after it was saved)");
  spec::Built built = build_architecture(config["spec"], file_in(dir, kConfig));
  load_checkpoint(*built.model.module, tensors_file);  // strict: LoadError names the file and every key
  return built;
}

}  // namespace pretrained
}  // namespace mz
