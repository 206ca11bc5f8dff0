// Legacy torch.save (_use_new_zipfile_serialization=False): magic pickle, protocol pickle, sys_info
// pickle, the state-dict pickle, the pickled list of storage keys, then for each key an 8-byte
// little-endian element count and the raw bytes.
#include <unordered_map>

#include "weights/checkpoint/formats/reader.h"
#include "weights/checkpoint/formats/pickle.h"
#include "weights/checkpoint/formats/formats.h"

namespace mz::formats {
namespace {

using detail::fail;
using detail::printable;
using pickle::Kind;

const std::string kMagic = std::string("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10);

pickle::Pickle plain_pickle(detail::Reader& r) {
  return pickle::unpickle(r, [&](const pickle::StorageRef&) -> std::int64_t {
    r.fail("unexpected storage in a legacy checkpoint header");
  });
}

void read_header(detail::Reader& r) {
  const pickle::Pickle magic = plain_pickle(r);
  if (magic[magic.root].kind != Kind::BigInt || magic[magic.root].text != kMagic)
    r.fail("not a legacy torch checkpoint: bad magic number");
  const pickle::Pickle protocol = plain_pickle(r);
  if (protocol[protocol.root].kind != Kind::Int || protocol[protocol.root].num != 1001)
    r.fail("unsupported legacy checkpoint protocol");
  const pickle::Pickle info = plain_pickle(r);
  const pickle::Value& dict = info[info.root];
  if (dict.kind != Kind::Dict) r.fail("legacy checkpoint sys_info is not a dict");
  for (std::size_t i = 0; i + 1 < dict.items.size(); i += 2) {
    const pickle::Value &key = info[dict.items[i]], &value = info[dict.items[i + 1]];
    if (key.kind == Kind::Str && key.text == "little_endian" && value.kind == Kind::Bool && !value.num)
      r.fail("big-endian checkpoints are not supported");
  }
}

// A storage named by the state-dict pickle: a root storage, or a view into one.
struct Slot {
  pickle::StorageRef ref;
  std::size_t root = 0;  // index of the root slot (itself for a root)
};

class Legacy {
 public:
  Legacy(ByteView bytes, const std::string& file) : bytes_(bytes), file_(file), r_(bytes, file) {}
  Description parse();

 private:
  ByteView bytes_;
  const std::string& file_;
  detail::Reader r_;
  std::vector<Slot> slots_;
  std::unordered_map<std::string, std::size_t> roots_;  // key -> slot
  std::vector<pickle::StorageSpan> spans_;              // per slot, filled once the data is located
  std::vector<bool> located_;

  std::int64_t load(const pickle::StorageRef& ref);
  void locate_roots(const pickle::Pickle& keys);
  void resolve_views();
};

std::int64_t Legacy::load(const pickle::StorageRef& ref) {
  auto [it, added] = roots_.emplace(ref.key, slots_.size());
  if (added) slots_.push_back({ref, slots_.size()});
  const Slot& root = slots_[it->second];
  if (root.ref.dtype != ref.dtype || root.ref.numel != ref.numel)
    fail(file_, "storage " + printable(ref.key) + " is described two different ways");
  if (!ref.is_view) return static_cast<std::int64_t>(it->second);
  slots_.push_back({ref, it->second});
  return static_cast<std::int64_t>(slots_.size() - 1);
}

void Legacy::locate_roots(const pickle::Pickle& keys) {
  const pickle::Value& list = keys[keys.root];
  if (list.kind != Kind::List) fail(file_, "legacy checkpoint storage keys are not a list");
  for (std::uint32_t k : list.items) {
    if (keys[k].kind != Kind::Str) fail(file_, "legacy checkpoint storage key is not a string");
    const std::string& key = keys[k].text;
    auto it = roots_.find(key);
    if (it == roots_.end()) fail(file_, "storage " + printable(key) + " is not used by the state dict");
    if (located_[it->second]) fail(file_, "storage " + printable(key) + " is stored twice");
    const pickle::StorageRef& ref = slots_[it->second].ref;
    const std::uint64_t count = r_.u64("storage size"), elsize = dtype_size(ref.dtype);
    std::uint64_t size = 0;
    if (!detail::mul_u64(count, elsize, size) || size > r_.remaining())
      fail(file_, "truncated: storage " + printable(key) + " claims " + std::to_string(count) + " elements but only " +
                      std::to_string(r_.remaining()) + " bytes remain");
    if (count != static_cast<std::uint64_t>(ref.numel))
      fail(file_, "storage " + printable(key) + " holds " + std::to_string(count) + " elements but the state dict says " +
                      std::to_string(ref.numel));
    spans_[it->second] = {ref.dtype, r_.pos(), size, key};
    located_[it->second] = true;
    r_.take(static_cast<std::size_t>(size), "storage");
  }
}

void Legacy::resolve_views() {
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    const Slot& s = slots_[i];
    if (!located_[s.root]) fail(file_, "storage " + printable(s.ref.key) + " is missing from the file");
    if (i == s.root) continue;
    const std::int64_t numel = s.ref.numel, offset = s.ref.view_offset, size = s.ref.view_size;
    if (offset < 0 || size < 0 || offset > numel || size > numel - offset)
      fail(file_, "storage view of " + printable(s.ref.key) + " lies outside its storage");
    const std::uint64_t elsize = dtype_size(s.ref.dtype);
    spans_[i] = {s.ref.dtype, spans_[s.root].offset + static_cast<std::uint64_t>(offset) * elsize,
                 static_cast<std::uint64_t>(size) * elsize, s.ref.key};
  }
}

Description Legacy::parse() {
  read_header(r_);
  const pickle::Pickle state = pickle::unpickle(r_, [this](const pickle::StorageRef& ref) { return load(ref); });
  spans_.resize(slots_.size());
  located_.assign(slots_.size(), false);
  locate_roots(plain_pickle(r_));
  resolve_views();
  return pickle::describe_state_dict(Format::TorchLegacy, state, spans_, bytes_.size, file_);
}

}  // namespace

Description parse_torch_legacy(ByteView bytes, const std::string& file) { return Legacy(bytes, file).parse(); }

}  // namespace mz::formats
