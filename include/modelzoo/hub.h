// The hub: turns a weights record into a verified local file. The only module that touches the
// network. See README "Cache layout" for the on-disk layout.
#pragma once

#include <cstdint>
#include <functional>
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
std::string fetch(const WeightsRecord& record, const FetchOptions& options = {});

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
// The record's cache entry when its file is cached and passes the cheap check (size + stamp).
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
