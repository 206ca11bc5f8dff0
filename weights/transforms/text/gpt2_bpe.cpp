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
  // torchtext's pattern, without its outer group: only the whole match is needed, which RE2 finds with its DFA
  static const RE2 re("\\'s|\\'t|\\'re|\\'ve|\\'m|\\'ll|\\'d| ?\\pL+| ?\\pN+| ?[^\\s\\v\\pL\\pN]+|[\\s\\v]+");
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
  std::vector<std::string> byte_encoder = bytes_to_unicode();
  mutable std::mutex mutex;

  // Merges over interned symbols: every string that appears in a merge, and every byte's symbol, gets an
  // id; a merge (a, b) has a rank and the id of its result.
  std::unordered_map<std::string, std::int32_t> symbol_ids;
  std::vector<std::string> symbols;
  struct Merge {
    std::int64_t rank;
    std::int32_t first, second, result;
  };
  std::vector<std::int32_t> byte_symbols;  // each byte's symbol (bytes_to_unicode), interned
  std::unordered_map<std::uint64_t, Merge> merges;
  // The merges again as an open-addressed table (power-of-two size, linear probing) for the hot lookup: the
  // standard map's division per lookup was a third of tokenising.
  std::vector<std::uint64_t> table_keys;  // pair_key + 1; 0 = empty
  std::vector<const Merge*> table_values;
  void build_table() {
    std::size_t size = 16;
    while (size < 2 * merges.size()) size *= 2;
    table_keys.assign(size, 0);
    table_values.assign(size, nullptr);
    for (const auto& [key, m] : merges) {
      std::size_t i = slot(key);
      while (table_keys[i] != 0) i = (i + 1) & (size - 1);
      table_keys[i] = key + 1;
      table_values[i] = &m;
    }
  }
  std::size_t slot(std::uint64_t key) const {
    return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ULL) >> 20) & (table_keys.size() - 1);
  }

  std::int32_t intern(const std::string& s) {
    auto [it, added] = symbol_ids.emplace(s, static_cast<std::int32_t>(symbols.size()));
    if (added) symbols.push_back(s);
    return it->second;
  }
  static std::uint64_t pair_key(std::int32_t a, std::int32_t b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
  }
  const Merge* merge(std::int32_t a, std::int32_t b) const {
    const std::uint64_t key = pair_key(a, b);
    for (std::size_t i = slot(key);; i = (i + 1) & (table_keys.size() - 1)) {
      if (table_keys[i] == key + 1) return table_values[i];
      if (table_keys[i] == 0) return nullptr;
    }
  }

  struct Word {
    std::vector<std::int64_t> ids;
    std::vector<std::string> pieces;
  };
  mutable std::unordered_map<std::string, Word> words;  // BPE results by pre-token (nodes never move)

  // BPE_: merge the lowest-ranked adjacent pair everywhere, left to right, until none is ranked; then the
  // pieces' ids. Results are cached per pre-token, as torchtext's are.
  const Word& bpe(const std::string& pre_token) const {
    {
      std::lock_guard<std::mutex> lock(mutex);
      auto it = words.find(pre_token);
      if (it != words.end()) return it->second;
    }
    // The word as symbol ids (every byte's symbol is interned): merging touches integers only. rank[i] is the
    // merge of (ids[i], ids[i + 1]) or null; a merge looks up only the pairs next to the symbols it made.
    std::vector<std::int32_t> ids, next_ids;
    std::vector<const Merge*> rank, next_rank;
    for (char c : pre_token) ids.push_back(byte_symbols[static_cast<unsigned char>(c)]);
    for (std::size_t i = 0; i + 1 < ids.size(); ++i) rank.push_back(merge(ids[i], ids[i + 1]));
    while (ids.size() > 1) {
      const Merge* best = nullptr;
      for (const Merge* m : rank)
        if (m && (!best || m->rank < best->rank)) best = m;
      if (!best) break;
      // Every occurrence of the best pair, left to right, becomes its result.
      next_ids.clear();
      next_rank.clear();
      bool fresh_before = false;  // whether next_ids.back() was just made
      for (std::size_t i = 0; i < ids.size();) {
        const bool hit = i + 1 < ids.size() && ids[i] == best->first && ids[i + 1] == best->second;
        const std::int32_t id = hit ? best->result : ids[i];
        if (!next_ids.empty())  // the pair (previous, this): unchanged unless either side was just made
          next_rank.push_back(hit || fresh_before ? merge(next_ids.back(), id) : rank[i - 1]);
        next_ids.push_back(id);
        fresh_before = hit;
        i += hit ? 2 : 1;
      }
      ids.swap(next_ids);
      rank.swap(next_rank);
    }
    Word w;
    for (const std::int32_t id : ids) {
      const std::string& piece = symbols[static_cast<std::size_t>(id)];
      auto it = encoder.find(piece);
      if (it == encoder.end()) throw UsageError("text", "BPE token " + nlohmann::json(piece).dump() + " is not in encoder.json");
      w.ids.push_back(it->second);
      w.pieces.push_back(piece);
    }
    std::lock_guard<std::mutex> lock(mutex);
    return words.emplace(pre_token, std::move(w)).first->second;
  }

  // gpt2_bpe_pre_tokenizer, calling `emit` with each pre-token.
  template <class Emit>
  static void pre_tokens(std::string_view text, Emit emit) {
    check_utf8(text);
    const RE2& re = gpt2_pattern();
    const re2::StringPiece all(text.data(), text.size());
    re2::StringPiece match;
    std::size_t pos = 0;
    bool prepend_space = false;
    std::string token;
    // Every character belongs to one of the alternatives, so each match starts where the last one ended: an
    // anchored match (one forward DFA pass) finds it; the unanchored search stays as the fallback.
    while (pos < all.size() && (re.Match(all, pos, all.size(), RE2::ANCHOR_START, &match, 1) ||
                                re.Match(all, pos, all.size(), RE2::UNANCHORED, &match, 1))) {
      if (match.empty()) break;  // no alternative matches the empty string; a guard all the same
      pos = static_cast<std::size_t>(match.data() + match.size() - all.data());
      token.assign(match.data(), match.size());
      if (is_whitespace(token)) {
        prepend_space = false;
        if (pos == all.size()) {
          emit(token);
        } else {
          if (token.size() > 1) emit(token.substr(0, token.size() - 1));
          if (token.back() == ' ') prepend_space = true;
          else emit(token.substr(token.size() - 1));
        }
      } else if (prepend_space) {
        emit(" " + token);
        prepend_space = false;
      } else {
        emit(token);
      }
    }
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
    std::vector<std::string> pair;
    for (std::string part; parts >> part;) pair.push_back(part);
    // torchtext keys a merge by its parts joined with "\x01"; only two-part lines can ever match a pair
    if (pair.size() != 2) continue;
    const std::int32_t a = impl_->intern(pair[0]), b = impl_->intern(pair[1]);
    const std::int32_t result = impl_->intern(pair[0] + pair[1]);
    impl_->merges[Impl::pair_key(a, b)] = {static_cast<std::int64_t>(i - 1), a, b, result};  // a later duplicate wins
  }
  for (const std::string& byte : impl_->byte_encoder) impl_->byte_symbols.push_back(impl_->intern(byte));
  impl_->build_table();
}

