// Internals of the hub (weights/hub*.cpp): SHA-256, the libcurl transfer, the cache's files and
// locks. Nothing here touches LibTorch, so the transfer layer is tested on its own.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "modelzoo/hub.h"

namespace mz::hub::detail {

// ---- environment ------------------------------------------------------------------------------
std::string env_str(const char* name, const std::string& fallback = "");
long env_long(const char* name, long fallback);  // an unparsable value is a UsageError naming it
void notice(const std::string& line);             // one "mz: ..." line on stderr
std::string human_bytes(double bytes);            // "431.0 MiB" (progress bars, mz cache ls)

// ---- SHA-256 (OpenSSL EVP) --------------------------------------------------------------------
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, std::size_t n);
  std::string hex();  // finishes; the object is reset afterwards
  void reset();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};
std::string sha256_hex(const std::string& bytes);
// Hashes the first `limit` bytes of a file into `into` (or a fresh hash); returns bytes read.
std::uint64_t hash_file(const std::string& path, Sha256& into, std::uint64_t limit = UINT64_MAX);
std::string sha256_file(const std::string& path);

// ---- what a verified file must match ----------------------------------------------------------
struct Expect {
  std::string sha256;       // full digest, or ""
  std::string hash_prefix;  // upstream's prefix of the digest, or ""
  std::optional<std::uint64_t> size;
  static Expect of(const WeightsRecord& r) { return {r.sha256, r.hash_prefix, r.file_size}; }
};
// "" when (digest, size) satisfies `e`, else the reason (expected and actual digest or size).
std::string check(const Expect& e, const std::string& digest, std::uint64_t size);

// ---- transfer ---------------------------------------------------------------------------------
struct Tuning {  // from the environment, see README "Environment"
  long connect_timeout_s, low_speed_time_s, low_speed_limit, max_redirects, retries, retry_delay_ms;
  static Tuning from_env();
};
struct Downloaded {
  std::string path;    // the verified temp file (still to be published)
  std::string sha256;
  std::uint64_t size = 0;
};
// Downloads `url` into a temp file in `dir` (named after `filename`), resuming a partial left
// there by an earlier attempt, retrying transient failures, verifying against `expect`. Throws
// HubError(url, reason); a 4xx fails at once. The caller renames the result into place.
Downloaded download(const std::string& url, const std::string& dir, const std::string& filename,
                    const Expect& expect, const ProgressCallback& progress);

// ---- files ------------------------------------------------------------------------------------
void make_dirs(const std::string& path);
void fsync_dir(const std::string& dir);
void fsync_path(const std::string& path);
std::string unique_token();  // pid + random, for temp names
// Writes a file atomically (temp + fsync + rename + fsync of the directory).
void write_file_atomic(const std::string& path, const std::string& content);
bool read_file(const std::string& path, std::string& out);
// Hard-links (or, across file systems, copies) `src` to `dst`, which must not exist, and returns the
// digest and size of what `dst` holds. On failure `dst` is removed and HubError names the file.
std::pair<std::string, std::uint64_t> link_or_copy_hashing(const std::string& src, const std::string& dst);
std::string dir_of(const std::string& path);
std::string base_of(const std::string& path);

// An exclusive flock on `path`, waited for with a message and a timeout (MZ_LOCK_TIMEOUT).
class FileLock {
 public:
  FileLock(const std::string& path, const std::string& what);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  static std::unique_ptr<FileLock> try_lock(const std::string& path);  // nullptr when held elsewhere

 private:
  FileLock() = default;
  int fd_ = -1;
};

}  // namespace mz::hub::detail
