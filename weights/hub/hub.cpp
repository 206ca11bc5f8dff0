// The hub: a weights record in, a verified local path out.
//
// Cache layout (README "Cache layout"):
//   <root>/blobs/<key>/<filename>        the verified file, published by fsync + rename
//   <root>/blobs/<key>/<filename>.json   its record: url, source, sha256, size, mtime stamp, weights
//   <root>/blobs/<key>/<filename>.<token>.part (+ .part.json)   a partial download and its validator
//   <root>/locks/<key>.lock              flock taken while downloading
// key = first 16 hex digits of sha256(url + "\n" + expected digest), so two different
// (URL, digest) pairs never share a path.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <tuple>
#include <vector>
#include <algorithm>

#include <nlohmann/json.hpp>

#include "modelzoo/hub.h"
#include "weights/hub/hub_impl.h"

namespace mz::hub {
namespace {

using detail::Expect;
using nlohmann::json;

// ---- layout -------------------------------------------------------------------------------------

std::string url_basename(const std::string& url) {
  std::string path = url.substr(0, url.find_first_of("?#"));
  return detail::base_of(path);
}

std::string safe_filename(const std::string& url) {
  std::string name = url_basename(url);
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '.' && ch != '-' && ch != '_' && ch != '+') ch = '_';
  if (name.empty() || name[0] == '.') name = "download" + name;
  return name;
}

std::string expectation(const WeightsRecord& r) {
  if (!r.sha256.empty()) return "sha256:" + r.sha256;
  return "prefix:" + r.hash_prefix + ":size:" + (r.file_size ? std::to_string(*r.file_size) : "?");
}

std::string key_of(const WeightsRecord& r) {
  return detail::sha256_hex(r.url + "\n" + expectation(r)).substr(0, 16);
}

struct Layout {
  std::string dir, file, sidecar, lock;
};

Layout layout(const WeightsRecord& r) {
  const std::string root = cache_dir(), key = key_of(r);
  Layout l;
  l.dir = root + "/blobs/" + key;
  l.file = l.dir + "/" + safe_filename(r.url);
  l.sidecar = l.file + ".json";
  l.lock = root + "/locks/" + key + ".lock";
  return l;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

std::vector<std::string> list_dir(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d))
      if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) out.push_back(e->d_name);
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ---- sidecars -----------------------------------------------------------------------------------

std::int64_t mtime_ns(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

bool read_sidecar(const std::string& path, CacheEntry& e, std::int64_t& stamp) {
  std::string text;
  if (!detail::read_file(path, text)) return false;
  const json j = json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("sha256") || !j.contains("size")) return false;
  try {
    e.path = path.substr(0, path.size() - 5);
    e.url = j.value("url", "");
    e.source = j.value("source", "");
    e.sha256 = j.at("sha256").get<std::string>();
    e.size = j.at("size").get<std::uint64_t>();
    e.weights = j.value("weights", "");
    stamp = j.value("mtime_ns", std::int64_t{-1});
  } catch (const json::exception&) {
    return false;
  }
  return true;
}

// Records the digest of a verified file with the stamp (mtime) that makes later checks cheap.
void write_sidecar(const CacheEntry& e) {
  struct stat st {};
  if (::stat(e.path.c_str(), &st) != 0) throw HubError(e.path, std::string("cannot stat: ") + std::strerror(errno));
  json j = {{"schema", "modelzoo.cache/1"}, {"url", e.url},   {"source", e.source}, {"sha256", e.sha256},
            {"size", e.size},               {"mtime_ns", mtime_ns(st)}, {"weights", e.weights}};
  detail::write_file_atomic(e.path + ".json", j.dump(1) + "\n");
}

void remove_entry(const std::string& file) {
  ::unlink(file.c_str());
  ::unlink((file + ".json").c_str());
}

// Publishes a verified temp file under its final name (the temp file is already fsynced).
void publish(const std::string& tmp, const Layout& l, CacheEntry e) {
  if (::rename(tmp.c_str(), l.file.c_str()) != 0)
    throw HubError(l.file, std::string("cannot rename into place: ") + std::strerror(errno));
  detail::fsync_dir(l.dir);
  ::unlink((tmp + ".json").c_str());
  e.path = l.file;
  write_sidecar(e);
}

