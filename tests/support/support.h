// Helpers shared by the C++ tests: scratch files, state dicts and their shapes, BatchNorm statistics
// that show lost buffers, and weights registered from a local file so that builders run their real
// load path.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "modelzoo/modelzoo.h"

namespace mz::test {

// A path in this process's scratch directory (removed at exit).
inline std::string temp_path(const std::string& name) {
  struct Scratch {
    std::filesystem::path dir = std::filesystem::temp_directory_path() / ("mz-tests-" + std::to_string(::getpid()));
    Scratch() { std::filesystem::create_directories(dir); }
    ~Scratch() {
      std::error_code ignored;
      std::filesystem::remove_all(dir, ignored);
    }
  };
  static Scratch scratch;
  return (scratch.dir / name).string();
}

// Parameters then buffers, by state-dict name: the module's own tensors (no copies).
inline TensorDict tensors_of(const torch::nn::Module& m) {
  TensorDict out;
  for (const auto& p : m.named_parameters()) out.insert(p.key(), p.value());
  for (const auto& b : m.named_buffers()) out.insert(b.key(), b.value());
  return out;
}

// The same, as detached copies (a snapshot that later changes to the module do not reach).
inline TensorDict state_of(const torch::nn::Module& m) {
  TensorDict out;
  for (const auto& item : tensors_of(m)) out.insert(item.key(), item.value().detach().clone());
  return out;
}

inline std::vector<std::string> keys_of(const torch::nn::Module& m) { return tensors_of(m).keys(); }

using Ints = std::vector<std::int64_t>;
using Shapes = std::map<std::string, Ints>;
inline Shapes shapes_of(const torch::nn::Module& m) {
  Shapes out;
  for (const auto& item : tensors_of(m)) out[item.key()] = item.value().sizes().vec();
  return out;
}

inline bool has_key(const torch::nn::Module& m, const std::string& key) { return tensors_of(m).contains(key); }
inline bool has_key_starting(const torch::nn::Module& m, const std::string& prefix) {
  for (const auto& k : keys_of(m))
    if (k.rfind(prefix, 0) == 0) return true;
  return false;
}

inline std::vector<std::string> child_names(const torch::nn::Module& m) {
  std::vector<std::string> names;
  for (const auto& item : m.named_children()) names.push_back(item.key());
  return names;
}
inline std::vector<std::string> step_names(Chain& m) {
  std::vector<std::string> names;
  for (const auto& s : m.steps()) names.push_back(s.name);
  return names;
}
inline std::vector<std::int64_t> vec(const torch::ExpandingArray<2>& a) { return {a->at(0), a->at(1)}; }

// `state` without the entries whose key ends with `suffix` (e.g. old checkpoints' missing buffers).
inline TensorDict without_suffix(const TensorDict& state, const std::string& suffix) {
  TensorDict out;
  for (const auto& item : state) {
    const std::string& k = item.key();
    if (k.size() < suffix.size() || k.compare(k.size() - suffix.size(), suffix.size(), suffix) != 0)
      out.insert(k, item.value());
  }
  return out;
}

// Every tensor of `a` and `b`, by name, equal bit for bit.
inline bool same_state(const torch::nn::Module& a, const torch::nn::Module& b) {
  const TensorDict sa = state_of(a), sb = state_of(b);
  if (sa.keys() != sb.keys()) return false;
  for (const auto& item : sa)
    if (!torch::equal(item.value(), sb[item.key()])) return false;
  return true;
}

// Running statistics and affine parameters away from (0, 1), and counters away from 0, so that a
// lost or refilled buffer shows.
inline void randomize_norms(torch::nn::Module& m) {
  torch::NoGradGuard no_grad;
  nn::for_each<nn::BatchNorm2dImpl>(m, [](nn::BatchNorm2dImpl& b) {
    b.running_mean.normal_(0, 0.1);
    b.running_var.uniform_(0.5, 1.5);
    if (b.weight.defined()) b.weight.uniform_(0.5, 1.5);
    b.num_batches_tracked.fill_(7);
  });
}

// Registers `<Enum>.LOCAL_TEST_<n>`, a copy of `base` whose file is `tensors` saved locally (file://
// URL, no digest to check), so that a builder or load_weights given it runs its real load path.
template <class W>
W local_weights(const W& base, const TensorDict& tensors) {
  ::setenv("MZ_CACHE_DIR", temp_path("cache").c_str(), 1);
  static int count = 0;
  const std::string value = "LOCAL_TEST_" + std::to_string(++count);
  WeightsRecord r = base.record();
  const std::string file = temp_path(r.model + "-" + value + ".safetensors");
  save_safetensors(file, tensors);
  r.value_name = value;
  r.url = "file://" + file;
  r.hash_prefix.clear();
  r.sha256.clear();
  r.file_size.reset();
  r.is_default = false;
  r.source = "tests";
  register_weights(r);
  return W::from_name(value);
}

}  // namespace mz::test
