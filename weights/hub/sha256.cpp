// SHA-256 over OpenSSL's EVP interface, and the integrity check of a downloaded file.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include <openssl/evp.h>

#include "weights/hub/hub_impl.h"

namespace mz::hub::detail {

struct Sha256::Ctx {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
  if (!ctx_->md) throw HubError("sha256", "cannot allocate an OpenSSL digest context");
  reset();
}
Sha256::~Sha256() = default;

void Sha256::reset() {
  if (EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1) throw HubError("sha256", "EVP_DigestInit_ex failed");
}

void Sha256::update(const void* data, std::size_t n) {
  if (n && EVP_DigestUpdate(ctx_->md, data, n) != 1) throw HubError("sha256", "EVP_DigestUpdate failed");
}

std::string Sha256::hex() {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_->md, d, &len) != 1) throw HubError("sha256", "EVP_DigestFinal_ex failed");
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += digits[d[i] >> 4];
    out += digits[d[i] & 15];
  }
  reset();
  return out;
}

std::string sha256_hex(const std::string& bytes) {
  Sha256 h;
  h.update(bytes.data(), bytes.size());
  return h.hex();
}

std::uint64_t hash_file(const std::string& path, Sha256& into, std::uint64_t limit) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw HubError(path, std::string("cannot open: ") + std::strerror(errno));
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  std::vector<char> buf(4 << 20);
  std::uint64_t total = 0;
  while (total < limit) {
    const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), limit - total));
    const ssize_t n = ::read(fd, buf.data(), want);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw HubError(path, std::string("cannot read: ") + std::strerror(err));
    }
    if (n == 0) break;
    into.update(buf.data(), static_cast<std::size_t>(n));
    total += static_cast<std::uint64_t>(n);
  }
  ::close(fd);
  return total;
}

std::string sha256_file(const std::string& path) {
  Sha256 h;
  hash_file(path, h);
  return h.hex();
}

std::string check(const Expect& e, const std::string& digest, std::uint64_t size) {
  if (e.size && *e.size != size)
    return "size mismatch: expected " + std::to_string(*e.size) + " bytes, got " + std::to_string(size) +
           " (sha256 " + digest + ")";
  if (!e.sha256.empty() && e.sha256 != digest)
    return "sha256 mismatch: expected " + e.sha256 + ", got " + digest;
  if (e.sha256.empty() && !e.hash_prefix.empty() && digest.compare(0, e.hash_prefix.size(), e.hash_prefix) != 0)
    return "hash prefix mismatch: expected " + e.hash_prefix + "..., got " + digest;
  return "";
}

}  // namespace mz::hub::detail
