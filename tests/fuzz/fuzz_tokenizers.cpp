// libFuzzer target: tokenizer assets and the text they encode. The first byte picks what the rest is:
//   0  GPT-2 BPE: encoder.json, vocab.bpe and a text, separated by the bytes FF FF
//   1  SentencePiece: a model (serialized protobuf) and a text, separated by FF FF
//   2  a torchtext vocab.pt (torch.save of a Vocab), read through the restricted unpickler
// An asset that does not parse is mz::CheckpointError naming its file; a text that cannot be encoded is
// mz::UsageError; an encoding has as many ids as pieces, each in the vocabulary. Anything else is a bug.
#include <fstream>
#include <limits>

#include "harness.h"
#include "modelzoo/text/tokenizers.h"
#include "weights/checkpoint/formats/formats.h"

namespace {
using mz_fuzz::fail;

std::string temp_file(const std::string& name, const std::string& bytes) {
  const std::string path = mz_fuzz::temp_path(name);
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

std::vector<std::string> split(const std::string& input, std::size_t parts) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t at; out.size() + 1 < parts && (at = input.find("\xff\xff", start)) != std::string::npos; start = at + 2)
    out.push_back(input.substr(start, at - start));
  out.push_back(input.substr(start));
  out.resize(parts);
  return out;
}

void check_encoding(const mz::text::Encoding& e, std::int64_t vocab_size) {
  if (e.ids.size() != e.pieces.size()) fail("ids and pieces differ in length");
  for (std::int64_t id : e.ids)
    if (id < 0 || id >= vocab_size) fail("id " + std::to_string(id) + " outside [0, " + std::to_string(vocab_size) + ")");
}

void gpt2(const std::string& input) {
  const std::vector<std::string> parts = split(input, 3);
  const std::string encoder = temp_file("encoder.json", parts[0]), merges = temp_file("vocab.bpe", parts[1]);
  std::unique_ptr<mz::text::GPT2BPETokenizer> tokenizer;
  try {
    tokenizer = std::make_unique<mz::text::GPT2BPETokenizer>(encoder, merges);
  } catch (const mz::CheckpointError& e) {
    if (e.file() != encoder && e.file() != merges) fail(std::string("error does not name the asset: ") + e.what());
    return;
  }
  try {
    const mz::text::Encoding e = tokenizer->encode(parts[2]);
    if (e.ids != tokenizer->ids(parts[2])) fail("encode() and ids() disagree");
    check_encoding(e, std::numeric_limits<std::int64_t>::max());  // GPT-2's ids are encoder.json's, never negative
  } catch (const mz::UsageError&) {
  }
}

void sentencepiece(const std::string& input) {
  const std::vector<std::string> parts = split(input, 2);
  const std::string model = temp_file("spm.model", parts[0]);
  std::unique_ptr<mz::text::SentencePieceTokenizer> tokenizer;
  try {
    tokenizer = std::make_unique<mz::text::SentencePieceTokenizer>(model);
  } catch (const mz::CheckpointError& e) {
    if (e.file() != model) fail(std::string("error does not name the model: ") + e.what());
    return;
  }
  try {
    const mz::text::Encoding e = tokenizer->encode(parts[1]);
    check_encoding(e, tokenizer->piece_size());
    tokenizer->decode(e.ids);
  } catch (const mz::UsageError&) {
  }
}

void vocab(const std::string& input) {
  try {
    const mz::formats::TorchtextVocab v = mz::formats::parse_torchtext_vocab(
        {reinterpret_cast<const std::uint8_t*>(input.data()), input.size()}, "fuzz-input");
    if (v.has_default_index && (v.default_index < 0 || v.default_index >= static_cast<std::int64_t>(v.itos.size())))
      fail("default index " + std::to_string(v.default_index) + " outside the vocabulary");
  } catch (const mz::CheckpointError& e) {
    if (e.file() != "fuzz-input") fail(std::string("error does not name the file: ") + e.what());
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: gpt2(rest); break;
    case 1: sentencepiece(rest); break;
    default: vocab(rest); break;
  }
  return 0;
}
