// Internal helpers shared by the checkpoint parsers: a bounds-checked reader, overflow-checked
// arithmetic and the one function that checks the guarantees of formats.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "weights/checkpoint/formats/formats.h"

namespace mz::formats::detail {

// Reads little-endian integers and byte ranges from [begin, end) of a file; every read is checked
// and a short read throws "truncated: <what> extends past end of <region>".
class Reader {
 public:
  Reader(ByteView bytes, const std::string& file, std::size_t begin = 0, std::size_t end = SIZE_MAX,
         std::string region = "file");

  std::size_t pos() const { return pos_; }
  std::size_t end() const { return end_; }
  std::size_t remaining() const { return end_ - pos_; }
  bool at_end() const { return pos_ == end_; }
  void seek(std::size_t pos, const char* what);  // absolute file offset inside [begin, end]
  const std::uint8_t* take(std::size_t n, const char* what);
  std::uint8_t u8(const char* what) { return *take(1, what); }
  std::uint16_t u16(const char* what) { return static_cast<std::uint16_t>(le(take(2, what), 2)); }
  std::uint32_t u32(const char* what) { return static_cast<std::uint32_t>(le(take(4, what), 4)); }
  std::uint64_t u64(const char* what) { return le(take(8, what), 8); }
  const std::uint8_t* base() const { return bytes_.data; }
  const std::string& file() const { return file_; }
  [[noreturn]] void fail(const std::string& reason) const;

  static std::uint64_t le(const std::uint8_t* p, int n);

 private:
  ByteView bytes_;
  const std::string& file_;
  std::size_t begin_, end_, pos_;
  std::string region_;
};

[[noreturn]] void fail(const std::string& file, const std::string& reason);

// Overflow-checked arithmetic: false on overflow.
inline bool add_u64(std::uint64_t a, std::uint64_t b, std::uint64_t& out) { return !__builtin_add_overflow(a, b, &out); }
inline bool mul_u64(std::uint64_t a, std::uint64_t b, std::uint64_t& out) { return !__builtin_mul_overflow(a, b, &out); }
inline bool add_i64(std::int64_t a, std::int64_t b, std::int64_t& out) { return !__builtin_add_overflow(a, b, &out); }
inline bool mul_i64(std::int64_t a, std::int64_t b, std::int64_t& out) { return !__builtin_mul_overflow(a, b, &out); }

// Quoted, escaped rendering of untrusted text for error messages (at most `max` bytes).
std::string printable(const std::uint8_t* p, std::size_t n, std::size_t max = 64);
inline std::string printable(const std::string& s, std::size_t max = 64) {
  return printable(reinterpret_cast<const std::uint8_t*>(s.data()), s.size(), max);
}

// Contiguous strides for a shape.
std::vector<std::int64_t> contiguous_strides(const std::vector<std::int64_t>& shape);

// Checks every guarantee of formats.h on a parser's result; `storage_names[i]` names the storage
// of tensors[i] in messages. Every parser's output passes through here.
void validate(const Description& desc, const std::vector<std::string>& storage_names, std::size_t file_size,
              const std::string& file);

}  // namespace mz::formats::detail
