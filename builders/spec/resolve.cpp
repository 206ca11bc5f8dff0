// Spec resolution, JSON to JSON: "_base_" merging, KEY=VALUE overrides, ${...} references. Specs are
// untrusted input: nesting, base chains, file sizes and the work references do are bounded.
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "builders/spec/paths.h"
#include "modelzoo/spec.h"
#include "weights/suggest.h"

namespace mz::spec {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr int kMaxBases = 16;                         // a _base_ chain
constexpr std::uintmax_t kMaxFileBytes = 16u << 20;   // one spec file
constexpr std::size_t kMaxReferences = 100000;        // ${...} lookups in one resolution
constexpr std::size_t kMaxValues = 2000000;           // values in a resolved spec

std::map<std::string, json>& registered() {
  static std::map<std::string, json> specs;
  return specs;
}
std::mutex& registered_mutex() {
  static std::mutex m;
  return m;
}

// A spec named by a _base_, a load() or a string spec: a file (a name with '/' or ending in .json,
// relative to `dir`) or a registered spec. Sets `id` (for cycles) and `base_dir` (for its own bases).
json read_named(const std::string& name, const std::string& dir, const std::string& at, std::string& id,
                std::string& base_dir) {
  const bool is_file = name.find('/') != std::string::npos || (name.size() > 5 && name.substr(name.size() - 5) == ".json");
  if (!is_file) {
    std::lock_guard<std::mutex> lock(registered_mutex());
    auto it = registered().find(name);
    if (it == registered().end()) {
      std::vector<std::string> names;
      for (const auto& [n, s] : registered()) names.push_back(n);
      throw UsageError(at, "no spec file or registered spec named '" + name + "' (a file name has a '/' or ends in .json)" +
                               did_you_mean(name, names));
    }
    id = "spec:" + name;
    base_dir = dir;
    return it->second;
  }
  fs::path path = fs::path(name).is_absolute() ? fs::path(name) : fs::path(dir) / name;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw UsageError(at, "no spec file " + path.string());
  if (fs::file_size(path, ec) > kMaxFileBytes) throw UsageError(path.string(), "spec file larger than 16 MiB");
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) throw UsageError(path.string(), "cannot read the spec file");
  json spec;
  try {
    spec = json::parse(text.str());
  } catch (const json::exception& e) {
    throw UsageError(path.string(), std::string("not valid JSON: ") + e.what());
  }
  id = fs::weakly_canonical(path, ec).string();
  base_dir = path.parent_path().string();
  if (base_dir.empty()) base_dir = ".";
  return spec;
}

// base with over's keys on top; a node with another _target_ replaces the base's node.
json merge(const json& base, const json& over) {
  if (!base.is_object() || !over.is_object()) return over;
  if (over.contains("_target_") && base.contains("_target_") && over["_target_"] != base["_target_"]) return over;
  json out = base;
  for (const auto& [key, value] : over.items()) out[key] = out.contains(key) ? merge(out[key], value) : value;
  return out;
}

// Every "_base_" of the tree merged in, depth-first; `chain` holds the specs being expanded (cycles).
json expand(const json& node, const std::string& dir, std::vector<std::string>& chain, const Path& at, int depth) {
  check_depth(at, depth);
  if (node.is_array()) {
    json out = json::array();
    for (std::size_t i = 0; i < node.size(); ++i) out.push_back(expand(node[i], dir, chain, at / std::to_string(i), depth + 1));
    return out;
  }
  if (!node.is_object()) return node;
  json own = json::object();
  for (const auto& [key, value] : node.items())
    if (key != "_base_") own[key] = expand(value, dir, chain, at / key, depth + 1);
  if (!node.contains("_base_")) return own;
  const json& name = node["_base_"];
  const std::string where = (at / "_base_").str();
  if (!name.is_string()) throw UsageError(where, "must name a spec file or a registered spec, got " + name.dump());
  std::string id, base_dir;
  json base = read_named(name.get<std::string>(), dir, where, id, base_dir);
  if (std::find(chain.begin(), chain.end(), id) != chain.end()) {
    std::string cycle;
    for (const auto& c : chain) cycle += c + " -> ";
    throw UsageError(where, "_base_ cycle: " + cycle + id);
  }
  if (chain.size() >= kMaxBases) throw UsageError(where, "_base_ chain longer than 16 specs");
  chain.push_back(id);
  json expanded = expand(base, base_dir, chain, at, depth);
  chain.pop_back();
  return merge(expanded, own);
}

void apply_override(json& spec, const std::string& text) {
  // JSON's parser has checked the spec's strings, but an override comes from the command line as it is
  try {
    (void)json(text).dump();
  } catch (const json::type_error&) {
    throw UsageError("override", "not valid UTF-8: " + json(text).dump(-1, ' ', false, json::error_handler_t::replace));
  }
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) throw UsageError(text, "an override is KEY=VALUE, KEY a dotted path into the spec");
  const std::string key = text.substr(0, eq), value_text = text.substr(eq + 1);
  json value;
  try {
    value = json::parse(value_text);
  } catch (const json::exception&) {
    value = value_text;  // not JSON: a string
  }
  const std::vector<std::string> segments = split_path(key, text);
  json* cur = &spec;
  Path at;
  for (const std::string& seg : segments) {
    check_depth(at, static_cast<int>(at.size()));
    if (cur->is_null()) *cur = json::object();
    if (cur->is_object()) {
      cur = &(*cur)[seg];
    } else if (cur->is_array() && is_index(seg) && std::stoull(seg) < cur->size()) {
      cur = &(*cur)[std::stoull(seg)];
    } else {
      throw UsageError(at.str(), "override " + key + ": cannot set '" + seg + "' in " + cur->dump());
    }
    at = at / seg;
  }
  *cur = std::move(value);
}

