// torch.save zip checkpoints (PyTorch >= 1.6): a minimal stored-only zip reader (with zip64) and the
// mapping of <prefix>/data.pkl's persistent ids onto <prefix>/data/<key> entries.
#include <map>
#include <unordered_map>

#include "weights/checkpoint/formats/reader.h"
#include "weights/checkpoint/formats/pickle.h"
#include "weights/checkpoint/formats/formats.h"

namespace mz::formats {
namespace {

using detail::fail;
using detail::printable;
using detail::Reader;

constexpr std::uint32_t kLocalSig = 0x04034b50, kCentralSig = 0x02014b50, kEocdSig = 0x06054b50,
                        kZip64LocatorSig = 0x07064b50, kZip64EocdSig = 0x06064b50;
constexpr std::uint32_t kMax32 = 0xFFFFFFFF;

struct Entry {
  std::uint16_t flags = 0, method = 0;
  std::uint64_t compressed = 0, size = 0, local_offset = 0;
};

struct Directory {
  std::uint64_t count = 0, size = 0, offset = 0;
};

class Zip {
 public:
  Zip(ByteView bytes, const std::string& file) : bytes_(bytes), file_(file) { read_central_directory(); }
  const std::map<std::string, Entry>& entries() const { return entries_; }
  // Byte range [offset, offset + size) of a stored entry's data, checked against the file.
  std::pair<std::uint64_t, std::uint64_t> open(const std::string& name) const;

 private:
  ByteView bytes_;
  const std::string& file_;
  std::map<std::string, Entry> entries_;

  std::size_t find_eocd() const;
  Directory read_eocd(std::size_t pos) const;
  void read_central_directory();
  static void read_zip64_extra(Reader& extra, Entry& e);
};

// The end-of-central-directory record sits in the last 22 + 65535 (comment) bytes.
std::size_t Zip::find_eocd() const {
  if (bytes_.size >= 22) {
    const std::size_t last = bytes_.size - 22, lowest = last > 0xFFFF ? last - 0xFFFF : 0;
    for (std::size_t pos = last + 1; pos-- > lowest;)
      if (Reader::le(bytes_.data + pos, 4) == kEocdSig) return pos;
  }
  fail(file_, "truncated: zip end of central directory record not found");
}

Directory Zip::read_eocd(std::size_t pos) const {
  Reader r(bytes_, file_, pos + 4);
  r.take(6, "zip end of central directory record");
  Directory d;
  d.count = r.u16("zip end of central directory record");
  d.size = r.u32("zip end of central directory record");
  d.offset = r.u32("zip end of central directory record");
  if (d.count != 0xFFFF && d.size != kMax32 && d.offset != kMax32) return d;
  // zip64: a locator just before the record points at the zip64 end-of-central-directory record.
  if (pos < 20) fail(file_, "malformed zip: zip64 locator missing");
  Reader loc(bytes_, file_, pos - 20);
  if (loc.u32("zip64 locator") != kZip64LocatorSig) fail(file_, "malformed zip: zip64 locator missing");
  loc.u32("zip64 locator");
  const std::uint64_t at = loc.u64("zip64 locator");
  if (at > pos) fail(file_, "truncated: zip64 end of central directory record extends past end of file");
  Reader z(bytes_, file_, static_cast<std::size_t>(at), pos);
  if (z.u32("zip64 end of central directory record") != kZip64EocdSig)
    fail(file_, "malformed zip: bad zip64 end of central directory signature");
  z.take(28, "zip64 end of central directory record");
  d.count = z.u64("zip64 end of central directory record");
  d.size = z.u64("zip64 end of central directory record");
  d.offset = z.u64("zip64 end of central directory record");
  return d;
}

// Extra field 0x0001 holds, in order, whichever of size, compressed size and offset were 0xFFFFFFFF.
void Zip::read_zip64_extra(Reader& extra, Entry& e) {
  while (extra.remaining() >= 4) {
    const std::uint16_t id = extra.u16("zip extra field"), len = extra.u16("zip extra field");
    Reader field(ByteView{extra.base(), extra.end()}, extra.file(), extra.pos(), extra.pos() + len, "zip extra field");
    extra.take(len, "zip extra field");
    if (id != 1) continue;
    if (e.size == kMax32) e.size = field.u64("zip64 extra field");
    if (e.compressed == kMax32) e.compressed = field.u64("zip64 extra field");
    if (e.local_offset == kMax32) e.local_offset = field.u64("zip64 extra field");
  }
}

void Zip::read_central_directory() {
  const std::size_t eocd = find_eocd();
  const Directory d = read_eocd(eocd);
  std::uint64_t end = 0;
  if (!detail::add_u64(d.offset, d.size, end) || end > eocd)
    fail(file_, "truncated: zip central directory extends past end of file");
  Reader r(bytes_, file_, static_cast<std::size_t>(d.offset), static_cast<std::size_t>(end), "zip central directory");
  for (std::uint64_t i = 0; i < d.count; ++i) {
    if (r.u32("zip central directory entry") != kCentralSig)
      fail(file_, "malformed zip: bad central directory entry signature");
    r.take(4, "zip central directory entry");
    Entry e;
    e.flags = r.u16("zip central directory entry");
    e.method = r.u16("zip central directory entry");
    r.take(8, "zip central directory entry");
    e.compressed = r.u32("zip central directory entry");
    e.size = r.u32("zip central directory entry");
    const std::uint16_t name_len = r.u16("zip central directory entry"), extra_len = r.u16("zip central directory entry"),
                        comment_len = r.u16("zip central directory entry");
    r.take(8, "zip central directory entry");
    e.local_offset = r.u32("zip central directory entry");
    const std::uint8_t* name = r.take(name_len, "zip entry name");
    Reader extra(bytes_, file_, r.pos(), r.pos() + extra_len, "zip extra field");
    r.take(extra_len, "zip extra field");
    r.take(comment_len, "zip entry comment");
    read_zip64_extra(extra, e);
    std::string key(reinterpret_cast<const char*>(name), name_len);
    if (!entries_.emplace(key, e).second) fail(file_, "malformed zip: two entries named " + printable(key));
  }
}

std::pair<std::uint64_t, std::uint64_t> Zip::open(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) fail(file_, "zip entry " + printable(name) + " is missing");
  const Entry& e = it->second;
  const std::string who = "zip entry " + printable(name);
  if (e.flags & 1) fail(file_, who + " is encrypted");
  if (e.method != 0)
    fail(file_, who + " is compressed (method " + std::to_string(e.method) +
                    "); torch checkpoints store entries uncompressed");
  if (e.compressed != e.size) fail(file_, "malformed zip: stored " + who + " has two sizes");
  if (e.local_offset > bytes_.size) fail(file_, "truncated: " + who + " local header extends past end of file");
  Reader local(bytes_, file_, static_cast<std::size_t>(e.local_offset));
  if (local.u32("zip local header") != kLocalSig) fail(file_, "malformed zip: bad local header signature for " + who);
  local.take(22, "zip local header");
  const std::uint16_t name_len = local.u16("zip local header"), extra_len = local.u16("zip local header");
  local.take(name_len + std::size_t{extra_len}, "zip local header");
  std::uint64_t end = 0;
  if (!detail::add_u64(local.pos(), e.size, end) || end > bytes_.size)
    fail(file_, "truncated: " + who + " extends past end of file");
  return {local.pos(), e.size};
}

std::string find_prefix(const Zip& zip, const std::string& file) {
  std::string prefix;
  for (const auto& [name, entry] : zip.entries()) {
    const std::size_t slash = name.find('/');
    if (slash == std::string::npos || slash == 0 || name.compare(slash, std::string::npos, "/data.pkl") != 0) continue;
    if (!prefix.empty()) fail(file, "zip holds more than one data.pkl");
    prefix = name.substr(0, slash);
  }
  if (prefix.empty()) fail(file, "not a torch checkpoint: zip has no '<archive>/data.pkl' entry");
  return prefix;
}

}  // namespace

