// Lock files (README "Lock files"): versioned JSON pinning weight names to URL, full SHA-256, size and
// assets, and each enum's DEFAULT. Read, validated, written; the active lock (MZ_LOCKFILE or activate()).
#include <mutex>
#include <regex>

#include <nlohmann/json.hpp>

#include "modelzoo/hub.h"
#include "weights/hub/hub_impl.h"

namespace mz {
namespace {

using nlohmann::json;

constexpr const char* kTrustNote =
    "Entries with \"trust\": \"first-use\" had no full digest upstream (only the hex prefix in the file name, or "
    "none): the digest recorded is that of the first download, checked against the prefix where there is one.";

// A field of `j` (an object), checked: HubError(source, "<where>: <reason>") when missing or of the wrong kind.
class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}
  [[noreturn]] void fail(const std::string& where, const std::string& why) const {
    throw HubError(source_, where.empty() ? why : where + ": " + why);
  }
  const json& field(const json& j, const char* key, const std::string& where) const {
    if (!j.is_object()) fail(where, "expected a JSON object");
    if (!j.contains(key)) fail(where, std::string("missing \"") + key + "\"");
    return j.at(key);
  }
  std::string string(const json& j, const char* key, const std::string& where) const {
    const json& v = field(j, key, where);
    if (!v.is_string() || v.get<std::string>().empty()) fail(where, std::string("\"") + key + "\" must be a non-empty string");
    return v.get<std::string>();
  }
  LockedFile file(const json& j, const std::string& where) const {
    static const std::regex hex64("[0-9a-f]{64}");
    LockedFile f;
    f.url = string(j, "url", where);
    f.sha256 = string(j, "sha256", where);
    if (!std::regex_match(f.sha256, hex64)) fail(where, "\"sha256\" must be 64 lower-case hex digits, got '" + f.sha256 + "'");
    const json& size = field(j, "size", where);
    if (!size.is_number_unsigned()) fail(where, "\"size\" must be a non-negative integer");
    f.size = size.get<std::uint64_t>();
    const std::string trust = string(j, "trust", where);
    if (trust != "record" && trust != "first-use") fail(where, "\"trust\" must be \"record\" or \"first-use\", got '" + trust + "'");
    f.first_use = trust == "first-use";
    return f;
  }

 private:
  std::string source_;
};

json file_json(const LockedFile& f) {
  return {{"url", f.url}, {"sha256", f.sha256}, {"size", f.size}, {"trust", f.first_use ? "first-use" : "record"}};
}

struct Active {
  std::mutex mu;
  std::shared_ptr<const LockFile> activated;
  std::string env_path;  // MZ_LOCKFILE as last read
  std::shared_ptr<const LockFile> from_env;
};
Active& active_state() {
  static Active a;
  return a;
}

}  // namespace

LockFile LockFile::parse(const std::string& text, const std::string& source) {
  const Reader in(source);
  const json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) in.fail("", "not a lock file: not JSON");
  if (!j.is_object() || !j.contains("modelzoo_lock"))
    in.fail("", "not a lock file: no \"modelzoo_lock\" version (write one with mz lock)");
  const json& version = j["modelzoo_lock"];
  if (!version.is_number_integer() || version.get<long>() != kVersion)
    in.fail("", "unknown lock file schema: \"modelzoo_lock\": " + version.dump() + " (this mz reads version " +
                    std::to_string(kVersion) + ")");
  LockFile lock;
  lock.source_ = source;
  const json& weights = in.field(j, "weights", "");
  if (!weights.is_array()) in.fail("", "\"weights\" must be an array");
  for (std::size_t i = 0; i < weights.size(); ++i) {
    const std::string where = "weights[" + std::to_string(i) + "]";
    LockEntry e;
    e.weight = in.string(weights[i], "weight", where);
    if (e.weight.find('.') == std::string::npos) in.fail(where, "\"weight\" must be 'Enum.VALUE', got '" + e.weight + "'");
    e.file = in.file(weights[i], where + " (" + e.weight + ")");
    if (weights[i].contains("assets")) {
      const json& assets = weights[i]["assets"];
      if (!assets.is_array()) in.fail(where, "\"assets\" must be an array");
      for (std::size_t k = 0; k < assets.size(); ++k)
        e.assets.push_back(in.file(assets[k], where + ".assets[" + std::to_string(k) + "]"));
    }
    if (lock.find(e.weight)) in.fail(where, e.weight + " is listed twice");
    lock.entries_.push_back(std::move(e));
  }
  if (j.contains("defaults")) {
    if (!j["defaults"].is_object()) in.fail("", "\"defaults\" must be an object of enum -> value name");
    for (const auto& item : j["defaults"].items()) {
      if (!item.value().is_string()) in.fail("defaults." + item.key(), "must be a value name string");
      const std::string value = item.value().get<std::string>();
      if (!lock.find(item.key() + "." + value))
        in.fail("defaults." + item.key(), "names " + item.key() + "." + value + ", which the lock does not list");
      lock.defaults_[item.key()] = value;
    }
  }
  return lock;
}