// ${...} references, resolved on the merged spec.
class References {
 public:
  explicit References(const json& root) : root_(root) {}

  json resolve(const json& v, const Path& at, int depth) {
    check_depth(at, depth);
    if (++values_ > kMaxValues) throw UsageError(at.str(), "the resolved spec has more than 2000000 values");
    if (v.is_string()) return resolve_string(v.get_ref<const std::string&>(), at, depth);
    if (v.is_array()) {
      json out = json::array();
      for (std::size_t i = 0; i < v.size(); ++i) out.push_back(resolve(v[i], at / std::to_string(i), depth + 1));
      return out;
    }
    if (v.is_object()) {
      json out = json::object();
      for (const auto& [key, value] : v.items()) out[key] = resolve(value, at / key, depth + 1);
      return out;
    }
    return v;
  }

 private:
  json resolve_string(const std::string& s, const Path& at, int depth) {
    auto open = s.find("${");
    if (open == std::string::npos) return s;
    auto close = s.find('}', open);
    if (open == 0 && close == s.size() - 1) return lookup(s.substr(2, close - 2), at, depth);  // the value itself
    std::string out;
    std::size_t pos = 0;
    while (open != std::string::npos) {
      close = s.find('}', open);
      if (close == std::string::npos) throw UsageError(at.str(), "unterminated reference in " + json(s).dump());
      const json v = lookup(s.substr(open + 2, close - open - 2), at, depth);
      if (!v.is_primitive() || v.is_null())
        throw UsageError(at.str(), "${" + s.substr(open + 2, close - open - 2) + "} is " + v.dump() +
                                       ": only a string, number or bool can be part of a longer string");
      out += s.substr(pos, open - pos) + (v.is_string() ? v.get<std::string>() : v.dump());
      pos = close + 1;
      open = s.find("${", pos);
    }
    return out + s.substr(pos);
  }

  // The value a reference names, itself resolved. `at` is where the reference is written.
  json lookup(const std::string& ref, const Path& at, int depth) {
    const std::string where = at.str();
    if (++lookups_ > kMaxReferences) throw UsageError(where, "more than 100000 reference lookups");
    Path target;
    std::string rest = ref;
    if (!ref.empty() && ref[0] == '.') {  // relative: "." the node holding the reference, each more dot its parent
      std::size_t dots = ref.find_first_not_of('.');
      if (dots == std::string::npos) dots = ref.size();
      rest = ref.substr(dots);
      if (dots > at.size()) throw UsageError(where, "unresolved reference ${" + ref + "}: it goes above the root");
      target = at.parent(dots);
    }
    if (!rest.empty())
      for (const std::string& seg : split_path(rest, "${" + ref + "}")) target = target / seg;
    const std::string key = target.str();
    if (std::find(active_.begin(), active_.end(), key) != active_.end()) {
      std::string cycle;
      for (const auto& a : active_) cycle += a + " -> ";
      throw UsageError(where, "reference cycle: " + cycle + key);
    }
    active_.push_back(key);
    json owned;
    const json* cur = &root_;
    Path walked;
    for (const std::string& seg : target.segments) {
      if (cur->is_string() && cur->get_ref<const std::string&>().find("${") != std::string::npos) {
        json r = resolve(*cur, walked, depth + 1);
        owned = std::move(r);
        cur = &owned;
      }
      if (cur->is_object() && cur->contains(seg)) {
        cur = &(*cur)[seg];
      } else if (cur->is_array() && is_index(seg) && std::stoull(seg) < cur->size()) {
        cur = &(*cur)[std::stoull(seg)];
      } else {
        std::string keys;
        if (cur->is_object())
          for (const auto& [k, v] : cur->items()) keys += (keys.empty() ? "" : ", ") + k;
        throw UsageError(where, "unresolved reference ${" + ref + "}: " + walked.str() + " has no '" + seg + "'" +
                                    (keys.empty() ? "" : " (keys: " + keys + ")"));
      }
      walked = walked / seg;
    }
    json result = resolve(*cur, target, depth + 1);
    active_.pop_back();
    return result;
  }

  const json& root_;
  std::vector<std::string> active_;
  std::size_t lookups_ = 0, values_ = 0;
};

json resolve_in(const json& spec, const std::vector<std::string>& overrides, const std::string& dir,
                std::vector<std::string> chain) {
  if (spec.is_string()) {
    std::string id, base_dir;
    json named = read_named(spec.get<std::string>(), dir, "model", id, base_dir);
    return resolve_in(named, overrides, base_dir, {id});
  }
  if (!spec.is_object()) throw UsageError("model", "a spec is a JSON object (a node), got " + spec.dump());
  json merged = expand(spec, dir, chain, Path{}, 0);
  for (const std::string& o : overrides) apply_override(merged, o);
  return References(merged).resolve(merged, Path{}, 0);
}

}  // namespace

void register_spec(const std::string& name, nlohmann::json spec) {
  std::lock_guard<std::mutex> lock(registered_mutex());
  if (!registered().emplace(name, std::move(spec)).second)
    throw std::logic_error("modelzoo: spec '" + name + "' is registered twice");
}

nlohmann::json resolve(const nlohmann::json& spec, const std::vector<std::string>& overrides, const std::string& dir) {
  return resolve_in(spec, overrides, dir, {});
}

nlohmann::json load(const std::string& file, const std::vector<std::string>& overrides) {
  return resolve_in(json(file), overrides, ".", {});
}

}  // namespace mz::spec
