// GPT-2 byte-level BPE, as torchtext 0.14.1's csrc/gpt2_bpe_tokenizer.cpp computes it.
#include <fstream>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include <nlohmann/json.hpp>
#include <re2/re2.h>

#include "modelzoo/errors.h"
#include "modelzoo/text/tokenizers.h"

namespace mz::text {

void check_utf8(std::string_view text) {
  std::size_t i = 0;
  const auto bad = [&] { throw UsageError("text", "invalid UTF-8 at byte " + std::to_string(i)); };
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0, min = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07, min = 0x10000;
    } else {
      bad();
    }
    if (i + n >= text.size()) bad();  // truncated sequence
    for (std::size_t k = 1; k <= n; ++k) {
      const auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80) bad();
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) bad();
    i += n + 1;
  }
}

std::string read_asset(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw CheckpointError(path, "cannot open tokenizer asset");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

namespace {

const char kSeparator[] = "\x01";

// GPT-2's bytes_to_unicode: each byte as the UTF-8 of a printable code point.
std::vector<std::string> bytes_to_unicode() {
  std::vector<int> cs(256, -1);
  for (int b = '!'; b <= '~'; ++b) cs[b] = b;
  for (int b = 0xA1; b <= 0xAC; ++b) cs[b] = b;
  for (int b = 0xAE; b <= 0xFF; ++b) cs[b] = b;
  int n = 0;
  for (int b = 0; b < 256; ++b)
    if (cs[b] < 0) cs[b] = 256 + n++;
  std::vector<std::string> out(256);
  for (int b = 0; b < 256; ++b) {
    const int c = cs[b];
    out[b] = c < 0x80 ? std::string(1, static_cast<char>(c))
                      : std::string{static_cast<char>(0xC0 | (c >> 6)), static_cast<char>(0x80 | (c & 0x3F))};
  }
  return out;
}

const RE2& gpt2_pattern() {
  static const RE2 re("(\\'s|\\'t|\\'re|\\'ve|\\'m|\\'ll|\\'d| ?\\pL+| ?\\pN+| ?[^\\s\\v\\pL\\pN]+|[\\s\\v]+)");
  return re;
}

bool is_whitespace(const std::string& s) {
  for (char c : s)
    if (!std::isspace(static_cast<unsigned char>(c))) return false;
  return true;
}

}  // namespace

struct GPT2BPETokenizer::Impl {
  std::unordered_map<std::string, std::int64_t> encoder;
  std::unordered_map<std::string, std::int64_t> ranks;  // "first\x01second" -> rank
  std::vector<std::string> byte_encoder = bytes_to_unicode();
  mutable std::mutex mutex;
  mutable std::unordered_map<std::string, std::vector<std::string>> cache;

  std::int64_t rank(const std::string& a, const std::string& b) const {
    auto it = ranks.find(a + kSeparator + b);
    return it == ranks.end() ? -1 : it->second;
  }

  // BPE_: merge the lowest-ranked adjacent pair everywhere, left to right, until none is ranked.
  std::vector<std::string> bpe(const std::string& pre_token) const {
    {
      std::lock_guard<std::mutex> lock(mutex);
      auto it = cache.find(pre_token);
      if (it != cache.end()) return it->second;
    }
    std::vector<std::string> word;
    for (char c : pre_token) word.push_back(byte_encoder[static_cast<unsigned char>(c)]);
    while (word.size() > 1) {
      std::int64_t best = -1;
      std::size_t best_i = 0;
      for (std::size_t i = 0; i + 1 < word.size(); ++i) {
        const std::int64_t r = rank(word[i], word[i + 1]);
        if (r >= 0 && (best < 0 || r < best)) best = r, best_i = i;
      }
      if (best < 0) break;
      const std::string first = word[best_i], second = word[best_i + 1];
      std::vector<std::string> merged;
      merged.reserve(word.size());
      for (std::size_t i = 0; i < word.size();) {
        if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
          merged.push_back(first + second);
          i += 2;
        } else {
          merged.push_back(word[i++]);
        }
      }
      word = std::move(merged);
    }
    std::lock_guard<std::mutex> lock(mutex);
    cache.emplace(pre_token, word);
    return word;
  }
};

