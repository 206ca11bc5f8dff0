// The transfer: libcurl into a partial file, hashing while writing, resuming with Range + If-Range,
// retrying transient failures with exponential backoff.
//
// Large bodies go through a small pipeline: the curl thread copies into 8 MiB aligned slots, a
// hasher thread feeds them to SHA-256 while a writer thread writes them with O_DIRECT (no page
// cache copy, nothing left to flush at fsync). Small bodies, and file systems without O_DIRECT,
// are hashed and written directly in the write callback.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include "weights/hub/hub_impl.h"

namespace mz::hub::detail {
namespace {

constexpr std::size_t kAlign = 4096;
constexpr std::size_t kSlotBytes = 8u << 20;
// Up to 128 MiB in flight, so that the disk's and the hasher's hiccups do not stall the transfer
// (with 4 slots, bench_download.sh measured 1.1-1.5 s per GiB; with 16, 0.9-1.0 s). Free slots are
// reused most-recent-first, so a steady transfer touches only the few it needs.
constexpr int kSlots = 16;
constexpr std::uint64_t kDirectMin = 32u << 20;  // bodies smaller than this skip the pipeline

std::string errno_text(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

void pwrite_all(int fd, const char* p, std::size_t n, std::uint64_t off, const std::string& path) {
  while (n) {
    const ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(off));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw HubError(path, errno_text("cannot write"));
    p += w;
    n -= static_cast<std::size_t>(w);
    off += static_cast<std::uint64_t>(w);
  }
}

// ---- PartWriter: the partial file, its hash, and the optional hash/write pipeline ---------------

class PartWriter {
 public:
  // Opens `path`, keeps its first `keep` bytes (rounded down to the O_DIRECT alignment) and hashes
  // them, so that a resumed download still ends with the digest of the whole file.
  PartWriter(std::string path, std::uint64_t keep) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw HubError(path_, errno_text("cannot open"));
    keep -= keep % kAlign;
    if (::ftruncate(fd_, static_cast<off_t>(keep)) != 0) throw HubError(path_, errno_text("cannot truncate"));
    if (keep && hash_file(path_, sha_, keep) != keep) throw HubError(path_, "partial file shrank while hashing");
    size_ = keep;
  }
  ~PartWriter() {
    stop_threads();
    for (Slot& s : slots_) std::free(s.data);
    if (fd_ >= 0) ::close(fd_);
  }
  PartWriter(const PartWriter&) = delete;
  PartWriter& operator=(const PartWriter&) = delete;

  const std::string& path() const { return path_; }
  std::uint64_t size() const { return size_; }

  void restart() {
    drain();
    if (cur_ >= 0) release_current();
    if (::ftruncate(fd_, 0) != 0) throw HubError(path_, errno_text("cannot truncate"));
    sha_.reset();
    size_ = written_ = 0;
  }

  // Called when a body starts: chooses the pipeline for large remaining sizes.
  void begin(std::uint64_t remaining) {
    if (direct_ || remaining < kDirectMin || size_ % kAlign || std::getenv("MZ_NO_DIRECT_IO")) return;
    const int flags = ::fcntl(fd_, F_GETFL);
    if (flags < 0 || ::fcntl(fd_, F_SETFL, flags | O_DIRECT) != 0) return;  // e.g. tmpfs
    direct_ = true;
    start_threads();
  }

  void append(const char* p, std::size_t n) {
    if (!direct_) {
      sha_.update(p, n);
      pwrite_all(fd_, p, n, size_, path_);
      size_ += n;
      return;
    }
    size_ += n;
    while (n) {
      if (cur_ < 0) cur_ = take_free_slot();
      Slot& s = slots_[cur_];
      const std::size_t k = std::min(n, kSlotBytes - s.len);
      std::memcpy(s.data + s.len, p, k);
      s.len += k;
      p += k;
      n -= k;
      if (s.len == kSlotBytes) submit_current();
    }
  }

  // Writes out everything appended so far; later appends go straight to the file.
  void flush() {
    if (!direct_) return;
    drain();
    const int flags = ::fcntl(fd_, F_GETFL);
    if (flags >= 0) ::fcntl(fd_, F_SETFL, flags & ~O_DIRECT);
    direct_ = false;
    if (cur_ >= 0) {
      Slot& s = slots_[cur_];
      sha_.update(s.data, s.len);
      pwrite_all(fd_, s.data, s.len, written_, path_);
      written_ += s.len;
      release_current();
    }
  }

