// The thin LibTorch layer over the parsers in weights/checkpoint/formats/formats.h: map the file, parse it into
// descriptions, and copy bytes straight into parameter storage, or (Storage::Map) make the mapped
// pages the parameters' storage.
#include "modelzoo/checkpoint.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <unordered_map>

#include "modelzoo/errors.h"
#include "modelzoo/hub.h"
#include "modelzoo/layers/nn.h"
#include "weights/checkpoint/formats/formats.h"
#include "weights/glob.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14; older kernels refuse it (see MappedFile::populate)
#endif

namespace mz {
namespace {

using formats::DType;

torch::ScalarType scalar_type(DType d) {
  switch (d) {
    case DType::Float32: return torch::kFloat32;
    case DType::Float64: return torch::kFloat64;
    case DType::Float16: return torch::kFloat16;
    case DType::BFloat16: return torch::kBFloat16;
    case DType::Int64: return torch::kInt64;
    case DType::Int32: return torch::kInt32;
    case DType::Int16: return torch::kInt16;
    case DType::Int8: return torch::kInt8;
    case DType::UInt8: return torch::kUInt8;
    case DType::Bool: return torch::kBool;
  }
  throw std::logic_error("unknown dtype");
}

DType format_dtype(torch::ScalarType t, const std::string& file, const std::string& name) {
  switch (t) {
    case torch::kFloat32: return DType::Float32;
    case torch::kFloat64: return DType::Float64;
    case torch::kFloat16: return DType::Float16;
    case torch::kBFloat16: return DType::BFloat16;
    case torch::kInt64: return DType::Int64;
    case torch::kInt32: return DType::Int32;
    case torch::kInt16: return DType::Int16;
    case torch::kInt8: return DType::Int8;
    case torch::kUInt8: return DType::UInt8;
    case torch::kBool: return DType::Bool;
    default: throw CheckpointError(file, "tensor '" + name + "' has a dtype safetensors cannot store");
  }
}

std::string shape_string(torch::IntArrayRef shape) {
  std::ostringstream s;
  s << shape;
  return s.str();
}

class MappedFile {
 public:
  explicit MappedFile(const std::string& path) : path_(path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw CheckpointError(path, std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      ::close(fd);
      throw CheckpointError(path, "not a regular file");
    }
    size_ = static_cast<std::size_t>(st.st_size);
    // Private and writable: tensors backed by the mapping (Storage::Map) stay writable, and a write
    // copies the page it touches instead of reaching the file. The mapping keeps the file open.
    void* p = size_ > 0 ? ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0) : nullptr;
    const int err = errno;
    ::close(fd);
    if (p == MAP_FAILED) throw CheckpointError(path, std::string("cannot map: ") + std::strerror(err));
    data_ = static_cast<const std::uint8_t*>(p);
  }
  ~MappedFile() {
    if (data_) ::munmap(const_cast<std::uint8_t*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  formats::ByteView bytes() const { return {data_, size_}; }
  void advise(int advice) const {
    if (data_) ::madvise(const_cast<std::uint8_t*>(data_), size_, advice);
  }
  // Maps the pages of a byte range now (reading them from disk if they are not cached), without
  // copying them: Storage::Map's load then costs what reading the file costs, and the first forward
  // pass takes no page faults. Read-only population, so the pages stay shared with the page cache.
  void populate(std::uint64_t offset, std::uint64_t size) const {
    const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    const std::uint64_t begin = offset / page * page;
    auto* p = const_cast<std::uint8_t*>(data_) + begin;
    if (size > 0 && ::madvise(p, offset + size - begin, MADV_POPULATE_READ) != 0)
      ::madvise(p, offset + size - begin, MADV_WILLNEED);  // older kernels: read ahead at least
  }
  // Drops the mapped pages of a byte range from this process (they stay in the page cache), so
  // that loading a checkpoint does not hold a second copy of it in memory.
  void release(std::uint64_t offset, std::uint64_t size) const {
    const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    const std::uint64_t begin = (offset + page - 1) / page * page, end = (offset + size) / page * page;
    if (data_ && end > begin) ::madvise(const_cast<std::uint8_t*>(data_) + begin, end - begin, MADV_DONTNEED);
  }

 private:
  std::string path_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

// Resets (PyTorch default init) every Resettable layer owning one of `keys`, e.g. a new head.
void reinit_layers_of(torch::nn::Module& module, const std::string& prefix, const std::vector<std::string>& keys) {
  if (auto* layer = dynamic_cast<nn::Resettable*>(&module)) {
    for (const auto& item : module.named_parameters(/*recurse=*/false))
      if (std::find(keys.begin(), keys.end(), prefix + item.key()) != keys.end()) return layer->reset_parameters();
  }
  for (const auto& child : module.named_children())
    reinit_layers_of(*child.value(), prefix + child.key() + ".", keys);
}

}  // namespace

struct Checkpoint::Impl {
  std::string path;
  std::shared_ptr<const MappedFile> mapping;  // shared with the tensors Storage::Map backs by it
  const MappedFile& file;
  formats::Description desc;
  std::unordered_map<std::string, std::size_t> index;

  explicit Impl(const std::string& p)
      : path(p), mapping(std::make_shared<const MappedFile>(p)), file(*mapping),
        desc(formats::parse_checkpoint(file.bytes(), p)) {
    for (std::size_t i = 0; i < desc.tensors.size(); ++i) index.emplace(desc.tensors[i].name, i);
  }

  // A tensor viewing the mapped bytes (read-only: never write through it).
  torch::Tensor view(const formats::TensorDesc& d) const {
    const auto type = scalar_type(d.dtype);
    auto* base = const_cast<std::uint8_t*>(file.bytes().data) + d.data_offset +
                 d.storage_offset * static_cast<std::int64_t>(formats::dtype_size(d.dtype));
    return torch::from_blob(base, d.shape, d.strides, torch::TensorOptions().dtype(type));
  }

  // Makes `dst` use the mapped bytes as its storage, if they can back it as they are: same dtype,
  // contiguous, naturally aligned. The mapping lives as long as any tensor it backs.
  bool map_into(torch::Tensor& dst, const formats::TensorDesc& d) const {
    if (dst.numel() == 0 || !dst.is_cpu() || dst.scalar_type() != scalar_type(d.dtype)) return false;
    torch::Tensor src = view(d);
    if (!src.is_contiguous() || reinterpret_cast<std::uintptr_t>(src.data_ptr()) % src.element_size() != 0)
      return false;
    file.populate(d.data_offset + static_cast<std::uint64_t>(d.storage_offset) * src.element_size(),
                  static_cast<std::uint64_t>(src.numel()) * src.element_size());
    dst.set_(torch::from_blob(src.data_ptr(), src.sizes(), [keep = mapping](void*) {}, src.options()));
    return true;
  }

  void copy_into(torch::Tensor& dst, const formats::TensorDesc& d, bool release = true) const {
    if (dst.numel() == 0) return;
    torch::Tensor src = view(d);
    const auto nbytes = static_cast<std::size_t>(dst.numel()) * dst.element_size();
    if (src.scalar_type() == dst.scalar_type() && src.is_contiguous() && dst.is_contiguous() && dst.is_cpu())
      std::memcpy(dst.data_ptr(), src.data_ptr(), nbytes);
    else
      dst.copy_(src);
    if (release) file.release(d.data_offset, d.data_size);
  }

  // An owned copy of a tensor of the file.
  torch::Tensor read(const formats::TensorDesc& d, bool release = true) const {
    torch::Tensor out = torch::empty(d.shape, torch::TensorOptions().dtype(scalar_type(d.dtype)));
    copy_into(out, d, release);
    return out;
  }

  const formats::TensorDesc& find(const std::string& name) const {
    auto it = index.find(name);
    if (it == index.end()) throw CheckpointError(path, "no tensor named '" + name + "'");
    return desc.tensors[it->second];
  }
};

Checkpoint::Checkpoint(const std::string& path) : impl_(std::make_unique<Impl>(path)) {}
Checkpoint::~Checkpoint() = default;
Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
const std::string& Checkpoint::path() const { return impl_->path; }
std::string Checkpoint::format() const { return formats::format_name(impl_->desc.format); }

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  for (const auto& t : impl_->desc.tensors) out.push_back(t.name);
  return out;
}

torch::Tensor Checkpoint::tensor(const std::string& name) const { return impl_->read(impl_->find(name)); }

TensorDict Checkpoint::tensors() const {
  TensorDict out;
  for (const auto& d : impl_->desc.tensors) out.insert(d.name, tensor(d.name));
  return out;
}

// One incoming tensor: a tensor of the file (read on demand) or a tensor an adapter (or load_state) set.
struct IncomingEntry {
  std::string key;
  const formats::TensorDesc* desc = nullptr;
  torch::Tensor value;
  bool erased = false;
  std::vector<std::int64_t> shape() const { return desc ? desc->shape : value.sizes().vec(); }
};

struct IncomingState::Impl {
  std::string file;
  const Checkpoint::Impl* checkpoint = nullptr;  // nullptr: every entry holds its value
  std::vector<IncomingEntry> entries;
  std::unordered_map<std::string, std::size_t> index;  // live entries only
  std::vector<std::string> adapted;

