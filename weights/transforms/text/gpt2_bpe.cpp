// GPT-2 byte-level BPE, as torchtext 0.14.1's csrc/gpt2_bpe_tokenizer.cpp computes it.
#include <atomic>
#include <deque>
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

// torchtext's pre-tokenisation pattern, \'s|\'t|\'re|\'ve|\'m|\'ll|\'d| ?\pL+| ?\pN+| ?[^\s\v\pL\pN]+|[\s\v]+ in
// RE2's leftmost-first semantics, as a scanner over character classes: every code point is in exactly one of
// [\s\v], \pL, \pN or the rest, so a match starts wherever the last one ended. RE2 itself classifies each code
// point once (its Unicode tables are the pattern's), and the classes of the basic plane are kept.
enum CharClass : std::uint8_t { kUnknown, kSpace, kLetter, kNumber, kOther };

CharClass classify_with_re2(std::uint32_t cp) {
  static const RE2 space("[\\s\\v]"), letter("\\pL"), number("\\pN");
  std::string s;
  if (cp < 0x80) {
    s = {static_cast<char>(cp)};
  } else if (cp < 0x800) {
    s = {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
  } else if (cp < 0x10000) {
    s = {static_cast<char>(0xE0 | (cp >> 12)), static_cast<char>(0x80 | ((cp >> 6) & 0x3F)),
         static_cast<char>(0x80 | (cp & 0x3F))};
  } else {
    s = {static_cast<char>(0xF0 | (cp >> 18)), static_cast<char>(0x80 | ((cp >> 12) & 0x3F)),
         static_cast<char>(0x80 | ((cp >> 6) & 0x3F)), static_cast<char>(0x80 | (cp & 0x3F))};
  }
  if (RE2::FullMatch(s, space)) return kSpace;
  if (RE2::FullMatch(s, letter)) return kLetter;
  if (RE2::FullMatch(s, number)) return kNumber;
  return kOther;
}

CharClass classify(std::uint32_t cp) {
  static std::atomic<std::uint8_t> basic_plane[0x10000];  // kUnknown until first seen
  if (cp >= 0x10000) return classify_with_re2(cp);
  auto c = static_cast<CharClass>(basic_plane[cp].load(std::memory_order_relaxed));
  if (c == kUnknown) basic_plane[cp].store(c = classify_with_re2(cp), std::memory_order_relaxed);
  return c;
}

// The code point at `pos` of valid UTF-8 (check_utf8) and its length in bytes.
std::pair<std::uint32_t, std::size_t> decode(std::string_view t, std::size_t pos) {
  const auto b = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(t[pos + k])); };
  const std::uint32_t c = b(0);
  if (c < 0x80) return {c, 1};
  if (c < 0xE0) return {((c & 0x1F) << 6) | (b(1) & 0x3F), 2};
  if (c < 0xF0) return {((c & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F), 3};
  return {((c & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F), 4};
}

// Where the pattern's match at `pos` ends.
std::size_t match_end(std::string_view t, std::size_t pos) {
  const auto [c0, n0] = decode(t, pos);
  if (c0 == '\'') {
    for (std::string_view suffix : {"s", "t", "re", "ve", "m", "ll", "d"})
      if (t.substr(pos + 1, suffix.size()) == suffix) return pos + 1 + suffix.size();
  }
  CharClass cls = classify(c0);
  std::size_t end = pos;
  if (c0 == ' ' && pos + 1 < t.size()) {  // ` ?` before a letter, number or other run
    const CharClass next = classify(decode(t, pos + 1).first);
    if (next != kSpace) cls = next, end = pos + 1;
  }
  while (end < t.size()) {
    const auto [c, n] = decode(t, end);
    if (classify(c) != cls) break;
    end += n;
  }
  return end;
}

bool is_whitespace(std::string_view s) {
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
    std::int32_t rank, result;
  };
  std::vector<std::int32_t> byte_symbols;  // each byte's symbol (bytes_to_unicode), interned
  std::unordered_map<std::uint64_t, Merge> merges;
  // The merges again as an open-addressed table (power-of-two size, linear probing) for the hot lookup, each
  // slot holding its pair, rank and result: one cache line per lookup (a standard map costs a division and
  // three scattered reads).
  struct Slot {
    std::uint64_t key;  // pair_key + 1; 0 = empty
    std::int32_t rank, result;
  };
  std::vector<Slot> table;
  void build_table() {
    std::size_t size = 16;
    while (size < 2 * merges.size()) size *= 2;
    table.assign(size, Slot{0, 0, 0});
    for (const auto& [key, m] : merges) {
      std::size_t i = slot(key);
      while (table[i].key != 0) i = (i + 1) & (size - 1);
      table[i] = {key + 1, m.rank, m.result};
    }
  }
  std::size_t slot(std::uint64_t key) const {
    return static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ULL) >> 20) & (table.size() - 1);
  }

  std::int32_t intern(const std::string& s) {
    auto [it, added] = symbol_ids.emplace(s, static_cast<std::int32_t>(symbols.size()));
    if (added) symbols.push_back(s);
    return it->second;
  }
  static std::uint64_t pair_key(std::int32_t a, std::int32_t b) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) | static_cast<std::uint32_t>(b);
  }
  const Slot* merge(std::int32_t a, std::int32_t b) const {
    const std::uint64_t key = pair_key(a, b);
    for (std::size_t i = slot(key);; i = (i + 1) & (table.size() - 1)) {
      if (table[i].key == key + 1) return &table[i];
      if (table[i].key == 0) return nullptr;
    }
  }

  std::vector<std::int64_t> symbol_encoder_ids;  // each symbol's id in encoder.json, or -1

  // The cache of BPE results by pre-token, as torchtext keeps one: a word's final symbols are words_symbols
  // [begin, begin + size); the keys view word_texts (a deque: its strings never move).
  struct Word {
    std::uint32_t begin, size;
  };
  mutable std::deque<std::string> word_texts;
  mutable std::unordered_map<std::string_view, Word> words;
  mutable std::vector<std::int32_t> word_symbols;

  // Calls each(symbol) with the BPE symbols of `pre_token`, in order.
  template <class Each>
  void bpe(std::string_view pre_token, Each each) const {
    const auto replay = [&](const Word& w) {
      for (std::uint32_t i = 0; i < w.size; ++i) each(word_symbols[w.begin + i]);
    };
    {
      std::lock_guard<std::mutex> lock(mutex);
      auto it = words.find(pre_token);
      if (it != words.end()) return replay(it->second);
    }
    const std::vector<std::int32_t>& merged = merge_all(pre_token);
    for (const std::int32_t id : merged)
      if (symbol_encoder_ids[static_cast<std::size_t>(id)] < 0)
        throw UsageError("text", "BPE token " + nlohmann::json(symbols[static_cast<std::size_t>(id)]).dump() +
                                     " is not in encoder.json");
    std::lock_guard<std::mutex> lock(mutex);
    auto it = words.find(pre_token);  // another thread may have added it meanwhile
    if (it == words.end()) {
      const std::string_view key = word_texts.emplace_back(pre_token);
      it = words.emplace(key, Word{static_cast<std::uint32_t>(word_symbols.size()),
                                   static_cast<std::uint32_t>(merged.size())}).first;
      word_symbols.insert(word_symbols.end(), merged.begin(), merged.end());
    }
    replay(it->second);
  }

  // BPE_: merge the lowest-ranked adjacent pair everywhere, left to right, until none is ranked. The word is
  // symbol ids (every byte's symbol is interned): merging touches integers only. rank[i] is the merge of
  // (ids[i], ids[i + 1]) or null; a merge looks up only the pairs next to the symbols it made. The result is
  // the calling thread's scratch vector.
  struct Scratch {
    std::vector<std::int32_t> ids, next_ids;
    std::vector<const Slot*> rank, next_rank;
  };
  // Out of line, so that merge_all looks its scratch up once: GCC recomputes a thread_local's address at
  // each use, and in a shared library that is a call to __tls_get_addr (17% of the tokenising time).
  [[gnu::noinline]] static Scratch& thread_scratch() {
    thread_local Scratch scratch;
    return scratch;
  }
  const std::vector<std::int32_t>& merge_all(std::string_view pre_token) const {
    Scratch& s = thread_scratch();
    auto &ids = s.ids, &next_ids = s.next_ids;
    auto &rank = s.rank, &next_rank = s.next_rank;
    ids.clear();
    rank.clear();
    for (char c : pre_token) ids.push_back(byte_symbols[static_cast<unsigned char>(c)]);
    for (std::size_t i = 0; i + 1 < ids.size(); ++i) rank.push_back(merge(ids[i], ids[i + 1]));
    while (ids.size() > 1) {
      const Slot* best = nullptr;
      for (const Slot* m : rank)
        if (m && (!best || m->rank < best->rank)) best = m;
      if (!best) break;
      const std::uint64_t best_pair = best->key - 1;
      // Every occurrence of the best pair, left to right, becomes its result.
      next_ids.clear();
      next_rank.clear();
      bool fresh_before = false;  // whether next_ids.back() was just made
      for (std::size_t i = 0; i < ids.size();) {
        const bool hit = i + 1 < ids.size() && pair_key(ids[i], ids[i + 1]) == best_pair;
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
    return ids;
  }

  // gpt2_bpe_pre_tokenizer, calling `emit` with each pre-token (a view into `text`).
  template <class Emit>
  static void pre_tokens(std::string_view text, Emit emit) {
    check_utf8(text);
    bool prepend_space = false;
    for (std::size_t pos = 0, end; pos < text.size(); pos = end) {
      end = match_end(text, pos);
      const std::string_view token = text.substr(pos, end - pos);
      if (is_whitespace(token)) {  // a run gives its last space to the next token
        prepend_space = false;
        if (end == text.size()) {
          emit(token);
        } else {
          if (token.size() > 1) emit(token.substr(0, token.size() - 1));
          if (token.back() == ' ') prepend_space = true;
          else emit(token.substr(token.size() - 1));
        }
      } else if (prepend_space) {
        emit(text.substr(pos - 1, end - pos + 1));  // the space is the byte before
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
    if (!id.is_number_integer() || id.get<std::int64_t>() < 0)
      throw CheckpointError(encoder_json_path, "not a GPT-2 encoder.json: the id of " + nlohmann::json(token).dump() +
                                                   " is not a non-negative integer");
    impl_->encoder.emplace(token, id.get<std::int64_t>());
  }
  // torchtext: {"\x01".join(line.split()): i for i, line in enumerate(text.split("\n")[1:-1])}
  const std::string merges = read_asset(vocab_bpe_path);
  try {
    check_utf8(merges);
  } catch (const UsageError& e) {
    throw CheckpointError(vocab_bpe_path, "not a GPT-2 vocab.bpe: " + e.reason());
  }
  std::vector<std::string> lines;
  std::size_t start = 0;
  for (std::size_t nl; (nl = merges.find('\n', start)) != std::string::npos; start = nl + 1)
    lines.push_back(merges.substr(start, nl - start));
  lines.push_back(merges.substr(start));
  if (lines.size() < 2 || lines[0].rfind("#version", 0) != 0)
    throw CheckpointError(vocab_bpe_path, "not a GPT-2 vocab.bpe: no '#version' header line");
  if (lines.size() > (std::size_t{1} << 30)) throw CheckpointError(vocab_bpe_path, "not a GPT-2 vocab.bpe: too many lines");
  for (std::size_t i = 1; i + 1 < lines.size(); ++i) {
    std::istringstream parts(lines[i]);
    std::vector<std::string> pair;
    for (std::string part; parts >> part;) pair.push_back(part);
    // torchtext keys a merge by its parts joined with "\x01"; only two-part lines can ever match a pair
    if (pair.size() != 2) continue;
    const std::int32_t a = impl_->intern(pair[0]), b = impl_->intern(pair[1]);
    const std::int32_t result = impl_->intern(pair[0] + pair[1]);
    impl_->merges[Impl::pair_key(a, b)] = {static_cast<std::int32_t>(i - 1), result};  // a later duplicate wins
  }
  for (const std::string& byte : impl_->byte_encoder) impl_->byte_symbols.push_back(impl_->intern(byte));
  impl_->build_table();
  for (const std::string& symbol : impl_->symbols) {
    auto it = impl_->encoder.find(symbol);
    impl_->symbol_encoder_ids.push_back(it == impl_->encoder.end() ? -1 : it->second);
  }
}

GPT2BPETokenizer::~GPT2BPETokenizer() = default;

std::size_t GPT2BPETokenizer::vocab_size() const { return impl_->encoder.size(); }

// gpt2_bpe_pre_tokenizer: RE2 matches, then whitespace runs give their last space to the next token.
std::vector<std::string> GPT2BPETokenizer::pre_tokenize(std::string_view text) {
  std::vector<std::string> tokens;
  Impl::pre_tokens(text, [&](std::string_view t) { tokens.emplace_back(t); });
  return tokens;
}

Encoding GPT2BPETokenizer::encode(std::string_view text) const {
  Encoding out;
  Impl::pre_tokens(text, [&](std::string_view pre) {
    impl_->bpe(pre, [&](std::int32_t symbol) {
      out.ids.push_back(impl_->symbol_encoder_ids[static_cast<std::size_t>(symbol)]);
      out.pieces.push_back(impl_->symbols[static_cast<std::size_t>(symbol)]);
    });
  });
  return out;
}

std::vector<std::int64_t> GPT2BPETokenizer::ids(std::string_view text) const {
  std::vector<std::int64_t> out;
  Impl::pre_tokens(text, [&](std::string_view pre) {
    impl_->bpe(pre, [&](std::int32_t symbol) { out.push_back(impl_->symbol_encoder_ids[static_cast<std::size_t>(symbol)]); });
  });
  return out;
}

std::vector<std::string> GPT2BPETokenizer::tokens(std::string_view text) const {
  std::vector<std::string> out;
  for (std::int64_t id : ids(text)) out.push_back(std::to_string(id));
  return out;
}

}  // namespace mz::text
