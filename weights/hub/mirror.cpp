// Mirrors: a directory any static web server can serve as MZ_MIRROR. Each file sits under the name
// MZ_MIRROR asks for (the URL's last path segment); modelzoo-mirror.json lists them with full digests.
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "modelzoo/hub.h"
#include "weights/hub/hub_impl.h"

namespace mz::hub {
namespace {

using nlohmann::json;

json read_mirror_manifest(const std::string& path) {
  std::string text;
  if (!detail::read_file(path, text)) return {{"modelzoo_mirror", 1}, {"files", json::object()}};
  json j = json::parse(text, nullptr, false);
  if (!j.is_object() || j.value("modelzoo_mirror", 0) != 1 || !j.contains("files") || !j["files"].is_object())
    throw HubError(path, "not a modelzoo mirror manifest (expected {\"modelzoo_mirror\": 1, \"files\": {...}})");
  return j;
}

// Places one verified cached file in the mirror (temp name, verify, rename); keeps an identical one.
MirroredFile place(const WeightsRecord& r, const std::string& dir, json& files) {
  const std::string path = fetch(r);
  const std::string digest = detail::sha256_file(path);  // what fetch verified; hashed again as it is copied
  MirroredFile m{mirror_name(r.url), r.url, digest, 0, r.name()};
  if (files.contains(m.name) && files[m.name].value("url", "") != r.url &&
      files[m.name].value("sha256", "") != digest)
    throw HubError(dir + "/" + m.name, "already mirrors " + files[m.name].value("url", "?") + ", a different file than " +
                                           r.url + " (MZ_MIRROR finds files by name; use another directory)");
  const std::string dst = dir + "/" + m.name;
  struct stat st {};
  if (::stat(dst.c_str(), &st) == 0 && detail::sha256_file(dst) == digest) {
    m.size = static_cast<std::uint64_t>(st.st_size);
  } else {
    const std::string tmp = dst + "." + detail::unique_token() + ".tmp";
    const auto [copied, size] = detail::link_or_copy_hashing(path, tmp);
    if (copied != digest) {
      ::unlink(tmp.c_str());
      throw HubError(path, "changed while it was copied into the mirror: sha256 " + copied + ", expected " + digest);
    }
    if (::rename(tmp.c_str(), dst.c_str()) != 0) {
      const int err = errno;
      ::unlink(tmp.c_str());
      throw HubError(dst, std::string("cannot rename into place: ") + std::strerror(err));
    }
    ::chmod(dst.c_str(), 0644);  // readable by the web server
    m.size = size;
  }
  files[m.name] = {{"url", m.url}, {"sha256", m.sha256}, {"size", m.size}, {"weight", m.weight}};
  return m;
}

}  // namespace

std::vector<MirroredFile> mirror(const WeightsRecord& record, const std::string& dir) {
  detail::make_dirs(dir);
  const std::string manifest = dir + "/" + kMirrorManifest;
  json j = read_mirror_manifest(manifest);
  std::vector<MirroredFile> out{place(record, dir, j["files"])};
  for (const std::string& url : asset_urls(record)) out.push_back(place(asset_record(record, url), dir, j["files"]));
  detail::write_file_atomic(manifest, j.dump(1) + "\n");
  ::chmod(manifest.c_str(), 0644);
  return out;
}

}  // namespace mz::hub
