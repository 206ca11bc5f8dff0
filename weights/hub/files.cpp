// Small file-system helpers of the hub: environment, atomic writes, directories, flock.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "weights/hub/hub_impl.h"

namespace mz::hub::detail {

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) b /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", b, units[u]);
  return buf;
}

std::string env_str(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

long env_long(const char* name, long fallback) {
  const std::string v = env_str(name);
  if (v.empty()) return fallback;
  char* end = nullptr;
  const long n = std::strtol(v.c_str(), &end, 10);
  if (*end != '\0' || n < 0) throw UsageError(name, "expected a non-negative integer, got '" + v + "'");
  return n;
}

void notice(const std::string& line) { std::cerr << "mz: " << line << std::endl; }

std::string dir_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
}

std::string base_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

void make_dirs(const std::string& path) {
  if (path.empty()) return;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) throw HubError(path, "exists and is not a directory");
    return;
  }
  if (path != "/" && path.find('/') != std::string::npos) make_dirs(dir_of(path));
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
    throw HubError(path, std::string("cannot create directory: ") + std::strerror(errno));
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // best effort: some file systems do not allow opening directories
  ::fsync(fd);
  ::close(fd);
}

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw HubError(path, std::string("cannot open: ") + std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) throw HubError(path, std::string("fsync failed: ") + std::strerror(err));
}

std::string unique_token() {
  static thread_local std::mt19937_64 rng(std::random_device{}() ^
                                          static_cast<std::uint64_t>(::getpid()) << 32 ^
                                          std::hash<std::thread::id>{}(std::this_thread::get_id()));
  std::ostringstream s;
  s << std::hex << ::getpid() << '-' << (rng() & 0xffffffffffffULL);
  return s.str();
}

void write_file_atomic(const std::string& path, const std::string& content) {
  const std::string tmp = path + "." + unique_token() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << content;
    out.flush();
    if (!out) throw HubError(tmp, "cannot write");
  }
  fsync_path(tmp);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    throw HubError(path, std::string("cannot rename into place: ") + std::strerror(err));
  }
  fsync_dir(dir_of(path));
}

bool read_file(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream s;
  s << in.rdbuf();
  out = s.str();
  return true;
}

static std::pair<std::string, std::uint64_t> copy_hashing(const std::string& src, const std::string& dst) {
  const int in = ::open(src.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) throw HubError(src, std::string("cannot open: ") + std::strerror(errno));
  const int out = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    ::close(in);
    throw HubError(dst, std::string("cannot create: ") + std::strerror(errno));
  }
  std::vector<char> buf(4 << 20);
  detail::Sha256 h;
  std::uint64_t size = 0;
  std::string error;
  for (;;) {
    const ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n < 0) error = std::string("cannot read: ") + std::strerror(errno);
      break;
    }
    h.update(buf.data(), static_cast<std::size_t>(n));
    if (::write(out, buf.data(), static_cast<std::size_t>(n)) != n) {
      error = std::string("cannot write: ") + std::strerror(errno);
      break;
    }
    size += static_cast<std::uint64_t>(n);
  }
  if (error.empty() && ::fsync(out) != 0) error = std::string("fsync failed: ") + std::strerror(errno);
  ::close(in);
  ::close(out);
  if (!error.empty()) {
    ::unlink(dst.c_str());
    throw HubError(dst, error);
  }
  return {h.hex(), size};
}

std::pair<std::string, std::uint64_t> link_or_copy_hashing(const std::string& src, const std::string& dst) {
  if (::link(src.c_str(), dst.c_str()) != 0) return copy_hashing(src, dst);  // another file system: copy
  try {
    Sha256 h;
    const std::uint64_t size = hash_file(dst, h);
    return {h.hex(), size};
  } catch (...) {
    ::unlink(dst.c_str());
    throw;
  }
}

// ---- FileLock ---------------------------------------------------------------------------------

namespace {
int open_lock_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw HubError(path, std::string("cannot open lock file: ") + std::strerror(errno));
  return fd;
}
}  // namespace

FileLock::FileLock(const std::string& path, const std::string& what) : fd_(open_lock_file(path)) {
  if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
  if (errno != EWOULDBLOCK && errno != EINTR) return;  // no flock here (e.g. some NFS): carry on unlocked
  const long timeout_s = env_long("MZ_LOCK_TIMEOUT", 1800);
  notice("waiting for another process downloading " + what + " (lock " + path + ", timeout " +
         std::to_string(timeout_s) + " s)");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    if (std::chrono::steady_clock::now() >= deadline) {
      ::close(fd_);
      fd_ = -1;
      throw HubError(what, "timed out after " + std::to_string(timeout_s) + " s waiting for the lock " + path +
                               " held by another download (MZ_LOCK_TIMEOUT)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

std::unique_ptr<FileLock> FileLock::try_lock(const std::string& path) {
  std::unique_ptr<FileLock> lock(new FileLock());
  lock->fd_ = open_lock_file(path);
  if (::flock(lock->fd_, LOCK_EX | LOCK_NB) != 0) return nullptr;
  return lock;
}

FileLock::~FileLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

}  // namespace mz::hub::detail
