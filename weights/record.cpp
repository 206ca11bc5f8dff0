// The weights table: registration, lookup, and the weight-entry JSON (`mz list --json`, manifests).
#include <algorithm>
#include <cmath>
#include <deque>
#include <mutex>
#include <regex>
#include <unordered_map>

#include "modelzoo/hub.h"
#include "modelzoo/weights.h"
#include "weights/json_number.h"
#include "weights/suggest.h"

namespace mz {
namespace {

struct Table {
  std::mutex mu;
  std::deque<WeightsRecord> records;  // deque: references never move
  std::unordered_map<std::string, const WeightsRecord*> by_name;
};

Table& table() {
  static Table t;
  return t;
}

void ensure_manifests() {
  static std::once_flag once;
  std::call_once(once, [] { detail::load_manifests_from_env(); });
}

using nlohmann::json;

json metric_json(double v) { return std::isnan(v) ? json(nullptr) : json(v); }

template <class T>
T required(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key)) throw UsageError(where, std::string("missing field '") + key + "'");
  if (!detail::integers_fit<T>(j.at(key)))
    throw UsageError(where, std::string("field '") + key + "' must hold integers within range, got " + j.at(key).dump());
  try {
    return j.at(key).get<T>();
  } catch (const json::exception&) {
    throw UsageError(where, std::string("field '") + key + "' has the wrong type");
  }
}

template <class T>
T optional_field(const json& j, const char* key, T fallback, const std::string& where) {
  if (!j.contains(key) || j.at(key).is_null()) return fallback;
  return required<T>(j, key, where);
}

bool same_json(const WeightsRecord& a, const WeightsRecord& b) {
  json ja = to_json(a), jb = to_json(b);
  return ja == jb;
}

}  // namespace

json to_json(const Transforms& t) {
  json j = {{"preset", t.preset}};
  if (t.crop_size) j["crop_size"] = *t.crop_size;
  if (t.resize_size) j["resize_size"] = *t.resize_size;
  if (!t.mean.empty()) j["mean"] = t.mean;
  if (!t.std.empty()) j["std"] = t.std;
  if (!t.interpolation.empty()) j["interpolation"] = t.interpolation;
  return j;
}

json to_json(const WeightsRecord& r) {
  json metrics = json::object();
  for (const auto& [dataset, values] : r.meta.metrics)
    for (const auto& [name, v] : values) metrics[dataset][name] = metric_json(v);
  json meta = {{"num_params", r.meta.num_params},
               {"min_size", r.meta.min_size ? json{r.meta.min_size->first, r.meta.min_size->second} : json(nullptr)},
               {"categories", r.meta.categories ? json(*r.meta.categories) : json(nullptr)},
               {"metrics", metrics},
               {"recipe", r.meta.recipe},
               {"docs", r.meta.docs}};
  for (const auto& [k, v] : r.meta.extra.items()) meta[k] = v;
  return {{"weight", r.name()},
          {"model", r.model},
          {"task", r.task},
          {"default", r.is_default},
          {"url", r.url},
          {"hash_prefix", r.hash_prefix},
          {"sha256", r.sha256.empty() ? json(nullptr) : json(r.sha256)},
          {"file_size", r.file_size ? json(*r.file_size) : json(nullptr)},
          {"meta", meta},
          {"transforms", to_json(r.transforms)},
          {"source", r.source}};
}

