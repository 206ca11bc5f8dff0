// safetensors: 8-byte little-endian header length, JSON header, data section. Reader and header writer.
#include <limits>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "weights/checkpoint/formats/reader.h"
#include "weights/checkpoint/formats/formats.h"

namespace mz::formats {
namespace {

using detail::fail;
using detail::printable;
using Json = nlohmann::ordered_json;

constexpr std::uint64_t kMaxHeader = 100u << 20;
constexpr int kMaxJsonDepth = 8;
constexpr DType kDTypes[] = {DType::Float32, DType::Float64, DType::Float16, DType::BFloat16, DType::Int64,
                             DType::Int32,   DType::Int16,   DType::Int8,    DType::UInt8,    DType::Bool};

// Parses the header, refusing deep nesting and duplicate tensor names while parsing.
Json parse_header(const std::uint8_t* p, std::size_t n, const std::string& file) {
  std::unordered_set<std::string> names;
  auto check = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (depth > kMaxJsonDepth)
      fail(file, "safetensors header nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    if (event == Json::parse_event_t::key && depth == 1 && !names.insert(parsed.get<std::string>()).second)
      fail(file, "safetensors header names " + printable(parsed.get<std::string>()) + " twice");
    return true;
  };
  try {
    Json header = Json::parse(p, p + n, check);
    if (!header.is_object()) fail(file, "safetensors header is not a JSON object");
    return header;
  } catch (const Json::exception& e) {
    fail(file, std::string("safetensors header is not valid JSON: ") + e.what());
  }
}

std::uint64_t unsigned_number(const Json& v, const std::string& who, const char* field, const std::string& file) {
  if (!v.is_number_unsigned() || v.get<std::uint64_t>() > std::uint64_t{std::numeric_limits<std::int64_t>::max()})
    fail(file, who + " has a bad " + field);
  return v.get<std::uint64_t>();
}

TensorDesc tensor_entry(const std::string& name, const Json& v, std::uint64_t data_begin, std::uint64_t data_size,
                        const std::string& file) {
  const std::string who = "tensor " + printable(name);
  if (!v.is_object()) fail(file, who + " header entry is not an object");
  for (const auto& field : v.items())
    if (field.key() != "dtype" && field.key() != "shape" && field.key() != "data_offsets")
      fail(file, who + " has unexpected field " + printable(field.key()));
  if (!v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
    fail(file, who + " needs dtype, shape and data_offsets");
  TensorDesc t;
  t.name = name;
  const Json& dtype = v["dtype"];
  const DType* found = nullptr;
  for (const DType& d : kDTypes)
    if (dtype.is_string() && dtype.get<std::string>() == safetensors_dtype_name(d)) found = &d;
  if (!found) fail(file, who + " has unsupported dtype " + (dtype.is_string() ? printable(dtype.get<std::string>()) : dtype.dump()));
  t.dtype = *found;

  const Json &shape = v["shape"], &offsets = v["data_offsets"];
  if (!shape.is_array() || !offsets.is_array() || offsets.size() != 2) fail(file, who + " has a bad shape or data_offsets");
  std::uint64_t bytes = dtype_size(t.dtype);
  for (const Json& d : shape) {
    t.shape.push_back(static_cast<std::int64_t>(unsigned_number(d, who, "shape", file)));
    if (!detail::mul_u64(bytes, static_cast<std::uint64_t>(t.shape.back()), bytes)) fail(file, who + " shape overflows");
  }
  const std::uint64_t begin = unsigned_number(offsets[0], who, "data_offsets", file),
                      end = unsigned_number(offsets[1], who, "data_offsets", file);
  if (begin > end || end > data_size)
    fail(file, who + " data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] exceed data size " +
                   std::to_string(data_size));
  if (end - begin != bytes)
    fail(file, who + " holds " + std::to_string(end - begin) + " bytes but its shape needs " + std::to_string(bytes));
  t.data_offset = data_begin + begin;
  t.data_size = end - begin;
  t.strides = detail::contiguous_strides(t.shape);
  return t;
}

}  // namespace

Description parse_safetensors(ByteView bytes, const std::string& file) {
  detail::Reader r(bytes, file);
  const std::uint64_t n = r.u64("safetensors header length");
  if (n > r.remaining())
    fail(file, "safetensors header length " + std::to_string(n) + " exceeds file size " + std::to_string(bytes.size));
  if (n > kMaxHeader)
    fail(file, "safetensors header length " + std::to_string(n) + " exceeds limit " + std::to_string(kMaxHeader));
  const Json header = parse_header(r.take(static_cast<std::size_t>(n), "safetensors header"), static_cast<std::size_t>(n), file);

  Description desc{Format::Safetensors, {}};
  std::vector<std::string> storage_names;
  for (const auto& item : header.items()) {
    if (item.key() == "__metadata__") {
      if (!item.value().is_object()) fail(file, "safetensors __metadata__ is not an object");
      for (const auto& m : item.value().items())
        if (!m.value().is_string()) fail(file, "safetensors __metadata__ value " + printable(m.key()) + " is not a string");
      continue;
    }
    desc.tensors.push_back(tensor_entry(item.key(), item.value(), r.pos(), r.remaining(), file));
    storage_names.push_back(item.key());
  }
  detail::validate(desc, storage_names, bytes.size, file);
  return desc;
}

std::string safetensors_header(const std::vector<TensorDesc>& tensors,
                               const std::vector<std::pair<std::string, std::string>>& metadata) {
  Json header = Json::object();
  if (!metadata.empty()) {
    Json& m = header["__metadata__"] = Json::object();
    for (const auto& [key, value] : metadata) m[key] = value;
  }
  for (const TensorDesc& t : tensors)
    header[t.name] = {{"dtype", safetensors_dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", Json::array({t.data_offset, t.data_offset + t.data_size})}};
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((json.size() >> (8 * i)) & 0xFF);
  return out + json;
}

}  // namespace mz::formats
