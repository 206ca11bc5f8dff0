// Checkpoints: torch.save zip, legacy torch.save and safetensors, read into modules.
//
//   auto report = mz::load_checkpoint(*model, "resnet50.pth");         // strict: throws mz::LoadError
//   auto report = mz::load_checkpoint(*model, f, {.strict = false});   // report.missing, .unexpected, ...
//   mz::save_safetensors("out.safetensors", mz::read_checkpoint("in.pth"));
//
// Parameters are filled straight from the mapped file (no intermediate tensors when dtypes agree),
// or are the mapped file's pages themselves (LoadOptions::storage, Storage::Map).
// Untrusted input: parse failures throw mz::CheckpointError naming the file and the reason.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>

#include "modelzoo/weights.h"

namespace mz {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

// Where loaded parameters live. Copy: in memory of their own (the file may change afterwards).
// Map: in the file's pages, mapped copy-on-write: no copy and no fresh memory, pages shared by every
// process that maps the same file, and writes (fine-tuning) copy only the pages they touch. The file
// must then not be truncated or rewritten in place while the model lives (it may be deleted or
// replaced by rename). Tensors the file cannot back (another dtype, unaligned data) are copied.
// Auto: Map for weights loaded through the hub (load_weights, builders given weights), whose cache
// files are only ever replaced by rename; Copy for a file named by path (load_checkpoint).
enum class Storage { Auto, Copy, Map };

struct LoadOptions {
  bool strict = true;                 // any missing, unexpected or mismatched key is an error
  bool strip_module_prefix = false;   // "module.layer1..." (DataParallel) -> "layer1..."
  std::vector<std::string> skip;      // fnmatch globs of module keys not loaded (e.g. "fc.*": a new head)
  bool reinit_skipped = true;         // give layers with skipped tensors PyTorch's default init
  std::function<std::string(const std::string&)> rename;  // checkpoint key -> module key
  Storage storage = Storage::Auto;
};

struct LoadReport {
  std::string file;
  std::vector<std::string> loaded;
  std::vector<std::string> missing;     // in the module, not in the checkpoint
  std::vector<std::string> unexpected;  // in the checkpoint, not in the module
  std::vector<std::string> mismatched;  // "name: checkpoint [a, b] vs module [c, d]"
  std::vector<std::string> skipped;     // matched LoadOptions::skip
  std::vector<std::string> mapped;      // loaded keys backed by the file's pages (Storage::Map)
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string summary() const;          // every problem key, by name
};

// An opened (memory-mapped, parsed) checkpoint.
class Checkpoint {
 public:
  explicit Checkpoint(const std::string& path);
  ~Checkpoint();
  Checkpoint(Checkpoint&&) noexcept;
  const std::string& path() const;
  std::string format() const;  // "torch-zip", "torch-legacy" or "safetensors"
  std::vector<std::string> names() const;
  torch::Tensor tensor(const std::string& name) const;  // an owned copy
  NamedTensors tensors() const;                          // every tensor, owned, in file order
  LoadReport load_into(torch::nn::Module& module, const LoadOptions& options = {}) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

NamedTensors read_checkpoint(const std::string& path);
LoadReport load_checkpoint(torch::nn::Module& module, const std::string& path, const LoadOptions& options = {});
// Fetches the weights through the hub (download, verify, cache) and loads them.
LoadReport load_weights(torch::nn::Module& module, const Weights& weights, const LoadOptions& options = {});

// Inside this scope, builders build the architecture (for the given weights' configuration, if
// any) but neither initialise nor load parameters, and download nothing: their values are
// undefined until the caller fills them, e.g. with a strict load_checkpoint. Used to load a
// checkpoint file without paying for random init, and to count each weight's parameters. Per thread.
class ArchitectureOnly {
 public:
  ArchitectureOnly();
  ~ArchitectureOnly();
  ArchitectureOnly(const ArchitectureOnly&) = delete;
  ArchitectureOnly& operator=(const ArchitectureOnly&) = delete;

 private:
  bool previous_;
};
bool architecture_only();

// Writes tensors (any dtype; made contiguous) as safetensors, atomically (temp file + rename).
void save_safetensors(const std::string& path, const NamedTensors& tensors,
                      const std::vector<std::pair<std::string, std::string>>& metadata = {});

}  // namespace mz
