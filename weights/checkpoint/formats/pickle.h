// Restricted unpickler for torch.save checkpoints (zip and legacy). Values live in one flat arena
// and refer to each other by index, so nothing recurses over the value tree, not even destruction.
// Only a fixed allow-list of globals can be referenced; anything else is refused.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "weights/checkpoint/formats/reader.h"
#include "weights/checkpoint/formats/formats.h"

namespace mz::formats::pickle {

inline constexpr std::uint32_t kMaxDepth = 1000;       // container nesting and MARK depth
inline constexpr std::size_t kMaxStack = 1u << 20;      // stack entries
inline constexpr std::size_t kMaxMemo = 1u << 20;       // memo entries
inline constexpr std::size_t kMaxValues = 1u << 22;     // values created by one pickle

enum class Kind : std::uint8_t { None, Bool, Int, BigInt, Float, Str, Bytes, Tuple, List, Dict, Global, Storage, Tensor,
                                Object };
const char* kind_name(Kind);

// The allowed globals. TorchtextVocab and Set serve torchtext's saved Vocab (its bundles' vocab.pt):
// the nn.Module torchtext.vocab.vocab.Vocab and the object torchtext._torchtext.Vocab it wraps, each
// made with no arguments and given its state by BUILD (an Object), and a module's set (builtins.set,
// spelled __builtin__.set at protocol 2).
enum class Global : std::uint8_t { OrderedDict, RebuildTensorV2, RebuildTensor, RebuildParameter, StorageType,
                                   TorchtextVocab, Set };

struct Value {
  Kind kind = Kind::None;
  std::uint32_t depth = 1;            // container nesting depth, 1 for scalars
  std::int64_t num = 0;               // Bool, Int; Global: a Global; Storage: caller's storage index;
                                      // Tensor: index into Pickle::tensors
  double real = 0;                    // Float
  DType dtype = DType::Float32;       // Global StorageType, Storage
  std::string text;                   // Str, Bytes; BigInt: little-endian two's complement bytes
  std::vector<std::uint32_t> items;   // Tuple, List; Dict: key, value, key, value, ...; Object: its state
                                      // (Object: text is its class, "torchtext._torchtext.Vocab")
};

struct TensorRef {
  std::uint32_t storage = 0;          // value index of a Kind::Storage value
  std::int64_t storage_offset = 0;
  std::vector<std::int64_t> shape, strides;
};

// Persistent id ('storage', <storage type>, key, location, numel[, view_metadata]); view_metadata
// is None or (view_key, offset, size) in legacy files.
struct StorageRef {
  DType dtype = DType::Float32;
  std::string key;
  std::int64_t numel = 0;
  bool is_view = false;
  std::int64_t view_offset = 0, view_size = 0;
};
// Maps a persistent id to an index in the caller's storage table.
using StorageLoader = std::function<std::int64_t(const StorageRef&)>;

struct Pickle {
  std::vector<Value> values;
  std::vector<TensorRef> tensors;
  std::uint32_t root = 0;
  const Value& operator[](std::uint32_t i) const { return values[i]; }
};

// Reads one pickle from the reader's position up to and including STOP.
Pickle unpickle(detail::Reader& r, const StorageLoader& load);

// A torch storage located in the file.
struct StorageSpan {
  DType dtype = DType::Float32;
  std::uint64_t offset = 0, size = 0;  // bytes, absolute in the file
  std::string name;                    // for messages, e.g. "archive/data/3"
};

// Turns the unpickled state dict (flat, or nested under "state_dict"/"model_state_dict"/"model") into a validated
// Description; Storage values index `storages`.
Description describe_state_dict(Format format, const Pickle& p, const std::vector<StorageSpan>& storages,
                                 std::size_t file_size, const std::string& file);

// A torchtext Vocab in the unpickled torch.save file (the nn.Module torchtext.vocab.vocab.Vocab whose
// "vocab" attribute holds the state (version >= "0.0.2", [default_index]?, itos, [])).
TorchtextVocab describe_torchtext_vocab(const Pickle& p, const std::string& file);

}  // namespace mz::formats::pickle