  // Flushes, syncs and returns the SHA-256 of the whole file.
  std::string finish() {
    flush();
    if (::fsync(fd_) != 0) throw HubError(path_, errno_text("fsync failed"));
    return sha_.hex();
  }

 private:
  struct Slot {
    char* data = nullptr;
    std::size_t len = 0;
    std::uint64_t offset = 0;
    int pending = 0;
  };

  void start_threads() {
    written_ = size_;
    if (!slots_.empty()) return;
    for (int i = 0; i < kSlots; ++i) {
      Slot s;
      if (::posix_memalign(reinterpret_cast<void**>(&s.data), kAlign, kSlotBytes) != 0)
        throw HubError(path_, "out of memory for transfer buffers");
      slots_.push_back(s);
      free_.push_back(i);
    }
    hasher_ = std::thread([this] { worker(hash_q_, [this](Slot& s) { sha_.update(s.data, s.len); }); });
    writer_ = std::thread([this] {
      worker(write_q_, [this](Slot& s) { pwrite_all(fd_, s.data, s.len, s.offset, path_); });
    });
  }

  void stop_threads() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (hasher_.joinable()) hasher_.join();
    if (writer_.joinable()) writer_.join();
  }

  template <class F>
  void worker(std::deque<int>& queue, F work) {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || !queue.empty(); });
      if (queue.empty()) return;
      const int i = queue.front();
      queue.pop_front();
      lock.unlock();
      std::string err;
      try {
        work(slots_[i]);
      } catch (const std::exception& e) {
        err = e.what();
      }
      lock.lock();
      if (!err.empty() && error_.empty()) error_ = err;
      if (--slots_[i].pending == 0) {
        slots_[i].len = 0;
        free_.push_back(i);
        cv_.notify_all();
      }
    }
  }

  int take_free_slot() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !free_.empty() || !error_.empty(); });
    if (!error_.empty()) throw HubError(path_, error_);
    const int i = free_.back();
    free_.pop_back();
    return i;
  }

  void submit_current() {
    Slot& s = slots_[cur_];
    s.offset = written_;
    s.pending = 2;
    written_ += s.len;
    {
      std::lock_guard<std::mutex> lock(mu_);
      hash_q_.push_back(cur_);
      write_q_.push_back(cur_);
    }
    cv_.notify_all();
    cur_ = -1;
  }

  void release_current() {
    std::lock_guard<std::mutex> lock(mu_);
    slots_[cur_].len = 0;
    free_.push_back(cur_);
    cur_ = -1;
  }

  // Waits until the workers have hashed and written every submitted slot.
  void drain() {
    if (slots_.empty()) return;
    std::unique_lock<std::mutex> lock(mu_);
    const std::size_t idle = slots_.size() - (cur_ >= 0 ? 1 : 0);
    cv_.wait(lock, [&] { return free_.size() == idle; });
    if (!error_.empty()) throw HubError(path_, error_);
  }

  std::string path_;
  int fd_ = -1;
  Sha256 sha_;
  std::uint64_t size_ = 0;     // bytes appended (hashed, or queued in slots)
  std::uint64_t written_ = 0;  // offset of the next slot to write
  bool direct_ = false;
  std::vector<Slot> slots_;
  int cur_ = -1;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<int> hash_q_, write_q_, free_;
  bool stop_ = false;
  std::string error_;
  std::thread hasher_, writer_;
};

// ---- CurlEasy: the one RAII holder of a libcurl handle -----------------------------------------

class CurlEasy {
 public:
  CurlEasy() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    h_ = curl_easy_init();
    if (!h_) throw HubError("libcurl", "curl_easy_init failed");
  }
  ~CurlEasy() {
    curl_easy_cleanup(h_);
    curl_slist_free_all(headers_);
  }
  CurlEasy(const CurlEasy&) = delete;
  CurlEasy& operator=(const CurlEasy&) = delete;
  CURL* get() const { return h_; }
  template <class T>
  void set(CURLoption opt, T value) {
    if (const CURLcode rc = curl_easy_setopt(h_, opt, value); rc != CURLE_OK)
      throw HubError("libcurl", std::string("setopt failed: ") + curl_easy_strerror(rc));
  }
  void set_headers(const std::vector<std::string>& lines) {
    curl_slist_free_all(headers_);
    headers_ = nullptr;
    for (const auto& l : lines) headers_ = curl_slist_append(headers_, l.c_str());
    set(CURLOPT_HTTPHEADER, headers_);
  }

 private:
  CURL* h_ = nullptr;
  curl_slist* headers_ = nullptr;
};