// ---- the lock file and the coordinator -----------------------------------------------------------

// The record as the active lock file pins it, and what its file must match. The cache path stays the
// record's own when the lock pins the same URL, so a file fetched before the lock was written is found.
std::pair<WeightsRecord, Expect> locked(const WeightsRecord& r) {
  const auto lock = LockFile::active();
  if (!lock) return {r, Expect::of(r)};
  const auto colon = r.value_name.find(':');  // an asset: "Enum.VALUE:<file>"
  const std::string owner = r.enum_name + "." + r.value_name.substr(0, colon);
  const LockEntry* entry = lock->find(owner);
  const LockedFile* file = entry && colon == std::string::npos ? &entry->file : nullptr;
  if (entry && colon != std::string::npos)
    for (const auto& a : entry->assets)
      if (a.url == r.url) file = &a;
  if (!file && entry)  // an asset the lock does not list, or a weight whose record moved to another URL
    throw HubError(r.name(), "the lock file " + lock->source() + " has no entry for " + r.url +
                                 "; update it with: mz lock --add " + owner + " --output " + lock->source());
  if (!file)
    throw HubError(owner, "not in the lock file " + lock->source() + "; add it with: mz lock --add " + owner +
                              " --output " + lock->source());
  if (file->url == r.url) return {r, Expect{file->sha256, r.hash_prefix, file->size}};
  const WeightsRecord moved = pinned(r, *file);
  return {moved, Expect::of(moved)};
}

bool locked_digest(const WeightsRecord& r, const Expect& expect) {
  return LockFile::active() && expect.sha256 != r.sha256;
}

std::mutex& coordinator_mutex() {
  static std::mutex m;
  return m;
}
Coordinator& coordinator_slot() {
  static Coordinator c;
  return c;
}
Coordinator coordinator() {
  std::lock_guard<std::mutex> guard(coordinator_mutex());
  return coordinator_slot();
}

// ---- checks -------------------------------------------------------------------------------------

// The cached entry when the file is there and matches the record: cheaply (size + stamp) unless
// `rehash`, or when the stamp changed. A file that fails is removed.
std::optional<CacheEntry> check_cached(const WeightsRecord& r, const Expect& expect, const Layout& l, bool rehash) {
  struct stat st {};
  if (::stat(l.file.c_str(), &st) != 0) return std::nullopt;
  CacheEntry e;
  std::int64_t stamp = -1;
  const bool have = read_sidecar(l.sidecar, e, stamp);
  if (have && !rehash && stamp == mtime_ns(st) && e.size == static_cast<std::uint64_t>(st.st_size) &&
      detail::check(expect, e.sha256, e.size).empty())
    return e;
  const std::string digest = detail::sha256_file(l.file);
  const std::string bad = detail::check(expect, digest, static_cast<std::uint64_t>(st.st_size));
  if (!bad.empty() && locked_digest(r, expect))  // it may be the registry's file: keep it, report the lock's pin
    throw HubError(r.name(), "the cached file " + l.file + " does not match the lock file " + LockFile::active()->source() +
                                 ": " + bad + "; re-lock it (mz lock) or remove it (mz cache rm " + r.name() + ")");
  if (!bad.empty()) {
    detail::notice(l.file + ": cached file failed verification (" + bad + "); removing it");
    remove_entry(l.file);
    return std::nullopt;
  }
  e = {l.file, r.url, digest, static_cast<std::uint64_t>(st.st_size), r.name(), have ? e.source : r.url};
  write_sidecar(e);
  return e;
}

