// Checkpoint-format parsers against real torch.save / safetensors fixtures (tests/formats/make_fixtures.py)
// and hostile files; every prefix and many byte flips of small valid files must parse soundly or throw
// CheckpointError.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "tests/formats/guarantees.h"
#include "weights/checkpoint/formats/formats.h"

namespace fmt = mz::formats;
using nlohmann::json;
using Bytes = std::vector<std::uint8_t>;

namespace {

Bytes read_fixture(const std::string& name) {
  std::ifstream in(std::string(MZ_FORMATS_FIXTURES) + "/" + name, std::ios::binary);
  REQUIRE_MESSAGE(in, "missing fixture " << name << " (run the formats_fixtures test first)");
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

const json& expected() {
  static const json j = json::parse(read_fixture("expected.json"));
  return j;
}

fmt::Description parse(const Bytes& b, const std::string& file) { return fmt::parse_checkpoint({b.data(), b.size()}, file); }

// Bytes of the elements the view addresses, in row-major order.
std::string gather(const fmt::TensorDesc& t, const Bytes& file) {
  const std::size_t el = fmt::dtype_size(t.dtype);
  std::int64_t numel = 1;
  for (std::int64_t s : t.shape) numel *= s;
  std::vector<std::int64_t> idx(t.shape.size(), 0);
  std::string out;
  for (std::int64_t k = 0; k < numel; ++k) {
    std::int64_t off = t.storage_offset;
    for (std::size_t i = 0; i < idx.size(); ++i) off += idx[i] * t.strides[i];
    out.append(reinterpret_cast<const char*>(file.data() + t.data_offset + off * el), el);
    for (std::size_t i = idx.size(); i-- > 0;)
      if (++idx[i] < t.shape[i]) break;
      else idx[i] = 0;
  }
  return out;
}

std::string hex(const std::string& s) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) out += {digits[c >> 4], digits[c & 15]};
  return out;
}

float bits_to_float(std::uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

double half_to_double(std::uint16_t h) {
  const int exp = (h >> 10) & 31, mant = h & 1023;
  const double sign = (h & 0x8000) ? -1 : 1;
  if (exp == 0) return sign * std::ldexp(mant, -24);
  if (exp == 31) return mant ? NAN : sign * INFINITY;
  return sign * std::ldexp(mant + 1024, exp - 25);
}

double element(fmt::DType t, const char* p) {
  auto load = [p](auto v) { std::memcpy(&v, p, sizeof v); return v; };
  switch (t) {
    case fmt::DType::Float32: return load(float{});
    case fmt::DType::Float64: return load(double{});
    case fmt::DType::Float16: return half_to_double(load(std::uint16_t{}));
    case fmt::DType::BFloat16: return bits_to_float(std::uint32_t{load(std::uint16_t{})} << 16);
    case fmt::DType::Int64: return static_cast<double>(load(std::int64_t{}));
    case fmt::DType::Int32: return load(std::int32_t{});
    case fmt::DType::Int16: return load(std::int16_t{});
    case fmt::DType::Int8: return load(std::int8_t{});
    case fmt::DType::UInt8: case fmt::DType::Bool: return load(std::uint8_t{});
  }
  return NAN;
}

void check_tensor(const fmt::TensorDesc& t, const json& want, const Bytes& file) {
  CAPTURE(t.name);
  CHECK(t.name == want["name"].get<std::string>());
  CHECK(fmt::safetensors_dtype_name(t.dtype) == want["dtype"].get<std::string>());
  CHECK(t.shape == want["shape"].get<std::vector<std::int64_t>>());
  CHECK(t.strides == want["strides"].get<std::vector<std::int64_t>>());
  CHECK(t.storage_offset == want["storage_offset"].get<std::int64_t>());
  const std::string bytes = gather(t, file);
  CHECK(hex(bytes) == want["bytes"].get<std::string>());
  const json& values = want["values"];
  REQUIRE(values.size() * fmt::dtype_size(t.dtype) == bytes.size());
  for (std::size_t i = 0; i < values.size(); ++i)
    CHECK(element(t.dtype, bytes.data() + i * fmt::dtype_size(t.dtype)) ==
          (values[i].is_boolean() ? double(values[i].get<bool>()) : values[i].get<double>()));
}

// Parses or throws CheckpointError; a success must satisfy the guarantees. Anything else fails.
void parse_soundly(const Bytes& b, const std::string& file) {
  try {
    const fmt::Description d = parse(b, file);
    const std::string bad = fmt::test::guarantee_violation(d, b.size());
    if (!bad.empty()) FAIL(file << " (" << b.size() << " bytes): " << bad);
  } catch (const mz::CheckpointError&) {
  }
}

}  // namespace