Description parse_torch_zip(ByteView bytes, const std::string& file) {
  const Zip zip(bytes, file);
  const std::string prefix = find_prefix(zip, file);
  if (zip.entries().count(prefix + "/byteorder")) {
    auto [offset, size] = zip.open(prefix + "/byteorder");
    if (std::string(reinterpret_cast<const char*>(bytes.data + offset), size) != "little")
      fail(file, "big-endian checkpoints are not supported");
  }

  std::vector<pickle::StorageSpan> storages;
  std::unordered_map<std::string, std::size_t> by_key;
  auto load = [&](const pickle::StorageRef& ref) -> std::int64_t {
    const std::string name = prefix + "/data/" + ref.key;
    if (ref.is_view) fail(file, "storage " + printable(name) + " is a view, which zip checkpoints never hold");
    auto [it, added] = by_key.emplace(ref.key, storages.size());
    if (!added) {
      if (storages[it->second].dtype != ref.dtype) fail(file, "storage " + printable(name) + " used with two dtypes");
      return static_cast<std::int64_t>(it->second);
    }
    auto [offset, size] = zip.open(name);
    std::uint64_t declared = 0;  // the pickle's numel bounds the storage; extra bytes are ignored
    if (detail::mul_u64(static_cast<std::uint64_t>(ref.numel), dtype_size(ref.dtype), declared) && declared < size)
      size = declared;
    storages.push_back({ref.dtype, offset, size, name});
    return static_cast<std::int64_t>(storages.size() - 1);
  };

  auto [pkl_offset, pkl_size] = zip.open(prefix + "/data.pkl");
  Reader r(bytes, file, static_cast<std::size_t>(pkl_offset), static_cast<std::size_t>(pkl_offset + pkl_size),
           prefix + "/data.pkl");
  const pickle::Pickle p = pickle::unpickle(r, load);
  return pickle::describe_state_dict(Format::TorchZip, p, storages, bytes.size, file);
}

TorchtextVocab parse_torchtext_vocab(ByteView bytes, const std::string& file) {
  const Zip zip(bytes, file);
  const std::string prefix = find_prefix(zip, file);
  auto [pkl_offset, pkl_size] = zip.open(prefix + "/data.pkl");
  Reader r(bytes, file, static_cast<std::size_t>(pkl_offset), static_cast<std::size_t>(pkl_offset + pkl_size),
           prefix + "/data.pkl");
  const pickle::Pickle p = pickle::unpickle(r, [&](const pickle::StorageRef&) -> std::int64_t {
    fail(file, "not a torchtext Vocab: it holds tensor storages");
  });
  return pickle::describe_torchtext_vocab(p, file);
}

}  // namespace mz::formats