  // Adds an entry, or replaces the one of the same key (an adapter's set() or rename()).
  void add(IncomingEntry e) {
    const auto it = index.find(e.key);
    if (it != index.end()) {
      entries[it->second] = std::move(e);
      return;
    }
    index.emplace(e.key, entries.size());
    entries.push_back(std::move(e));
  }
  // The file's (or load_state's) entries: of two names that map to one key, the first wins.
  void add_first(IncomingEntry e) {
    if (!index.count(e.key)) add(std::move(e));
  }
  IncomingEntry& at(const std::string& key) {
    const auto it = index.find(key);
    if (it == index.end()) throw LoadError(file, "no incoming tensor named '" + key + "'");
    return entries[it->second];
  }
  void note(const std::string& key) {
    if (std::find(adapted.begin(), adapted.end(), key) == adapted.end()) adapted.push_back(key);
  }
};

namespace detail {
struct StateAccess {
  static IncomingState make(std::unique_ptr<IncomingState::Impl> impl) { return IncomingState(std::move(impl)); }
  static IncomingState::Impl& impl(IncomingState& s) { return *s.impl_; }
};
}  // namespace detail

IncomingState::IncomingState(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
IncomingState::~IncomingState() = default;
const std::string& IncomingState::file() const { return impl_->file; }
bool IncomingState::contains(const std::string& key) const { return impl_->index.count(key) > 0; }
std::vector<std::string> IncomingState::keys() const {
  std::vector<std::string> out;
  for (const auto& e : impl_->entries)
    if (!e.erased) out.push_back(e.key);
  return out;
}
std::vector<std::int64_t> IncomingState::shape(const std::string& key) const { return impl_->at(key).shape(); }
torch::Tensor IncomingState::read(const std::string& key) const {
  const IncomingEntry& e = impl_->at(key);
  return e.desc ? impl_->checkpoint->read(*e.desc, /*release=*/false) : e.value.clone();
}
void IncomingState::set(const std::string& key, torch::Tensor value) {
  impl_->add({key, nullptr, std::move(value)});
  impl_->note(key);
}
void IncomingState::rename(const std::string& from, const std::string& to) {
  const auto it = impl_->index.find(from);
  if (it == impl_->index.end() || from == to) return;
  IncomingEntry e = impl_->entries[it->second];
  erase(from);
  e.key = to;
  impl_->add(std::move(e));
  impl_->note(to);
}
void IncomingState::erase(const std::string& key) {
  const auto it = impl_->index.find(key);
  if (it == impl_->index.end()) return;
  impl_->entries[it->second].erased = true;
  impl_->index.erase(it);
}
const std::vector<std::string>& IncomingState::adapted() const { return impl_->adapted; }

namespace {

std::string module_key(std::string key, const LoadOptions& options) {
  if (options.strip_module_prefix && key.rfind("module.", 0) == 0) key.erase(0, 7);
  return options.rename ? options.rename(key) : key;
}

// Every CheckpointAdapter in the tree, a parent before its children (children are listed after the
// parent adapted, since an adapter may replace them).
void adapt(torch::nn::Module& module, const std::string& prefix, IncomingState& state) {
  if (auto* adapter = dynamic_cast<CheckpointAdapter*>(&module)) adapter->adapt_checkpoint(state, prefix);
  for (const auto& child : module.named_children()) adapt(*child.value(), prefix + child.key() + ".", state);
}

// The one load path: adapt, match every parameter and buffer by key, check, then fill.
LoadReport load_incoming(torch::nn::Module& module, IncomingState& state, const LoadOptions& options) {
  auto& in = detail::StateAccess::impl(state);
  LoadReport report;
  report.file = in.file;
  adapt(module, "", state);
  report.adapted = in.adapted;
  std::vector<std::pair<torch::Tensor, const IncomingEntry*>> copies;
  std::unordered_map<std::string, bool> in_module;
  auto visit = [&](const std::string& key, torch::Tensor& target) {
    in_module[key] = true;
    if (matches_any(key, options.skip)) return report.skipped.push_back(key);
    auto it = in.index.find(key);
    if (it == in.index.end()) return report.missing.push_back(key);
    const IncomingEntry& e = in.entries[it->second];
    const auto shape = e.shape();
    if (target.sizes() != torch::IntArrayRef(shape))
      return report.mismatched.push_back(key + ": checkpoint " + shape_string(shape) + " vs module " +
                                         shape_string(target.sizes()));
    copies.emplace_back(target, &e);
    report.loaded.push_back(key);
  };
  for (auto& item : module.named_parameters(/*recurse=*/true)) visit(item.key(), item.value());
  for (auto& item : module.named_buffers(/*recurse=*/true)) visit(item.key(), item.value());
  for (const auto& e : in.entries)
    if (!e.erased && !in_module.count(e.key) && !matches_any(e.key, options.skip)) report.unexpected.push_back(e.key);
  if (options.strict && !report.ok()) throw LoadError(in.file.empty() ? "state" : in.file, report.summary());
  torch::NoGradGuard no_grad;
  const bool map = options.storage == Storage::Map && in.checkpoint;
  if (in.checkpoint) in.checkpoint->file.advise(map ? MADV_NORMAL : MADV_SEQUENTIAL);
  for (std::size_t i = 0; i < copies.size(); ++i) {  // copies[i] loads report.loaded[i]
    auto& [target, e] = copies[i];
    if (!e->desc)
      target.copy_(e->value);
    else if (map && in.checkpoint->map_into(target, *e->desc))
      report.mapped.push_back(report.loaded[i]);
    else
      in.checkpoint->copy_into(target, *e->desc, /*release=*/!map);  // mapped neighbours keep their pages
  }
  if (options.reinit_skipped && !report.skipped.empty()) reinit_layers_of(module, "", report.skipped);
  return report;
}

}  // namespace

LoadReport Checkpoint::load_into(torch::nn::Module& module, const LoadOptions& options) const {
  auto in = std::make_unique<IncomingState::Impl>();
  in->file = impl_->path;
  in->checkpoint = impl_.get();
  for (const auto& d : impl_->desc.tensors) in->add_first({module_key(d.name, options), &d, {}});
  IncomingState state = detail::StateAccess::make(std::move(in));
  return load_incoming(module, state, options);
}

LoadReport load_state(torch::nn::Module& module, TensorDict tensors, const LoadOptions& options) {
  auto in = std::make_unique<IncomingState::Impl>();
  for (const auto& item : tensors) in->add_first({module_key(item.key(), options), nullptr, item.value()});
  IncomingState state = detail::StateAccess::make(std::move(in));
  return load_incoming(module, state, options);
}

std::string LoadReport::summary() const {
  std::ostringstream s;
  auto list = [&](const char* what, const std::vector<std::string>& keys) {
    if (keys.empty()) return;
    s << (s.tellp() > 0 ? "; " : "") << keys.size() << " " << what << ": ";
    for (std::size_t i = 0; i < keys.size(); ++i) s << (i ? ", " : "") << keys[i];
  };
  list("missing", missing);
  list("unexpected", unexpected);
  list("mismatched", mismatched);
  if (s.tellp() == 0) s << loaded.size() << " tensors loaded" << (skipped.empty() ? "" : ", ") 
                        << (skipped.empty() ? "" : std::to_string(skipped.size()) + " skipped");
  return s.str();
}

namespace {
thread_local bool g_architecture_only = false;
}
ArchitectureOnly::ArchitectureOnly() : previous_(g_architecture_only) { g_architecture_only = true; }
ArchitectureOnly::~ArchitectureOnly() { g_architecture_only = previous_; }
bool architecture_only() { return g_architecture_only; }

TensorDict read_checkpoint(const std::string& path) { return Checkpoint(path).tensors(); }

LoadReport load_checkpoint(torch::nn::Module& module, const std::string& path, const LoadOptions& options) {
  return Checkpoint(path).load_into(module, options);
}

LoadReport load_weights(torch::nn::Module& module, const Weights& weights, const LoadOptions& options) {
  LoadOptions o = options;
  if (o.storage == Storage::Auto) o.storage = Storage::Map;  // cache files are only replaced by rename
  return load_checkpoint(module, hub::fetch(weights.record()), o);
}

void save_safetensors(const std::string& path, const TensorDict& tensors,
                      const std::vector<std::pair<std::string, std::string>>& metadata) {
  std::vector<formats::TensorDesc> descs;
  std::vector<torch::Tensor> data;
  std::uint64_t offset = 0;
  for (const auto& item : tensors) {
    const std::string& name = item.key();
    torch::Tensor c = item.value().detach().to(torch::kCPU).contiguous();
    formats::TensorDesc d;
    d.name = name;
    d.dtype = format_dtype(c.scalar_type(), path, name);
    d.shape = c.sizes().vec();
    d.data_offset = offset;
    d.data_size = static_cast<std::uint64_t>(c.numel()) * c.element_size();
    offset += d.data_size;
    descs.push_back(std::move(d));
    data.push_back(std::move(c));
  }
  const std::string header = formats::safetensors_header(descs, metadata);
  const std::string tmp = path + ".tmp" + std::to_string(std::random_device{}());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw CheckpointError(path, std::string("cannot write: ") + std::strerror(errno));
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    for (const auto& c : data)
      out.write(static_cast<const char*>(c.data_ptr()), static_cast<std::streamsize>(c.numel() * c.element_size()));
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      throw CheckpointError(path, "write failed (disk full?)");
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw CheckpointError(path, std::string("cannot rename into place: ") + std::strerror(errno));
  }
}

}  // namespace mz