// Reuses torch.hub's copy ($TORCH_HOME/hub/checkpoints/<file>) when it verifies: hard link (or copy)
// to a temp name, hash it once, rename into place.
std::optional<CacheEntry> reuse_torch_hub(const WeightsRecord& r, const Expect& expect, const Layout& l) {
  if (expect.sha256.empty() && expect.hash_prefix.empty()) return std::nullopt;
  std::string home = detail::env_str("TORCH_HOME");
  if (home.empty())
    home = detail::env_str("XDG_CACHE_HOME", detail::env_str("HOME", "/root") + "/.cache") + "/torch";
  const std::string src = home + "/hub/checkpoints/" + url_basename(r.url);
  struct stat st {};
  if (::stat(src.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  if (expect.size && *expect.size != static_cast<std::uint64_t>(st.st_size)) return std::nullopt;
  detail::make_dirs(l.dir);
  const std::string tmp = l.file + "." + detail::unique_token() + ".tmp";
  const auto [digest, size] = detail::link_or_copy_hashing(src, tmp);
  if (!detail::check(expect, digest, size).empty()) {
    ::unlink(tmp.c_str());
    return std::nullopt;
  }
  publish(tmp, l, {l.file, r.url, digest, size, r.name(), src});
  return check_cached(r, expect, l, false);
}

// ---- progress bar -------------------------------------------------------------------------------

// A one-line bar on stderr: "<name>  42%  431.0 MiB/1.0 GiB  812.3 MiB/s  ETA 0:01".
class TtyBar {
 public:
  explicit TtyBar(std::string name) : name_(std::move(name)) {}
  ~TtyBar() {
    if (drawn_) std::cerr << "\n" << std::flush;
  }
  void update(std::uint64_t done, std::uint64_t total) {
    const auto now = std::chrono::steady_clock::now();
    if (!started_) {
      started_ = true;
      t0_ = now;
      done0_ = done;
    }
    if (drawn_ && now - last_ < std::chrono::milliseconds(100) && done != total) return;
    last_ = now;
    drawn_ = true;
    const double secs = std::chrono::duration<double>(now - t0_).count();
    const double rate = secs > 0 ? (done - done0_) / secs : 0;
    std::ostringstream line;
    line << "\r" << name_ << "  ";
    if (total) line << (100 * done / total) << "%  " << detail::human_bytes(done) << "/" << detail::human_bytes(total);
    else line << detail::human_bytes(done);
    line << "  " << detail::human_bytes(rate) << "/s";
    if (total && rate > 0) {
      const long eta = static_cast<long>((total - done) / rate);
      char buf[32];
      std::snprintf(buf, sizeof buf, "  ETA %ld:%02ld", eta / 60, eta % 60);
      line << buf;
    }
    line << "   ";
    std::cerr << line.str() << std::flush;
  }

 private:
  std::string name_;
  bool started_ = false, drawn_ = false;
  std::chrono::steady_clock::time_point t0_, last_;
  std::uint64_t done0_ = 0;
};

bool is_file_url(const std::string& url) { return url.rfind("file://", 0) == 0; }

// The sources a download may use: offline, only file:// mirrors, and none is an error.
std::vector<std::string> usable_sources(const WeightsRecord& r, const Layout& l) {
  std::vector<std::string> srcs = sources(r);
  if (offline()) {
    srcs.erase(std::remove_if(srcs.begin(), srcs.end(), [](const auto& u) { return !is_file_url(u); }), srcs.end());
    if (srcs.empty())
      throw HubError(r.name(), "not in the cache and offline mode is on (MZ_OFFLINE=1); expected at " + l.file);
  }
  return srcs;
}

// Downloads from the first of `srcs` that works and publishes the result. Called with the lock held.
std::string download_and_publish(const WeightsRecord& r, const std::vector<std::string>& srcs, const Expect& expect,
                                  const Layout& l, const ProgressCallback& progress) {
  std::vector<std::string> errors;
  for (const std::string& url : srcs) {
    try {
      const auto got = detail::download(url, l.dir, detail::base_of(l.file), expect, progress);
      publish(got.path, l, {l.file, r.url, got.sha256, got.size, r.name(), url});
      return l.file;
    } catch (const HubError& e) {
      errors.push_back(e.what());
    }
  }
  if (errors.size() == 1) throw HubError(r.name(), errors[0]);
  std::string all;
  for (const auto& e : errors) all += (all.empty() ? "" : "; ") + e;
  throw HubError(r.name(), "every source failed: " + all);
}

bool truthy(const std::string& v) { return v == "1" || v == "true" || v == "yes" || v == "on" || v == "TRUE"; }

std::string weights_for(const std::string& dir_key, const std::string& file) {
  for (const WeightsRecord* r : all_weights())
    if (key_of(*r) == dir_key && safe_filename(r->url) == file) return r->name();
  return "";
}

const WeightsRecord* record_for(const CacheEntry& e) {
  if (e.weights.empty()) return nullptr;
  const WeightsRecord* r = find_weights(e.weights);
  return r && layout(*r).file == e.path ? r : nullptr;
}

}  // namespace

std::string cache_dir() {
  const std::string dir = detail::env_str("MZ_CACHE_DIR");
  if (!dir.empty()) return dir;
  return detail::env_str("XDG_CACHE_HOME", detail::env_str("HOME", "/root") + "/.cache") + "/modelzoo";
}

bool offline() { return truthy(detail::env_str("MZ_OFFLINE")); }

std::vector<std::string> mirrors() {
  std::vector<std::string> out;
  std::string spec = detail::env_str("MZ_MIRROR");
  for (char& ch : spec)
    if (ch == ';' || ch == '\t' || ch == '\n') ch = ' ';
  std::istringstream words(spec);
  for (std::string m; words >> m;) out.push_back(m.back() == '/' ? m : m + "/");
  return out;
}

std::vector<std::string> sources(const WeightsRecord& record) {
  std::vector<std::string> out;
  for (const auto& m : mirrors()) out.push_back(m + url_basename(record.url));
  out.push_back(record.url);
  return out;
}

std::string cache_path(const WeightsRecord& record) { return layout(record).file; }

std::string mirror_name(const std::string& url) { return url_basename(url); }

WeightsRecord pinned(const WeightsRecord& record, const LockedFile& file) {
  if (record.url == file.url) return record;
  WeightsRecord moved = record;
  moved.url = file.url;
  moved.sha256 = file.sha256;
  moved.file_size = file.size;
  moved.hash_prefix.clear();
  return moved;
}

std::vector<std::string> asset_urls(const WeightsRecord& record) {
  std::vector<std::string> out;
  const auto& extra = record.meta.extra;
  if (!extra.is_object() || !extra.contains("text_transform") || !extra["text_transform"].is_array()) return out;
  for (const auto& step : extra["text_transform"]) {
    if (!step.is_object()) continue;
    for (const auto& item : step.items())
      if (const auto& value = item.value(); value.is_string() && value.get<std::string>().find("://") != std::string::npos &&
          std::find(out.begin(), out.end(), value.get<std::string>()) == out.end())
        out.push_back(value.get<std::string>());
  }
  return out;
}

WeightsRecord asset_record(const WeightsRecord& owner, const std::string& url) {
  WeightsRecord asset;
  asset.enum_name = owner.enum_name;
  asset.value_name = owner.value_name + ":" + url_basename(url);
  asset.model = owner.model;
  asset.task = owner.task;
  asset.url = url;
  return asset;
}

std::optional<CacheEntry> cached(const WeightsRecord& unlocked) {
  const auto [record, expect] = locked(unlocked);
  const Layout l = layout(record);
  struct stat st {};
  if (::stat(l.file.c_str(), &st) != 0) return std::nullopt;
  return check_cached(record, expect, l, false);
}

std::string fetch(const WeightsRecord& record, const FetchOptions& options) {
  if (const Coordinator c = coordinator()) return c(record, options);
  return fetch_local(record, options);
}

void set_coordinator(Coordinator c) {
  std::lock_guard<std::mutex> guard(coordinator_mutex());
  coordinator_slot() = std::move(c);
}

std::string fetch_cached(const WeightsRecord& record) {
  const auto e = cached(record);
  return e ? e->path : "";
}

std::string fetch_local(const WeightsRecord& unlocked, const FetchOptions& options) {
  const auto [record, expect] = locked(unlocked);
  const Layout l = layout(record);
  if (check_cached(record, expect, l, options.verify)) return l.file;
  if (reuse_torch_hub(record, expect, l)) return l.file;
  std::unique_ptr<TtyBar> bar;
  ProgressCallback progress = options.progress;
  if (!progress && ::isatty(2)) {
    bar = std::make_unique<TtyBar>(record.name());
    progress = [b = bar.get()](std::uint64_t done, std::uint64_t total) { b->update(done, total); };
  }
  // offline with nothing to fetch from: fail before creating anything in the cache
  const std::vector<std::string> srcs = usable_sources(record, l);
  detail::make_dirs(l.dir);
  detail::make_dirs(detail::dir_of(l.lock));
  detail::FileLock lock(l.lock, record.name());
  if (check_cached(record, expect, l, false)) return l.file;  // another process finished it meanwhile
  return download_and_publish(record, srcs, expect, l, progress);
}

std::vector<CacheEntry> cache_list() {
  std::vector<CacheEntry> out;
  const std::string blobs = cache_dir() + "/blobs";
  for (const std::string& key : list_dir(blobs)) {
    const std::string dir = blobs + "/" + key;
    for (const std::string& name : list_dir(dir)) {
      if (!ends_with(name, ".json") || ends_with(name, ".part.json") || ends_with(name, ".tmp")) continue;
      CacheEntry e;
      std::int64_t stamp = -1;
      struct stat st {};
      if (!read_sidecar(dir + "/" + name, e, stamp) || ::stat(e.path.c_str(), &st) != 0) continue;
      if (std::string w = weights_for(key, detail::base_of(e.path)); !w.empty()) e.weights = w;
      out.push_back(e);
    }
  }
  return out;
}

bool verify_cached(const CacheEntry& entry, std::string* reason) {
  auto fail = [&](const std::string& why) {
    if (reason) *reason = why;
    return false;
  };
  struct stat st {};
  if (::stat(entry.path.c_str(), &st) != 0) return fail("not in the cache");
  std::string digest;
  try {
    digest = detail::sha256_file(entry.path);
  } catch (const Error& e) {
    return fail(e.reason());
  }
  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (std::string bad = detail::check({entry.sha256, "", entry.size}, digest, size); !bad.empty())
    return fail(bad + " (recorded when downloaded)");
  if (const WeightsRecord* r = record_for(entry))
    if (std::string bad = detail::check(Expect::of(*r), digest, size); !bad.empty()) return fail(bad);
  CacheEntry fresh = entry;  // the content verifies: refresh the stamp
  write_sidecar(fresh);
  return true;
}

std::vector<std::string> remove_cached(const std::string& what) {
  std::vector<std::string> removed;
  std::string target = what;
  if (const WeightsRecord* r = find_weights(what)) target = layout(*r).file;
  char real[PATH_MAX];
  const std::string want = ::realpath(target.c_str(), real) ? std::string(real) : target;
  for (const CacheEntry& e : cache_list()) {
    const std::string path = ::realpath(e.path.c_str(), real) ? std::string(real) : e.path;
    if (path != want && detail::dir_of(path) != want) continue;
    remove_entry(e.path);
    ::rmdir(detail::dir_of(e.path).c_str());
    removed.push_back(e.path);
  }
  return removed;
}

PruneResult prune() {
  PruneResult res;
  const std::string root = cache_dir(), blobs = root + "/blobs";
  auto drop = [&](const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && ::unlink(path.c_str()) == 0) {
      res.removed.push_back(path);
      res.bytes += static_cast<std::uint64_t>(st.st_size);
    }
  };
  if (!list_dir(blobs).empty()) detail::make_dirs(root + "/locks");
  for (const std::string& key : list_dir(blobs)) {
    const std::string dir = blobs + "/" + key;
    const auto lock = detail::FileLock::try_lock(root + "/locks/" + key + ".lock");
    if (!lock) continue;  // a download is running here
    const auto names = list_dir(dir);
    auto has = [&](const std::string& n) { return std::binary_search(names.begin(), names.end(), n); };
    for (const std::string& name : names) {
      const std::string path = dir + "/" + name;
      if (ends_with(name, ".part") || ends_with(name, ".part.json") || ends_with(name, ".tmp")) {
        drop(path);
      } else if (ends_with(name, ".json")) {
        if (!has(name.substr(0, name.size() - 5))) drop(path);  // record without its file
      } else if (!has(name + ".json")) {
        drop(path);  // a file whose digest was never recorded
      } else {
        CacheEntry e;
        std::int64_t stamp = -1;
        std::string why;
        if (!read_sidecar(path + ".json", e, stamp) || !verify_cached(e, &why)) {
          drop(path);
          drop(path + ".json");
        }
      }
    }
    ::rmdir(dir.c_str());  // only succeeds when empty
  }
  return res;
}

}  // namespace mz::hub