// ---- partial files: claimed by rename so that no two processes ever share one --------------------

struct PartMeta {
  std::string url, etag, last_modified;
  std::string validator() const {
    if (!etag.empty() && etag.rfind("W/", 0) != 0) return etag;  // If-Range needs a strong ETag
    return last_modified;
  }
};

PartMeta read_meta(const std::string& path) {
  PartMeta m;
  std::string text;
  if (!read_file(path, text)) return m;
  const auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return m;
  m.url = j.value("url", "");
  m.etag = j.value("etag", "");
  m.last_modified = j.value("last_modified", "");
  return m;
}

// Takes over a partial download of `url` left in `dir` (by renaming it to `mine`); returns how many
// of its bytes may be resumed (0 when there is none or it cannot be trusted).
std::uint64_t claim_partial(const std::string& dir, const std::string& filename, const std::string& url,
                            const std::string& mine, PartMeta& meta) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  std::vector<std::string> parts;
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n.size() > filename.size() + 6 && n.compare(0, filename.size() + 1, filename + ".") == 0 &&
        n.compare(n.size() - 5, 5, ".part") == 0)
      parts.push_back(dir + "/" + n);
  }
  ::closedir(d);
  for (const auto& p : parts) {
    if (::rename(p.c_str(), mine.c_str()) != 0) continue;  // another process took it
    ::rename((p + ".json").c_str(), (mine + ".json").c_str());
    meta = read_meta(mine + ".json");
    struct stat st {};
    if (meta.url != url || meta.validator().empty() || ::stat(mine.c_str(), &st) != 0) return 0;
    return static_cast<std::uint64_t>(st.st_size);
  }
  return 0;
}

// ---- one download -------------------------------------------------------------------------------

bool is_http(const std::string& url) { return url.rfind("http://", 0) == 0 || url.rfind("https://", 0) == 0; }

bool transient_curl_error(CURLcode rc) {
  switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_PARTIAL_FILE:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
    case CURLE_SSL_CONNECT_ERROR:
      return true;
    default:
      return false;
  }
}

std::string curl_hint(CURLcode rc) {
  switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
      return " (set MZ_CA_BUNDLE to a PEM file with your CA certificates)";
    case CURLE_COULDNT_RESOLVE_PROXY:
      return " (check the http_proxy/https_proxy/no_proxy variables)";
    case CURLE_OPERATION_TIMEDOUT:
      return " (MZ_CONNECT_TIMEOUT / MZ_LOW_SPEED_TIME)";
    case CURLE_TOO_MANY_REDIRECTS:
      return " (MZ_MAX_REDIRECTS)";
    default:
      return "";
  }
}

class Download {
 public:
  Download(std::string url, const std::string& dir, const std::string& filename, Expect expect,
           ProgressCallback progress)
      : url_(std::move(url)), expect_(std::move(expect)), progress_(std::move(progress)), tuning_(Tuning::from_env()) {
    const std::string mine = dir + "/" + filename + "." + unique_token() + ".part";
    const std::uint64_t keep = claim_partial(dir, filename, url_, mine, meta_);
    writer_ = std::make_unique<PartWriter>(mine, is_http(url_) ? keep : 0);
    resumed_ = writer_->size() > 0;
  }

