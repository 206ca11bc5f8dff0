// GPT-2 pre-tokenisation: modelzoo's scanner against torchtext's own RE2 pattern on random strings of the
// characters where the pattern's alternatives meet (letters, numbers and other characters from both planes,
// ASCII and Unicode whitespace, combining marks, contractions and near-contractions).
#include <random>

#include <doctest/doctest.h>
#include <re2/re2.h>

#include "modelzoo/text/tokenizers.h"

namespace {

// torchtext 0.14.1's gpt2_bpe_pre_tokenizer: RE2 matches of its pattern; a whitespace run gives its last space
// to the next token.
std::vector<std::string> reference(const std::string& text) {
  static const RE2 re("(\\'s|\\'t|\\'re|\\'ve|\\'m|\\'ll|\\'d| ?\\pL+| ?\\pN+| ?[^\\s\\v\\pL\\pN]+|[\\s\\v]+)");
  re2::StringPiece input(text), match;
  std::vector<std::string> out;
  bool prepend_space = false;
  while (RE2::FindAndConsume(&input, re, &match)) {
    std::string token(match);
    if (token.find_first_not_of(" \t\n\v\f\r") == std::string::npos) {
      prepend_space = false;
      if (input.empty()) {
        out.push_back(token);
        continue;
      }
      if (token.size() > 1) out.push_back(token.substr(0, token.size() - 1));
      if (token.back() == ' ') prepend_space = true;
      else out.push_back(token.substr(token.size() - 1));
    } else {
      out.push_back(prepend_space ? " " + token : token);
      prepend_space = false;
    }
  }
  return out;
}

}  // namespace

TEST_CASE("the pre-tokenizer equals torchtext's RE2 pattern on 20,000 random strings") {
  const std::vector<std::string> pieces = {
      "a", "Z", "\xC3\xA9", "\xC3\x9F", "\xD0\x96", "\xE4\xB8\xAD",        // letters: é ß Ж 中
      "7", "\xD9\xA3", "\xC2\xB2", "\xE2\x85\xAB",                          // numbers: ٣ (Nd) ² (No) Ⅻ (Nl)
      "\xF0\x9D\x90\x80", "\xF0\x9D\x9F\x98", "\xF0\x9F\x98\x80",           // 𝐀 (Lu), 𝟘 (Nd), 😀 (So)
      " ", "  ", "\t", "\n", "\v", "\f", "\r",                                 // RE2's \s and \v
      "\xC2\xA0", "\xE2\x80\xA8", "\xE3\x80\x80", "\xC2\x85",               // Unicode spaces: not \s in RE2
      "\xCC\x81", "!", ".", "-", "_", "'", "\xE2\x80\x99",                  // a combining mark, punctuation
      "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'r", "'v", "'l"};
  std::mt19937 rng(13);
  for (int i = 0; i < 20000; ++i) {
    std::string text;
    for (int n = std::uniform_int_distribution<int>(0, 12)(rng); n > 0; --n)
      text += pieces[std::uniform_int_distribution<std::size_t>(0, pieces.size() - 1)(rng)];
    const std::vector<std::string> expected = reference(text);
    const std::vector<std::string> got = mz::text::GPT2BPETokenizer::pre_tokenize(text);
    if (got != expected) {
      CAPTURE(text);
      CHECK(got == expected);
      break;
    }
  }
  CHECK(mz::text::GPT2BPETokenizer::pre_tokenize("") == std::vector<std::string>{});
  CHECK(mz::text::GPT2BPETokenizer::pre_tokenize("Hello world's  end \n") ==
        std::vector<std::string>{"Hello", " world", "'s", " ", " end", " \n"});
}