TEST_CASE("dtype, format and safetensors names") {
  CHECK(fmt::dtype_size(fmt::DType::BFloat16) == 2);
  CHECK(fmt::dtype_size(fmt::DType::Int64) == 8);
  CHECK(std::string(fmt::safetensors_dtype_name(fmt::DType::Bool)) == "BOOL");
  CHECK(std::string(fmt::format_name(fmt::Format::TorchLegacy)) == "torch-legacy");
}

TEST_CASE("good fixtures parse to the expected tensors and bytes") {
  for (const json& good : expected()["good"]) {
    const std::string file = good["file"];
    CAPTURE(file);
    const Bytes bytes = read_fixture(file);
    const fmt::Description d = parse(bytes, file);
    CHECK(fmt::format_name(d.format) == good["format"].get<std::string>());
    CHECK(fmt::test::guarantee_violation(d, bytes.size()) == "");
    const json& want = expected()["tensor_sets"][good["tensors"].get<std::string>()];
    REQUIRE(d.tensors.size() == want.size());
    for (std::size_t i = 0; i < want.size(); ++i) check_tensor(d.tensors[i], want[i], bytes);
    if (good.contains("data_offsets"))
      for (std::size_t i = 0; i < want.size(); ++i) CHECK(d.tensors[i].data_offset == good["data_offsets"][i].get<std::uint64_t>());
  }
}

TEST_CASE("format-specific entry points agree with parse_checkpoint") {
  const Bytes zip = read_fixture("good_zip.pth"), legacy = read_fixture("good_legacy.pth"),
              st = read_fixture("good.safetensors");
  CHECK(fmt::parse_torch_zip({zip.data(), zip.size()}, "z").tensors.size() == 15);
  CHECK(fmt::parse_torch_legacy({legacy.data(), legacy.size()}, "l").tensors.size() == 15);
  CHECK(fmt::parse_safetensors({st.data(), st.size()}, "s").tensors.size() == 15);
  CHECK_THROWS_AS(fmt::parse_safetensors({zip.data(), zip.size()}, "z"), mz::CheckpointError);
}

TEST_CASE("safetensors_header round-trips a torch checkpoint") {
  const Bytes zip = read_fixture("good_zip.pth");
  const fmt::Description d = parse(zip, "good_zip.pth");
  std::vector<fmt::TensorDesc> out;
  std::string data;
  for (fmt::TensorDesc t : d.tensors) {
    const std::string bytes = gather(t, zip);
    t.data_offset = data.size();
    t.data_size = bytes.size();
    data += bytes;
    out.push_back(t);
  }
  const std::string header = fmt::safetensors_header(out, {{"format", "pt"}});
  CHECK(header.size() % 8 == 0);
  const std::string whole = header + data;
  const Bytes file(whole.begin(), whole.end());
  const fmt::Description back = parse(file, "roundtrip.safetensors");
  CHECK(back.format == fmt::Format::Safetensors);
  REQUIRE(back.tensors.size() == d.tensors.size());
  for (std::size_t i = 0; i < d.tensors.size(); ++i) {
    CHECK(back.tensors[i].name == d.tensors[i].name);
    CHECK(back.tensors[i].shape == d.tensors[i].shape);
    CHECK(gather(back.tensors[i], file) == gather(d.tensors[i], zip));
  }
}

