// LibTorch-free checkpoint parsers. They turn the bytes of a file into plain tensor descriptions
// (name, dtype, shape, strides, byte range); weights/checkpoint/loader.cpp turns those into tensors.
// Every function here treats its input as hostile: all offsets and sizes are bounds-checked, and
// failures throw mz::CheckpointError(file, reason). Nothing here may crash, read out of bounds,
// recurse without bound or allocate without bound on any input. Built into the sanitizer and fuzz
// targets on its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "modelzoo/errors.h"

namespace mz::formats {

struct ByteView {
  const std::uint8_t* data = nullptr;
  std::size_t size = 0;
};

enum class DType { Float32, Float64, Float16, BFloat16, Int64, Int32, Int16, Int8, UInt8, Bool };

std::size_t dtype_size(DType);
// safetensors spelling: "F32", "F64", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL".
const char* safetensors_dtype_name(DType);

struct TensorDesc {
  std::string name;                 // state-dict key, e.g. "layer1.0.conv1.weight"
  DType dtype = DType::Float32;
  std::vector<std::int64_t> shape;   // empty for a scalar
  std::vector<std::int64_t> strides; // in elements, same length as shape, all >= 0
  std::int64_t storage_offset = 0;   // in elements, into the storage
  std::uint64_t data_offset = 0;     // byte offset of the storage's first byte in the file
  std::uint64_t data_size = 0;       // bytes in the storage
};
// Guaranteed by every parser for every returned TensorDesc: data_offset + data_size <= file size,
// data_size is a multiple of dtype_size, and every element the view addresses
// (storage_offset + sum((shape[i]-1)*strides[i]) when all shape[i] > 0) lies inside the storage.
// Names are unique.

enum class Format { TorchZip, TorchLegacy, Safetensors };
const char* format_name(Format);  // "torch-zip", "torch-legacy", "safetensors"

struct Description {
  Format format;
  std::vector<TensorDesc> tensors;  // in file (state-dict) order
};

// Detects the format from the magic bytes (zip local header "PK\x03\x04"; legacy pickle magic
// number; otherwise safetensors) and parses. `file` is only used in error messages.
Description parse_checkpoint(ByteView bytes, const std::string& file);

Description parse_torch_zip(ByteView bytes, const std::string& file);
Description parse_torch_legacy(ByteView bytes, const std::string& file);
Description parse_safetensors(ByteView bytes, const std::string& file);

// State dicts nested in a dict are accepted under the keys "state_dict", "model_state_dict" (PyTorch's
// tutorials) and "model", in that order (as training checkpoints store them); anything else that is not a flat name -> tensor mapping is an error.

// torchtext's Vocab as torch.save'd (zip format) in its bundles (xlmr.vocab.pt, roberta.vocab.pt): the
// tokens in index order and the default index, if set. Read through the same restricted unpickler.
struct TorchtextVocab {
  std::vector<std::string> itos;
  bool has_default_index = false;
  std::int64_t default_index = 0;
};
TorchtextVocab parse_torchtext_vocab(ByteView bytes, const std::string& file);

// safetensors writer: returns the complete header block (8-byte little-endian length + JSON padded
// with spaces to a multiple of 8). `tensors` gives name, dtype, shape, and data_offset/data_size
// relative to the start of the data section; strides and storage_offset are ignored (data is
// contiguous). metadata is written as "__metadata__" when non-empty.
std::string safetensors_header(const std::vector<TensorDesc>& tensors,
                               const std::vector<std::pair<std::string, std::string>>& metadata = {});

}  // namespace mz::formats
