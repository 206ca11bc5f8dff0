// The hub: turns a weights record into a verified local file. The only module that touches the
// network. See README "Cache layout" for the on-disk layout.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "modelzoo/weights.h"

namespace mz::hub {

// Called with bytes done and total (0 when unknown) while a transfer runs.
using ProgressCallback = std::function<void(std::uint64_t done, std::uint64_t total)>;

struct FetchOptions {
  bool verify = false;        // re-hash a cached file instead of the cheap size + stamp check
  ProgressCallback progress;  // when empty: a progress bar on stderr if it is a TTY, else silence
};

// Returns the path of a verified local copy of the record's file, downloading it (with resume,
// retries, mirrors, locking) when needed. Throws mz::HubError naming the weight/URL and reason.
// With an active lock file (MZ_LOCKFILE, --lock, LockFile::activate) the record must be in the lock and
// the file must have the locked digest. Under torchrun (or with a store passed to mz::cluster, in the
// LibTorch-linked library) one rank per cache downloads and the others wait for it (README "One download per cluster").
std::string fetch(const WeightsRecord& record, const FetchOptions& options = {});

// fetch() without any coordination between processes beyond the cache's own file lock; the lock
// file is still enforced. What a coordinator calls on the rank that downloads.
std::string fetch_local(const WeightsRecord& record, const FetchOptions& options = {});
// The verified cached path of the record (lock enforced, no network), or "" when it is not cached.
std::string fetch_cached(const WeightsRecord& record);

// Something that makes fetch() coordinate between processes: it receives the record and a function
// that fetches locally, and returns the path. Installed by mz::cluster (LibTorch-linked); nullptr to remove.
using Coordinator = std::function<std::string(const WeightsRecord&, const FetchOptions&)>;
void set_coordinator(Coordinator coordinator);

// The assets of a record (tokenizer files, vocabularies: the URLs in meta.extra "text_transform"),
// in order, and each as a record of its own ("Enum.VALUE:<file name>") that the hub fetches like weights.
std::vector<std::string> asset_urls(const WeightsRecord& record);
WeightsRecord asset_record(const WeightsRecord& owner, const std::string& url);
// The file name a mirror serves a URL under (the URL's last path segment).
std::string mirror_name(const std::string& url);

// The cache root: $MZ_CACHE_DIR, else ${XDG_CACHE_HOME:-$HOME/.cache}/modelzoo.
std::string cache_dir();

struct CacheEntry {
  std::string path;
  std::string url;
  std::string sha256;
  std::uint64_t size = 0;
  std::string weights;  // "Enum.VALUE" of a known record with this url, "" if none
  std::string source;   // where the bytes came from: the URL, a mirror URL or a torch.hub file
};
std::vector<CacheEntry> cache_list();

// Re-hashes a cached file against its recorded and expected digest; true when it verifies.
bool verify_cached(const CacheEntry& entry, std::string* reason = nullptr);

// ---- further queries and maintenance ------------------------------------------------------------

// Where the record's file lives in the cache (whether or not it is there yet).
std::string cache_path(const WeightsRecord& record);
// The record's cache entry when its file is cached and passes the cheap check (size + stamp), against the
// active lock's digest when there is one.
std::optional<CacheEntry> cached(const WeightsRecord& record);
// True when MZ_OFFLINE is 1/true/yes/on: no network at all.
bool offline();
// The MZ_MIRROR base URLs in order (whitespace- or ';'-separated), each ending in '/'.
std::vector<std::string> mirrors();
// Every URL fetch() tries for the record, in order: mirrors, then the record's own URL.
std::vector<std::string> sources(const WeightsRecord& record);

// Removes cached files named by a weight ("Enum.VALUE") or by a path (the file or its directory).
// Returns the removed files; empty when nothing matched.
std::vector<std::string> remove_cached(const std::string& weight_or_path);

// Removes partial downloads not in use, temp files, files without a record of their digest, records
// without a file, and files that fail their recorded digest. Returns what was removed.
struct PruneResult {
  std::vector<std::string> removed;
  std::uint64_t bytes = 0;
};
PruneResult prune();

}  // namespace mz::hub

namespace mz {

// A lock file (README "Lock files"): versioned JSON pinning what each weight name resolved to (URL,
// full SHA-256, size, assets) and what DEFAULT meant for each enum when it was written.
struct LockedFile {
  std::string url;
  std::string sha256;
  std::uint64_t size = 0;
  bool first_use = false;  // trust on first use: upstream had no full digest, this is the first download's
};
struct LockEntry {
  std::string weight;  // "Enum.VALUE"
  LockedFile file;
  std::vector<LockedFile> assets;
};

class LockFile {
 public:
  static constexpr int kVersion = 1;
  // Reads and validates a lock; HubError(path, reason) for a file that is missing, not JSON, of an
  // unknown version or malformed.
  static LockFile load(const std::string& path);
  static LockFile parse(const std::string& text, const std::string& source);
  nlohmann::json to_json() const;
  void save(const std::string& path) const;  // atomically

  const std::string& source() const { return source_; }
  const std::vector<LockEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& defaults() const { return defaults_; }  // enum -> value name
  const LockEntry* find(const std::string& weight) const;
  const LockedFile* find_url(const std::string& url) const;  // a weight's or an asset's file
  void add(LockEntry entry);                                  // replaces an entry of the same weight
  void set_default(const std::string& enum_name, const std::string& value_name);

  // Makes this lock the one every resolution and fetch in this process must come from (what
  // MZ_LOCKFILE does), until deactivate(). Throws HubError when `path` cannot be read.
  static void activate(const std::string& path);
  void activate() const;
  static void deactivate();  // back to MZ_LOCKFILE (if set)
  // The lock in force: the activated one, else MZ_LOCKFILE's, else nullptr.
  static std::shared_ptr<const LockFile> active();

 private:
  std::string source_;
  std::vector<LockEntry> entries_;
  std::map<std::string, std::string> defaults_;
};

}  // namespace mz

namespace mz::hub {

// The record as a lock pins its file: the record itself when the URLs agree (so the cache path stays the
// record's), else a copy with the locked URL, digest and size (the registry moved the file since).
WeightsRecord pinned(const WeightsRecord& record, const LockedFile& file);

// What a lock pins for a record and its assets. A file whose record lacks the full digest or the size
// is fetched (with whatever lock is active) to learn them: trust on first use, marked as such.
LockEntry lock_entry(const WeightsRecord& record);

// Mirrors (README "Mirrors"): the record's file and its assets, fetched and verified (against the
// active lock, else the record), placed in `dir` under the names MZ_MIRROR asks for (mirror_name),
// and listed in dir/modelzoo-mirror.json with full digests. A file already there with the same digest
// is kept; one name for two different files is an error. Returns the files placed or kept.
struct MirroredFile {
  std::string name;    // file name in the mirror
  std::string url;     // upstream URL
  std::string sha256;
  std::uint64_t size = 0;
  std::string weight;  // "Enum.VALUE" (an asset: "Enum.VALUE:<file name>")
};
std::vector<MirroredFile> mirror(const WeightsRecord& record, const std::string& dir);
constexpr const char* kMirrorManifest = "modelzoo-mirror.json";

}  // namespace mz::hub