WeightsRecord record_from_json(const json& e, const std::string& source) {
  std::string where = source;
  if (!e.is_object()) throw UsageError(where, "weight entry is not a JSON object");
  const std::string name = required<std::string>(e, "weight", where);
  where += ": " + name;
  WeightsRecord r;
  const auto dot = name.find('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == name.size())
    throw UsageError(where, "weight name must look like 'Enum_Weights.VALUE'");
  r.enum_name = name.substr(0, dot);
  r.value_name = name.substr(dot + 1);
  static const std::regex ident("[A-Za-z_][A-Za-z0-9_]*");
  if (!std::regex_match(r.enum_name, ident) || !std::regex_match(r.value_name, ident) || r.value_name == "DEFAULT")
    throw UsageError(where, "weight name must look like 'Enum_Weights.VALUE' with identifiers (and not DEFAULT)");
  r.model = required<std::string>(e, "model", where);
  r.task = optional_field<std::string>(e, "task", "classification", where);
  r.is_default = false;  // run-time entries never change what DEFAULT means
  r.url = required<std::string>(e, "url", where);
  r.hash_prefix = optional_field<std::string>(e, "hash_prefix", "", where);
  r.sha256 = optional_field<std::string>(e, "sha256", "", where);
  static const std::regex hex64("[0-9a-f]{64}"), hex_run("[0-9a-f]{1,64}");
  if (!r.sha256.empty() && !std::regex_match(r.sha256, hex64))
    throw UsageError(where, "sha256 must be 64 lower-case hex digits");
  if (!r.hash_prefix.empty() && !std::regex_match(r.hash_prefix, hex_run))
    throw UsageError(where, "hash_prefix must be 1 to 64 lower-case hex digits");
  if (!r.sha256.empty() && !r.hash_prefix.empty() && r.sha256.compare(0, r.hash_prefix.size(), r.hash_prefix) != 0)
    throw UsageError(where, "hash_prefix does not match sha256");
  if (e.contains("file_size") && !e["file_size"].is_null()) r.file_size = required<std::uint64_t>(e, "file_size", where);
  const json meta = optional_field<json>(e, "meta", json::object(), where);
  r.meta.num_params = optional_field<std::int64_t>(meta, "num_params", 0, where);
  if (meta.contains("min_size") && !meta["min_size"].is_null()) {
    auto ms = required<std::vector<std::int64_t>>(meta, "min_size", where);
    if (ms.size() != 2) throw UsageError(where, "meta.min_size must be [height, width]");
    r.meta.min_size = std::make_pair(ms[0], ms[1]);
  }
  if (meta.contains("categories") && !meta["categories"].is_null())
    r.meta.categories = required<std::vector<std::string>>(meta, "categories", where);
  const json metrics = optional_field<json>(meta, "metrics", json::object(), where);
  for (const auto& [dataset, values] : metrics.items())
    for (const auto& [k, v] : values.items()) {
      if (!v.is_null() && !v.is_number()) throw UsageError(where, "metric '" + dataset + "." + k + "' is not a number");
      r.meta.metrics[dataset][k] = v.is_null() ? NAN : v.get<double>();
    }
  r.meta.recipe = optional_field<std::string>(meta, "recipe", "", where);
  r.meta.docs = optional_field<std::string>(meta, "docs", "", where);
  for (const auto& [k, v] : meta.items())
    if (k != "num_params" && k != "min_size" && k != "categories" && k != "metrics" && k != "recipe" && k != "docs")
      r.meta.extra[k] = v;
  const json t = optional_field<json>(e, "transforms", json{{"preset", "ImageClassification"}}, where);
  r.transforms.preset = required<std::string>(t, "preset", where);
  if (t.contains("crop_size")) r.transforms.crop_size = required<std::int64_t>(t, "crop_size", where);
  if (t.contains("resize_size") && !t["resize_size"].is_null())
    r.transforms.resize_size = required<std::int64_t>(t, "resize_size", where);
  r.transforms.mean = optional_field<std::vector<double>>(t, "mean", {}, where);
  r.transforms.std = optional_field<std::vector<double>>(t, "std", {}, where);
  r.transforms.interpolation = optional_field<std::string>(t, "interpolation", "", where);
  r.source = source;
  return r;
}

const WeightsRecord& register_weights(WeightsRecord record) {
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mu);
  const std::string name = record.name();
  if (auto it = t.by_name.find(name); it != t.by_name.end()) {
    WeightsRecord probe = record;
    probe.source = it->second->source;
    probe.is_default = it->second->is_default;
    if (same_json(*it->second, probe)) return *it->second;
    throw UsageError(record.source + ": " + name,
                     "clashes with the weights of that name registered by " + it->second->source);
  }
  const WeightsRecord& stored = t.records.emplace_back(std::move(record));
  t.by_name.emplace(name, &stored);
  return stored;
}

const WeightsRecord* find_weights(std::string_view full_name) {
  ensure_manifests();
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mu);
  auto it = t.by_name.find(std::string(full_name));
  return it == t.by_name.end() ? nullptr : it->second;
}

std::vector<const WeightsRecord*> all_weights() {
  ensure_manifests();
  Table& t = table();
  std::lock_guard<std::mutex> lock(t.mu);
  std::vector<const WeightsRecord*> out;
  for (const auto& r : t.records) out.push_back(&r);
  return out;
}

const WeightsRecord& Weights::record() const {
  const std::string name = std::string(enum_) + "." + value_;
  const WeightsRecord* r = find_weights(name);
  if (!r) throw UsageError(name, "unknown weights");
  return *r;
}

const WeightsRecord& get_weight(const std::string& full_name) {
  if (const WeightsRecord* r = find_weights(full_name)) return *r;
  const auto dot = full_name.find('.');
  if (dot != std::string::npos && full_name.substr(dot + 1) == "DEFAULT")
    if (const auto lock = LockFile::active()) {  // DEFAULT means what it meant when the lock was written
      const std::string enum_name = full_name.substr(0, dot);
      const auto it = lock->defaults().find(enum_name);
      if (it == lock->defaults().end())
        throw HubError(full_name, "the lock file " + lock->source() + " pins no DEFAULT for " + enum_name +
                                      "; add it with: mz lock --add " + full_name + " --output " + lock->source());
      return get_weight(enum_name + "." + it->second);
    }
  if (dot != std::string::npos && full_name.substr(dot + 1) == "DEFAULT")
    for (const WeightsRecord* r : all_weights())
      if (r->is_default && r->enum_name == full_name.substr(0, dot)) return *r;
  std::vector<std::string> names;
  for (const WeightsRecord* r : all_weights()) names.push_back(r->name());
  throw UsageError(full_name, "unknown weights" + did_you_mean(full_name, names));
}

namespace detail {
std::string builtin_weights_enum(const std::string& model) {
  Table& t = table();  // no manifest loading: this serves the manifest reader itself
  std::lock_guard<std::mutex> lock(t.mu);
  for (const auto& r : t.records)
    if (r.source == "builtin" && r.model == model) return r.enum_name;
  return "";
}
}  // namespace detail

// Edit distance, for "did you mean" suggestions.
static std::size_t distance(const std::string& a, const std::string& b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] != b[j - 1])});
      diag = up;
    }
  }
  return row[b.size()];
}

std::string did_you_mean(const std::string& name, const std::vector<std::string>& names) {
  std::vector<std::pair<std::size_t, std::string>> scored;
  for (const std::string& n : names) scored.emplace_back(distance(name, n), n);
  std::sort(scored.begin(), scored.end());
  std::string out;
  for (std::size_t i = 0; i < scored.size() && i < 3; ++i) out += (i ? ", " : "") + scored[i].second;
  return out.empty() ? "" : " (did you mean: " + out + "?)";
}

}  // namespace mz
