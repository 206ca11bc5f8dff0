// dtype helpers, format detection and dispatch, the bounds-checked Reader and the central check of
// the formats.h guarantees.
#include <cstring>
#include <unordered_set>

#include "weights/checkpoint/formats/reader.h"
#include "weights/checkpoint/formats/formats.h"

namespace mz::formats {

std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float64: case DType::Int64: return 8;
    case DType::Float32: case DType::Int32: return 4;
    case DType::Float16: case DType::BFloat16: case DType::Int16: return 2;
    case DType::Int8: case DType::UInt8: case DType::Bool: return 1;
  }
  return 1;
}

const char* safetensors_dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "F32";
    case DType::Float64: return "F64";
    case DType::Float16: return "F16";
    case DType::BFloat16: return "BF16";
    case DType::Int64: return "I64";
    case DType::Int32: return "I32";
    case DType::Int16: return "I16";
    case DType::Int8: return "I8";
    case DType::UInt8: return "U8";
    case DType::Bool: return "BOOL";
  }
  return "?";
}

const char* format_name(Format f) {
  switch (f) {
    case Format::TorchZip: return "torch-zip";
    case Format::TorchLegacy: return "torch-legacy";
    case Format::Safetensors: return "safetensors";
  }
  return "?";
}

namespace {

bool starts_with(ByteView b, const char* magic, std::size_t n) {
  return b.size >= n && std::memcmp(b.data, magic, n) == 0;
}

// PROTO n, optional FRAME, LONG1 10 bytes: the legacy magic number 0x1950a86a20f9469cfc6c.
bool is_legacy(ByteView b) {
  static const std::uint8_t magic[] = {0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
  std::size_t at = 2;
  if (b.size > at && b.data[at] == 0x95) at += 9;
  return b.size >= at + sizeof magic && b.data[0] == 0x80 && std::memcmp(b.data + at, magic, sizeof magic) == 0;
}

// A safetensors file starts with its 8-byte header length followed by the JSON object.
bool looks_like_safetensors(ByteView b) { return b.size >= 9 && b.data[8] == '{'; }

std::string first_line(ByteView b) {
  std::size_t n = 0;
  while (n < b.size && n < 32 && b.data[n] != '\n' && b.data[n] != '\r') ++n;
  return detail::printable(b.data, n, 32);
}

}  // namespace

Description parse_checkpoint(ByteView bytes, const std::string& file) {
  if (bytes.size == 0) detail::fail(file, "not a checkpoint: file is empty");
  if (starts_with(bytes, "PK\x03\x04", 4) || starts_with(bytes, "PK\x05\x06", 4)) return parse_torch_zip(bytes, file);
  if (is_legacy(bytes)) return parse_torch_legacy(bytes, file);
  if (looks_like_safetensors(bytes)) return parse_safetensors(bytes, file);
  detail::fail(file, "not a checkpoint: file starts with " + first_line(bytes));
}

namespace detail {

void fail(const std::string& file, const std::string& reason) { throw CheckpointError(file, reason); }

Reader::Reader(ByteView bytes, const std::string& file, std::size_t begin, std::size_t end, std::string region)
    : bytes_(bytes), file_(file), begin_(begin), end_(end < bytes.size ? end : bytes.size), pos_(begin),
      region_(std::move(region)) {
  if (begin_ > end_) fail("truncated: " + region_ + " extends past end of file");
}

void Reader::fail(const std::string& reason) const { detail::fail(file_, reason); }

void Reader::seek(std::size_t pos, const char* what) {
  if (pos < begin_ || pos > end_) fail(std::string("truncated: ") + what + " extends past end of " + region_);
  pos_ = pos;
}

const std::uint8_t* Reader::take(std::size_t n, const char* what) {
  if (n > end_ - pos_) fail(std::string("truncated: ") + what + " extends past end of " + region_);
  const std::uint8_t* p = bytes_.data + pos_;
  pos_ += n;
  return p;
}

std::uint64_t Reader::le(const std::uint8_t* p, int n) {
  std::uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string printable(const std::uint8_t* p, std::size_t n, std::size_t max) {
  static const char hex[] = "0123456789abcdef";
  std::string out = "'";
  for (std::size_t i = 0; i < n && i < max; ++i) {
    if (p[i] >= 0x20 && p[i] < 0x7f) {
      out += static_cast<char>(p[i]);
    } else {
      out += "\\x";
      out += hex[p[i] >> 4];
      out += hex[p[i] & 15];
    }
  }
  return out + (n > max ? "'..." : "'");
}

std::vector<std::int64_t> contiguous_strides(const std::vector<std::int64_t>& shape) {
  std::vector<std::int64_t> strides(shape.size());
  std::int64_t s = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    strides[i] = s;
    if (shape[i] > 0 && !mul_i64(s, shape[i], s)) s = 0;  // overflow is reported by validate()
  }
  return strides;
}

namespace {

// Highest element index the view addresses plus one (0 for an empty tensor), in elements.
std::int64_t elements_needed(const TensorDesc& t, const std::string& file) {
  const std::string who = "tensor " + printable(t.name);
  if (t.shape.size() != t.strides.size()) fail(file, who + " has " + std::to_string(t.shape.size()) +
                                                         " sizes but " + std::to_string(t.strides.size()) + " strides");
  if (t.storage_offset < 0) fail(file, who + " has negative storage offset");
  std::int64_t numel = 1, last = t.storage_offset;
  for (std::size_t i = 0; i < t.shape.size(); ++i) {
    if (t.shape[i] < 0) fail(file, who + " has negative size " + std::to_string(t.shape[i]));
    if (t.strides[i] < 0) fail(file, who + " has negative stride " + std::to_string(t.strides[i]));
    std::int64_t step = 0;
    if (!mul_i64(numel, t.shape[i], numel) || (t.shape[i] > 0 && !mul_i64(t.shape[i] - 1, t.strides[i], step)) ||
        !add_i64(last, step, last))
      fail(file, who + " has a shape whose size overflows");
  }
  if (numel == 0) return t.storage_offset;
  if (!add_i64(last, 1, last)) fail(file, who + " has a shape whose size overflows");
  return last;
}

}  // namespace

void validate(const Description& desc, const std::vector<std::string>& storage_names, std::size_t file_size,
              const std::string& file) {
  std::unordered_set<std::string> names;
  for (std::size_t i = 0; i < desc.tensors.size(); ++i) {
    const TensorDesc& t = desc.tensors[i];
    if (!names.insert(t.name).second) fail(file, "duplicate tensor name " + printable(t.name));
    const std::string storage = "storage " + printable(i < storage_names.size() ? storage_names[i] : t.name);
    const std::uint64_t elsize = dtype_size(t.dtype);
    std::uint64_t end = 0;
    if (!add_u64(t.data_offset, t.data_size, end) || end > file_size)
      fail(file, "truncated: " + storage + " extends past end of file");
    if (t.data_size % elsize != 0)
      fail(file, storage + " holds " + std::to_string(t.data_size) + " bytes, not a multiple of " +
                     std::to_string(elsize));
    const std::uint64_t needed = static_cast<std::uint64_t>(elements_needed(t, file));
    std::uint64_t needed_bytes = 0;
    const bool fits = mul_u64(needed, elsize, needed_bytes);
    if (!fits || needed_bytes > t.data_size)
      fail(file, storage + " holds " + std::to_string(t.data_size) + " bytes but tensor " + printable(t.name) +
                     " needs " + (fits ? std::to_string(needed_bytes) : "more than 2^64"));
  }
}

}  // namespace detail
}  // namespace mz::formats