GPT2BPETokenizer::~GPT2BPETokenizer() = default;

std::size_t GPT2BPETokenizer::vocab_size() const { return impl_->encoder.size(); }

// gpt2_bpe_pre_tokenizer: RE2 matches, then whitespace runs give their last space to the next token.
std::vector<std::string> GPT2BPETokenizer::pre_tokenize(std::string_view text) {
  std::vector<std::string> tokens;
  Impl::pre_tokens(text, [&](const std::string& t) { tokens.push_back(t); });
  return tokens;
}

Encoding GPT2BPETokenizer::encode(std::string_view text) const {
  Encoding out;
  Impl::pre_tokens(text, [&](const std::string& pre) {
    const Impl::Word& w = impl_->bpe(pre);
    out.ids.insert(out.ids.end(), w.ids.begin(), w.ids.end());
    out.pieces.insert(out.pieces.end(), w.pieces.begin(), w.pieces.end());
  });
  return out;
}

std::vector<std::int64_t> GPT2BPETokenizer::ids(std::string_view text) const {
  std::vector<std::int64_t> out;
  Impl::pre_tokens(text, [&](const std::string& pre) {
    const Impl::Word& w = impl_->bpe(pre);
    out.insert(out.end(), w.ids.begin(), w.ids.end());
  });
  return out;
}

std::vector<std::string> GPT2BPETokenizer::tokens(std::string_view text) const {
  std::vector<std::string> out;
  for (std::int64_t id : ids(text)) out.push_back(std::to_string(id));
  return out;
}

}  // namespace mz::text
