// The hub: turns a weights record into a verified local file. The only module that touches the
// network. See README "Cache layout" for the on-disk layout.
#pragma once

#include <cstdint>
#include <functional>
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
};
std::vector<CacheEntry> cache_list();

// Re-hashes a cached file against its recorded and expected digest; true when it verifies.
bool verify_cached(const CacheEntry& entry, std::string* reason = nullptr);

}  // namespace mz::hub