GPT2BPETokenizer::GPT2BPETokenizer(const std::string& encoder_json_path, const std::string& vocab_bpe_path)
    : impl_(std::make_unique<Impl>()) {
  nlohmann::json encoder;
  try {
    encoder = nlohmann::json::parse(read_asset(encoder_json_path));
  } catch (const nlohmann::json::exception& e) {
    throw CheckpointError(encoder_json_path, std::string("not a GPT-2 encoder.json: ") + e.what());
  }
  if (!encoder.is_object() || encoder.empty())
    throw CheckpointError(encoder_json_path, "not a GPT-2 encoder.json: expected a non-empty object of token -> id");
  for (const auto& [token, id] : encoder.items()) {
    if (!id.is_number_integer())
      throw CheckpointError(encoder_json_path, "not a GPT-2 encoder.json: the id of " + nlohmann::json(token).dump() +
                                                   " is not an integer");
    impl_->encoder.emplace(token, id.get<std::int64_t>());
  }
  // torchtext: {"\x01".join(line.split()): i for i, line in enumerate(text.split("\n")[1:-1])}
  const std::string merges = read_asset(vocab_bpe_path);
  check_utf8(merges);
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t nl; (nl = merges.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.push_back(merges.substr(start, nl - start));
  lines.push_back(merges.substr(start));
  if (lines.size() < 2 || lines[0].rfind("#version", 0) != 0)
    throw CheckpointError(vocab_bpe_path, "not a GPT-2 vocab.bpe: no '#version' header line");
  for (std::size_t i = 1; i + 1 < lines.size(); ++i) {
    std::istringstream parts(lines[i]);
    std::string part, key;
    while (parts >> part) key += (key.empty() ? "" : kSeparator) + part;
    impl_->ranks[key] = static_cast<std::int64_t>(i - 1);
  }
}

GPT2BPETokenizer::~GPT2BPETokenizer() = default;

std::size_t GPT2BPETokenizer::vocab_size() const { return impl_->encoder.size(); }

// gpt2_bpe_pre_tokenizer: RE2 matches, then whitespace runs give their last space to the next token.
std::vector<std::string> GPT2BPETokenizer::pre_tokenize(std::string_view text) {
  check_utf8(text);
  std::vector<std::string> tokens;
  re2::StringPiece input(text.data(), text.size());
  std::string token;
  bool prepend_space = false;
  while (RE2::FindAndConsume(&input, gpt2_pattern(), &token)) {
    if (is_whitespace(token)) {
      prepend_space = false;
      if (input.empty()) {
        tokens.push_back(token);
      } else {
        if (token.size() > 1) tokens.push_back(token.substr(0, token.size() - 1));
        if (token.back() == ' ') prepend_space = true;
        else tokens.push_back(token.substr(token.size() - 1));
      }
    } else if (prepend_space) {
      tokens.push_back(" " + token);
      prepend_space = false;
    } else {
      tokens.push_back(token);
    }
  }
  return tokens;
}

Encoding GPT2BPETokenizer::encode(std::string_view text) const {
  Encoding out;
  for (const std::string& pre : pre_tokenize(text)) {
    for (std::string& piece : impl_->bpe(pre)) {
      auto it = impl_->encoder.find(piece);
      if (it == impl_->encoder.end()) throw UsageError("text", "BPE token " + nlohmann::json(piece).dump() + " is not in encoder.json");
      out.ids.push_back(it->second);
      out.pieces.push_back(std::move(piece));
    }
  }
  return out;
}

std::vector<std::string> GPT2BPETokenizer::tokens(std::string_view text) const {
  std::vector<std::string> out;
  for (std::int64_t id : encode(text).ids) out.push_back(std::to_string(id));
  return out;
}

}  // namespace mz::text