TEST_CASE("in-memory hostile inputs") {
  auto safetensors = [](const std::string& json) {
    Bytes b(8, 0);
    for (int i = 0; i < 8; ++i) b[i] = static_cast<std::uint8_t>(json.size() >> (8 * i));
    b.insert(b.end(), json.begin(), json.end());
    return b;
  };
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  CHECK_THROWS_WITH_AS(parse(safetensors("{\"a\":" + deep + "}"), "deep.safetensors"),
                       "deep.safetensors: safetensors header nested deeper than 8 levels", mz::CheckpointError);
  CHECK_THROWS_WITH_AS(parse(safetensors(R"({"a":{"dtype":"U16","shape":[1],"data_offsets":[0,2]}})"), "u16"),
                       "u16: tensor 'a' has unsupported dtype 'U16'", mz::CheckpointError);
  CHECK_THROWS_WITH_AS(parse(safetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,0]},"a":{}})"), "dup"),
                       "dup: safetensors header names 'a' twice", mz::CheckpointError);
  CHECK_THROWS_WITH_AS(parse(safetensors(R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}})"),
                             "big"),
                       "big: tensor 'a' shape overflows", mz::CheckpointError);
  CHECK_THROWS_WITH_AS(parse(safetensors(R"({"a":)"), "cut"), doctest::Contains("cut: safetensors header is not valid JSON"),
                       mz::CheckpointError);
}

// One test per hostile fixture; the expected reason is in expected.json (written with the file).
namespace {
void check_refused(const std::string& file) {
  std::string reason;
  for (const json& bad : expected()["bad"])
    if (bad["file"] == file) reason = bad["error"];
  REQUIRE_MESSAGE(!reason.empty(), file << " is not in expected.json");
  const Bytes bytes = read_fixture(file);
  CHECK_THROWS_WITH_AS(parse(bytes, file), (file + ": " + reason).c_str(), mz::CheckpointError);
}
}  // namespace

#define HOSTILE(file) \
  TEST_CASE("refuses " file) { check_refused(file); }
HOSTILE("empty.pth")
HOSTILE("html.pth")
HOSTILE("os_system.pth")
HOSTILE("nested_lists.pth")
HOSTILE("nested_tuples.pth")
HOSTILE("nested_dicts.pth")
HOSTILE("bad_opcode.pth")
HOSTILE("not_tensor.pth")
HOSTILE("truncated_cd.pth")
HOSTILE("cd_past_end.pth")
HOSTILE("truncated_storage.pth")
HOSTILE("compressed.pth")
HOSTILE("short_storage.pth")
HOSTILE("legacy_bad_count.pth")
HOSTILE("st_offsets_past_end.safetensors")
HOSTILE("st_header_max.safetensors")
HOSTILE("st_header_2p40.safetensors")

TEST_CASE("every hostile fixture has a test") {
  int refuse_tests = 0;
  for (const doctest::detail::TestCase& tc : doctest::detail::getRegisteredTests())
    refuse_tests += std::strncmp(tc.m_name, "refuses ", 8) == 0;
  CHECK(expected()["bad"].size() == static_cast<std::size_t>(refuse_tests));
}

TEST_CASE("every prefix of a valid file parses soundly or throws CheckpointError") {
  for (const char* file : {"nested_zip.pth", "nested_legacy.pth", "nested.safetensors", "good_zip.pth",
                           "good_zip64.pth", "good_legacy_p4.pth", "good.safetensors"}) {
    const Bytes bytes = read_fixture(file);
    for (std::size_t n = 0; n <= bytes.size(); ++n) parse_soundly(Bytes(bytes.begin(), bytes.begin() + n), file);
  }
}

TEST_CASE("every single-byte change of a small valid file parses soundly or throws CheckpointError") {
  for (const char* file : {"nested_zip.pth", "nested_legacy.pth", "nested.safetensors"}) {
    Bytes bytes = read_fixture(file);
    for (std::size_t i = 0; i < bytes.size(); ++i)
      for (std::uint8_t flip : {0x01, 0x80, 0xFF}) {
        bytes[i] ^= flip;
        parse_soundly(bytes, file);
        bytes[i] ^= flip;
      }
  }
}
