// Adapters (LoRA, as peft's): low-rank deltas patched onto a built model's layers, by state-dict path,
// with no edit of any builder. README "Adapters".
//
//   mz::lora::inject(*model, {.targets = {"*.self_attn.*", "classifier.*"}, .rank = 8, .alpha = 16});
//   ... train: only the adapter's tensors require grad ...
//   mz::lora::save(*model, "adapter/", built.weights);   // adapter.safetensors + adapter.json
//   mz::lora::load(*other, "adapter/", built.weights);   // refuses another base (mz::LoadError)
//
// A layer is adapted in place: the parent holds it by type and calls its forward without virtual
// dispatch, so it cannot be swapped for a wrapper. Instead every adaptable layer (mz::nn::Adaptable:
// Linear, Conv2d, and the fused in-projection of ViT's and RoBERTa's attention) asks for its weight
// through adapted(weight), and an adapter sets that hook to W + (alpha / rank) * B A, computed at each
// call so that gradients reach A and B. A is [rank, fan_in] (fan_in = weight.numel() / out), B is
// [out, rank] (zeros, so the output is unchanged at injection), reshaped to the weight's shape (a
// convolution's delta is a full kernel, as peft's). The adapter's tensors are registered on the layer
// (state dict "<layer>.lora.<name>.lora_A" / ".lora_B"), so they train, save and move with it.
//
// Targets are fnmatch globs ('*' crosses dots) matched against each adaptable layer's module path
// ("classifier.1") and its weight's path ("encoder.layers.0.self_attn.in_proj_weight"), so
// "*.self_attn.*" takes both projections of a RoBERTa attention.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "modelzoo/options.h"

namespace mz::lora {

// peft's LoraConfig: target_modules, r, lora_alpha; an adapter's name ("default", as peft's).
struct Options {
  std::vector<std::string> targets;
  std::int64_t rank = 8;
  double alpha = 16;  // the delta is scaled by alpha / rank
  std::string name = "default";
};
MZ_OPTIONS(Options, targets, rank, alpha, name)

// Adds the adapter `options.name` to every adaptable layer a target matches and makes it the active
// one; freezes every other parameter of the model (the active adapter's alone require grad). Returns the adapted
// layers' paths. Throws mz::UsageError for no match (listing adaptable layers), a bad rank or name, or a name in use.
std::vector<std::string> inject(torch::nn::Module& model, const Options& options);

std::vector<std::string> names(torch::nn::Module& model);  // the adapters on the model, sorted
std::string active(torch::nn::Module& model);              // "" when none is active
// Makes `name` the active adapter (layers it does not adapt run their base weight), the one that
// trains (requires grad). Unmerges first.
void set_active(torch::nn::Module& model, const std::string& name);
void deactivate(torch::nn::Module& model);  // every layer runs its base weight; unmerges first
// Removes an adapter; a layer left with none is the original module again (state dict included).
void remove(torch::nn::Module& model, const std::string& name);

// Folds the active adapter into the base weights (no per-call delta: inference at base cost; merge
// before mz::optimize_for_inference, which folds norms into weights). The originals are kept, so
// unmerge restores them bit-exactly (subtracting the delta again would round).
void merge(torch::nn::Module& model);
void unmerge(torch::nn::Module& model);

// Every adapter's options, the exact layers it adapts as its targets, the active one last: injected in
// this order into the same architecture they recreate the adapters (as a spec's "_adapters_" does).
std::vector<Options> adapters(torch::nn::Module& model);
bool merged(torch::nn::Module& model);  // whether an adapter is folded into its base weights (merge)

// Writes DIR/adapter.safetensors (each adapted layer's "<layer>.lora_A" and ".lora_B") and
// DIR/adapter.json (its Options, and the base: `base_weights`, the full names of the weights the
// model was built from, e.g. mz::spec::Built::weights, each with its SHA-256). `name` "" is the active
// adapter.
void save(torch::nn::Module& model, const std::string& dir, const std::vector<std::string>& base_weights = {},
          const std::string& name = "");
// Injects and loads the adapter saved in DIR, and makes it active; returns its name. The model must
// have been built from the same base weights (name and SHA-256) as adapter.json names, else
// mz::LoadError naming adapter.json. Untrusted input: a bad adapter.json is an mz::CheckpointError, a
// bad or ill-fitting adapter.safetensors an mz::CheckpointError / mz::LoadError, each naming the file.
std::string load(torch::nn::Module& model, const std::string& dir, const std::vector<std::string>& base_weights = {});

}  // namespace mz::lora