LockFile LockFile::load(const std::string& path) {
  std::string text;
  if (!hub::detail::read_file(path, text)) throw HubError(path, "cannot read the lock file");
  return parse(text, path);
}

json LockFile::to_json() const {
  json weights = json::array();
  bool first_use = false;
  for (const LockEntry& e : entries_) {
    json w = file_json(e.file);
    w["weight"] = e.weight;
    first_use = first_use || e.file.first_use;
    if (!e.assets.empty()) {
      w["assets"] = json::array();
      for (const auto& a : e.assets) {
        w["assets"].push_back(file_json(a));
        first_use = first_use || a.first_use;
      }
    }
    weights.push_back(std::move(w));
  }
  json j = {{"modelzoo_lock", kVersion}, {"defaults", defaults_}, {"weights", std::move(weights)}};
  if (first_use) j["trust_on_first_use"] = kTrustNote;
  return j;
}

void LockFile::save(const std::string& path) const { hub::detail::write_file_atomic(path, to_json().dump(1) + "\n"); }

const LockEntry* LockFile::find(const std::string& weight) const {
  for (const auto& e : entries_)
    if (e.weight == weight) return &e;
  return nullptr;
}

const LockedFile* LockFile::find_url(const std::string& url) const {
  for (const auto& e : entries_) {
    if (e.file.url == url) return &e.file;
    for (const auto& a : e.assets)
      if (a.url == url) return &a;
  }
  return nullptr;
}

void LockFile::add(LockEntry entry) {
  for (auto& e : entries_)
    if (e.weight == entry.weight) {
      e = std::move(entry);
      return;
    }
  entries_.push_back(std::move(entry));
}

void LockFile::set_default(const std::string& enum_name, const std::string& value_name) {
  defaults_[enum_name] = value_name;
}

void LockFile::activate(const std::string& path) { load(path).activate(); }

void LockFile::activate() const {
  Active& a = active_state();
  std::lock_guard<std::mutex> guard(a.mu);
  a.activated = std::make_shared<const LockFile>(*this);
}

void LockFile::deactivate() {
  Active& a = active_state();
  std::lock_guard<std::mutex> guard(a.mu);
  a.activated.reset();
}

std::shared_ptr<const LockFile> LockFile::active() {
  Active& a = active_state();
  std::lock_guard<std::mutex> guard(a.mu);
  if (a.activated) return a.activated;
  const std::string path = hub::detail::env_str("MZ_LOCKFILE");
  if (path != a.env_path || (!path.empty() && !a.from_env)) {
    a.from_env = path.empty() ? nullptr : std::make_shared<const LockFile>(load(path));
    a.env_path = path;
  }
  return a.from_env;
}

}  // namespace mz

namespace mz::hub {
namespace {

LockedFile locked_file(const WeightsRecord& r) {
  if (!r.sha256.empty() && r.file_size) return {r.url, r.sha256, *r.file_size, false};
  const std::string path = fetch(r);
  const auto e = cached(r);
  if (!e) throw HubError(r.name(), "disappeared from the cache right after the download: " + path);
  return {r.url, e->sha256, e->size, r.sha256.empty()};
}

}  // namespace

LockEntry lock_entry(const WeightsRecord& record) {
  LockEntry e;
  e.weight = record.name();
  e.file = locked_file(record);
  for (const std::string& url : asset_urls(record)) e.assets.push_back(locked_file(asset_record(record, url)));
  return e;
}

}  // namespace mz::hub