  Downloaded run() {
    bool fresh_retry_done = false;
    for (long attempt = 0;; ++attempt) {
      const Outcome out = attempt_once();
      if (out.kind == Outcome::Done) {
        const std::uint64_t size = writer_->size();
        const std::string digest = writer_->finish();
        const std::string bad = check(expect_, digest, size);
        if (bad.empty()) return {writer_->path(), digest, size};
        if (resumed_ && !fresh_retry_done) {  // distrust the resumed bytes once: start over
          fresh_retry_done = true;
          resumed_ = false;
          writer_->restart();
          continue;
        }
        discard();
        throw HubError(url_, bad);
      }
      writer_->flush();
      if (out.kind == Outcome::Permanent) {
        if (out.discard || writer_->size() == 0) discard();
        throw HubError(url_, out.reason);
      }
      if (attempt >= tuning_.retries) {
        if (writer_->size() == 0) discard();
        throw HubError(url_, out.reason + " (gave up after " + std::to_string(attempt + 1) + " attempts)");
      }
      if (out.kind == Outcome::Restart) {  // start over at once, without the partial
        writer_->restart();
        continue;
      }
      const long delay = std::min<long>(tuning_.retry_delay_ms << std::min<long>(attempt, 16), 60000);
      if (::isatty(2)) notice(url_ + ": " + out.reason + "; retrying in " + std::to_string(delay) + " ms");
      std::this_thread::sleep_for(std::chrono::milliseconds(delay));
    }
  }

  ~Download() = default;

 private:
  struct Outcome {
    enum Kind { Done, Transient, Permanent, Restart } kind;
    std::string reason;
    bool discard = false;
  };

  void discard() {
    ::unlink(writer_->path().c_str());
    ::unlink((writer_->path() + ".json").c_str());
  }

  void configure(CurlEasy& c) {
    c.set(CURLOPT_URL, url_.c_str());
    c.set(CURLOPT_PROTOCOLS_STR, "http,https,file");
    c.set(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    c.set(CURLOPT_FOLLOWLOCATION, 1L);
    c.set(CURLOPT_MAXREDIRS, tuning_.max_redirects);
    c.set(CURLOPT_CONNECTTIMEOUT, tuning_.connect_timeout_s);
    c.set(CURLOPT_LOW_SPEED_TIME, tuning_.low_speed_time_s);
    c.set(CURLOPT_LOW_SPEED_LIMIT, tuning_.low_speed_limit);
    c.set(CURLOPT_NOSIGNAL, 1L);
    c.set(CURLOPT_BUFFERSIZE, 1L << 20);
    c.set(CURLOPT_USERAGENT, "modelzoo/0.1 (libcurl)");
    c.set(CURLOPT_ERRORBUFFER, errbuf_);
    c.set(CURLOPT_HEADERFUNCTION, &Download::on_header);
    c.set(CURLOPT_HEADERDATA, this);
    c.set(CURLOPT_WRITEFUNCTION, &Download::on_body);
    c.set(CURLOPT_WRITEDATA, this);
    // libcurl reads the proxy variables itself; the CA variables are the curl tool's, so honour them.
    for (const char* var : {"MZ_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"})
      if (const std::string ca = env_str(var); !ca.empty()) {
        c.set(CURLOPT_CAINFO, ca.c_str());
        break;
      }
    if (const std::string dir = env_str("SSL_CERT_DIR"); !dir.empty()) c.set(CURLOPT_CAPATH, dir.c_str());
  }

  Outcome attempt_once() {
    CurlEasy c;
    configure(c);
    headers_.clear();
    body_started_ = false;
    abort_ = Outcome{Outcome::Done, ""};
    errbuf_[0] = '\0';
    range_from_ = 0;
    if (writer_->size() > 0 && is_http(url_) && !meta_.validator().empty()) {
      range_from_ = writer_->size();
      c.set(CURLOPT_RANGE, (std::to_string(range_from_) + "-").c_str());
      c.set_headers({"If-Range: " + meta_.validator()});
    } else if (writer_->size() > 0) {
      writer_->restart();
    }
    curl_ = c.get();
    const CURLcode rc = curl_easy_perform(c.get());
    curl_ = nullptr;
    long status = 0;
    curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &status);
    if (abort_.kind != Outcome::Done) return abort_;
    if (rc != CURLE_OK) {
      std::string reason = curl_easy_strerror(rc);
      if (errbuf_[0]) reason += std::string(": ") + errbuf_;
      return {transient_curl_error(rc) ? Outcome::Transient : Outcome::Permanent, reason + curl_hint(rc)};
    }
    if (is_http(url_) && status == 416) return {Outcome::Restart, "HTTP 416"};
    if (is_http(url_) && status >= 300) {
      const bool transient = status >= 500 || status == 408 || status == 429;
      return {transient ? Outcome::Transient : Outcome::Permanent, "HTTP " + std::to_string(status)};
    }
    if (!body_started_ && !start_body()) return abort_;
    if (total_ && writer_->size() != *total_)
      return {Outcome::Transient, "transfer ended after " + std::to_string(writer_->size()) + " of " +
                                      std::to_string(*total_) + " bytes"};
    return {Outcome::Done, ""};
  }

