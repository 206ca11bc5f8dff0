// Checkpoints: torch.save zip, legacy torch.save and safetensors, read into modules.
//
//   auto report = mz::load_checkpoint(*model, "resnet50.pth");         // strict: throws mz::LoadError
//   auto report = mz::load_checkpoint(*model, f, {.strict = false});   // report.missing, .unexpected, ...
//   mz::save_safetensors("out.safetensors", mz::read_checkpoint("in.pth"));
//
// Parameters are filled straight from the mapped file (no intermediate tensors when dtypes agree),
// or are the mapped file's pages themselves (LoadOptions::storage, Storage::Map).
// Untrusted input: parse failures throw mz::CheckpointError naming the file and the reason.
//
// Every load, whatever its entry point, lets the module adapt the incoming tensors first
// (CheckpointAdapter below): old upstream files load as they do in PyTorch.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>

#include "modelzoo/tensor_dict.h"
#include "modelzoo/weights.h"

namespace mz {

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

namespace detail {
struct StateAccess;  // weights/checkpoint/loader.cpp
}  // namespace detail

// The tensors a load is about to match against a module, as a CheckpointAdapter sees and changes
// them: the state_dict argument of PyTorch's _load_from_state_dict. Keys are module keys (after
// LoadOptions::strip_module_prefix and ::rename). An entry is a tensor of the file, read only when
// asked for, or a tensor an adapter set.
class IncomingState {
 public:
  const std::string& file() const;  // the checkpoint's path ("" for tensors in memory)
  bool contains(const std::string& key) const;
  std::vector<std::string> keys() const;                          // file order, then added keys
  std::vector<std::int64_t> shape(const std::string& key) const;  // without reading the tensor
  torch::Tensor read(const std::string& key) const;               // an owned copy
  void set(const std::string& key, torch::Tensor value);          // adds or replaces an entry
  void rename(const std::string& from, const std::string& to);    // a no-op when `from` is absent
  void erase(const std::string& key);
  const std::vector<std::string>& adapted() const;                // keys set or renamed, in order

  ~IncomingState();
  IncomingState(const IncomingState&) = delete;
  IncomingState& operator=(const IncomingState&) = delete;

  struct Impl;  // weights/checkpoint/loader.cpp

 private:
  explicit IncomingState(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  friend struct detail::StateAccess;
};

// Implemented by a module (a model or any sub-module) whose checkpoints may come in another layout:
// PyTorch's _load_from_state_dict. Before keys are matched, every load (builders given weights,
// load_checkpoint, load_weights, load_state, and so get_model and the CLI's --checkpoint) calls it
// on each module of the tree, a parent before its children, with `prefix` the module's own key
// prefix ("layer1.0.bn1."). It may rename, add, replace or drop entries, and may change the
// module's own structure (MNASNet's v1 stem) before its parameters are matched.
class CheckpointAdapter {
 public:
  virtual ~CheckpointAdapter() = default;
  virtual void adapt_checkpoint(IncomingState& state, const std::string& prefix) = 0;
};

struct LoadReport {
  std::string file;
  std::vector<std::string> loaded;
  std::vector<std::string> missing;     // in the module, not in the checkpoint
  std::vector<std::string> unexpected;  // in the checkpoint, not in the module
  std::vector<std::string> mismatched;  // "name: checkpoint [a, b] vs module [c, d]"
  std::vector<std::string> skipped;     // matched LoadOptions::skip
  std::vector<std::string> mapped;      // loaded keys backed by the file's pages (Storage::Map)
  std::vector<std::string> adapted;     // keys a CheckpointAdapter set or renamed (e.g. filled buffers)
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
  TensorDict tensors() const;                            // every tensor, owned, in file order
  LoadReport load_into(torch::nn::Module& module, const LoadOptions& options = {}) const;

  struct Impl;  // weights/checkpoint/loader.cpp

 private:
  std::unique_ptr<Impl> impl_;
};

TensorDict read_checkpoint(const std::string& path);
LoadReport load_checkpoint(torch::nn::Module& module, const std::string& path, const LoadOptions& options = {});
// Loads tensors held in memory (e.g. a state dict edited by hand) exactly as load_checkpoint loads a file.
LoadReport load_state(torch::nn::Module& module, TensorDict tensors, const LoadOptions& options = {});
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
void save_safetensors(const std::string& path, const TensorDict& tensors,
                      const std::vector<std::pair<std::string, std::string>>& metadata = {});

}  // namespace mz
