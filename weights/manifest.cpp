// User manifests (MZ_MANIFEST): JSON files that register extra weights for existing models.
//   {"schema": "modelzoo.weights/1", "weights": [<weight entry>, ...]}
// Every entry needs a full sha256; its model must exist and its enum must be that model's.
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "modelzoo/weights.h"

namespace mz::detail {
namespace {

using nlohmann::json;

constexpr const char* kSchema = "modelzoo.weights/1";

std::vector<std::string> split_paths(const std::string& spec) {
  std::vector<std::string> out;
  std::stringstream s(spec);
  for (std::string p; std::getline(s, p, ':');)
    if (!p.empty()) out.push_back(p);
  return out;
}

json read_manifest(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UsageError(path, "cannot read manifest (MZ_MANIFEST)");
  json j = json::parse(in, nullptr, false);
  if (j.is_discarded()) throw UsageError(path, "manifest is not valid JSON");
  if (!j.is_object() || j.value("schema", "") != kSchema)
    throw UsageError(path, std::string("manifest must be an object with \"schema\": \"") + kSchema + "\"");
  if (!j.contains("weights") || !j["weights"].is_array())
    throw UsageError(path, "manifest must have a \"weights\" array");
  return j;
}

std::string entry_label(const json& entry, std::size_t index) {
  if (entry.is_object() && entry.contains("weight") && entry["weight"].is_string())
    return entry["weight"].get<std::string>();
  return "entry " + std::to_string(index);
}

WeightsRecord checked_record(const json& entry, std::size_t index, const std::string& path) {
  const std::string where = path + ": " + entry_label(entry, index);
  if (entry.is_object() && (!entry.contains("sha256") || entry["sha256"].is_null()))
    throw UsageError(where, "missing field 'sha256' (manifest entries need the full SHA-256 of the file)");
  WeightsRecord r = record_from_json(entry, path);
  const std::string weights_enum = builtin_weights_enum(r.model);
  if (weights_enum.empty()) throw UsageError(where, "unknown model '" + r.model + "'");
  if (r.enum_name != weights_enum)
    throw UsageError(where, "weights of model '" + r.model + "' must be named " + weights_enum + ".<NAME>");
  return r;
}

}  // namespace

void load_manifests_from_env() {
  const char* spec = std::getenv("MZ_MANIFEST");
  if (!spec || !*spec) return;
  for (const std::string& path : split_paths(spec)) {
    const json manifest = read_manifest(path);
    const json& entries = manifest["weights"];
    for (std::size_t i = 0; i < entries.size(); ++i) {
      WeightsRecord r = checked_record(entries[i], i, path);
      const std::string where = path + ": " + r.name();
      try {
        register_weights(std::move(r));
      } catch (const Error& e) {
        throw UsageError(where, e.reason());
      }
    }
  }
}

}  // namespace mz::detail