  static std::size_t on_header(char* data, std::size_t size, std::size_t n, void* self_) {
    auto* self = static_cast<Download*>(self_);
    std::string line(data, size * n);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
    if (line.rfind("HTTP/", 0) == 0) {
      self->headers_.clear();  // a new response (after a redirect or 100-continue)
      return size * n;
    }
    const auto colon = line.find(':');
    if (colon == std::string::npos) return size * n;
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char ch) { return std::tolower(ch); });
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    self->headers_[name] = value;
    return size * n;
  }

  static std::size_t on_body(char* data, std::size_t size, std::size_t n, void* self_) {
    auto* self = static_cast<Download*>(self_);
    try {
      if (!self->body_started_ && !self->start_body()) return 0;
      if (self->discard_body_) return size * n;
      self->writer_->append(data, size * n);
      if (self->progress_) self->progress_(self->writer_->size(), self->total_.value_or(0));
      return size * n;
    } catch (const std::exception& e) {
      self->abort_ = {Outcome::Permanent, e.what()};
      return 0;
    }
  }

  // Decides what to do with the body of the final response. False (with abort_ set) to stop.
  bool start_body() {
    body_started_ = true;
    discard_body_ = false;
    long status = 0;
    curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status);
    curl_off_t length = -1;
    curl_easy_getinfo(curl_, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
    total_.reset();
    if (is_http(url_) && (status < 200 || status >= 300)) {
      discard_body_ = true;  // an error page
      return true;
    }
    if (status == 206) {
      const std::string cr = headers_["content-range"];  // "bytes 100-199/200"
      unsigned long long from = 0, to = 0, all = 0;
      if (std::sscanf(cr.c_str(), "bytes %llu-%llu/%llu", &from, &to, &all) != 3 || from != range_from_) {
        abort_ = {Outcome::Restart, "server answered the range request with '" + cr + "'"};
        return false;
      }
      total_ = all;
    } else {
      if (writer_->size() > 0) writer_->restart();  // Range ignored or the file changed (If-Range)
      if (length >= 0) total_ = static_cast<std::uint64_t>(length);
      meta_ = {url_, headers_["etag"], headers_["last-modified"]};
      nlohmann::json j = {{"url", meta_.url}, {"etag", meta_.etag}, {"last_modified", meta_.last_modified}};
      write_file_atomic(writer_->path() + ".json", j.dump());
    }
    if (total_ && expect_.size && *total_ != *expect_.size) {
      abort_ = {Outcome::Permanent,
                "server reports " + std::to_string(*total_) + " bytes, expected " + std::to_string(*expect_.size),
                true};
      return false;
    }
    writer_->begin(total_ ? *total_ - writer_->size() : 0);
    return true;
  }

  std::string url_;
  Expect expect_;
  ProgressCallback progress_;
  Tuning tuning_;
  PartMeta meta_;
  std::unique_ptr<PartWriter> writer_;
  bool resumed_ = false;
  // per attempt
  CURL* curl_ = nullptr;
  std::map<std::string, std::string> headers_;
  bool body_started_ = false, discard_body_ = false;
  std::uint64_t range_from_ = 0;
  std::optional<std::uint64_t> total_;
  Outcome abort_{Outcome::Done, ""};
  char errbuf_[CURL_ERROR_SIZE] = {0};
};

}  // namespace

Tuning Tuning::from_env() {
  return {env_long("MZ_CONNECT_TIMEOUT", 30), env_long("MZ_LOW_SPEED_TIME", 30), env_long("MZ_LOW_SPEED_LIMIT", 1024),
          env_long("MZ_MAX_REDIRECTS", 10),   env_long("MZ_RETRIES", 4),        env_long("MZ_RETRY_DELAY_MS", 1000)};
}

Downloaded download(const std::string& url, const std::string& dir, const std::string& filename,
                    const Expect& expect, const ProgressCallback& progress) {
  make_dirs(dir);
  Download d(url, dir, filename, expect, progress);
  return d.run();
}

}  // namespace mz::hub::detail
