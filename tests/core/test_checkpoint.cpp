// Loading checkpoints into modules: strictness and its report, options, dtypes, safetensors writing.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/support/support.h"

using namespace mz;
using namespace mz::test;
namespace fs = std::filesystem;

namespace {

struct TinyImpl : torch::nn::Module {
  TinyImpl() {
    conv = register_module("conv", nn::Conv2d(torch::nn::Conv2dOptions(3, 4, 3).bias(false)));
    bn = register_module("bn", nn::BatchNorm2d(4));
    fc = register_module("fc", nn::Linear(4, 2));
    nn::reset_parameters(*this);
  }
  nn::Conv2d conv{nullptr};
  nn::BatchNorm2d bn{nullptr};
  nn::Linear fc{nullptr};
};

void expect_equal(torch::nn::Module& a, torch::nn::Module& b) { CHECK(same_state(a, b)); }

// True when `address` lies in a mapping of `file` (/proc/self/maps).
bool mapped_from(const void* address, const std::string& file) {
  const auto a = reinterpret_cast<std::uintptr_t>(address);
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    std::istringstream fields(line);
    std::string range, perms, offset, dev, inode, path;
    fields >> range >> perms >> offset >> dev >> inode >> path;
    const auto dash = range.find('-');
    const auto begin = std::stoull(range.substr(0, dash), nullptr, 16), end = std::stoull(range.substr(dash + 1), nullptr, 16);
    if (a >= begin && a < end) return path == fs::canonical(file).string();
  }
  return false;
}

bool contains(const std::vector<std::string>& v, const std::string& s) { return std::find(v.begin(), v.end(), s) != v.end(); }

}  // namespace

TEST_CASE("safetensors round trip fills every parameter and buffer") {
  TinyImpl src, dst;
  src.bn->running_mean.normal_();
  src.bn->num_batches_tracked.fill_(7);
  const auto path = temp_path("tiny.safetensors");
  save_safetensors(path, state_of(src));
  const LoadReport report = load_checkpoint(dst, path);
  CHECK(report.ok());
  CHECK(report.loaded.size() == 8);
  expect_equal(src, dst);
  CHECK(Checkpoint(path).format() == "safetensors");
}

TEST_CASE("strict loading reports every missing, unexpected and mismatched key by name") {
  TinyImpl dst;
  TensorDict bad = state_of(dst);
  bad.erase("conv.weight");                        // missing
  bad.insert("extra.weight", torch::zeros({1}));  // unexpected
  bad["fc.weight"] = torch::zeros({3, 4});        // mismatched
  const auto path = temp_path("bad.safetensors");
  save_safetensors(path, bad);
  CHECK_THROWS_WITH_AS(load_checkpoint(dst, path),
                       (path + ": 1 missing: conv.weight; 1 unexpected: extra.weight; 1 mismatched: fc.weight: "
                               "checkpoint [3, 4] vs module [2, 4]").c_str(),
                       LoadError);
  const LoadReport report = load_checkpoint(dst, path, {.strict = false});
  CHECK(report.missing == std::vector<std::string>{"conv.weight"});
  CHECK(report.unexpected == std::vector<std::string>{"extra.weight"});
  CHECK(report.mismatched.size() == 1);
  CHECK(report.loaded.size() == 6);
}

TEST_CASE("module. prefix stripping, skip globs, renames") {
  TinyImpl src, dst;
  TensorDict prefixed;
  for (const auto& item : state_of(src)) prefixed.insert("module." + item.key(), item.value());
  const auto path = temp_path("prefixed.safetensors");
  save_safetensors(path, prefixed);
  CHECK_THROWS_AS(load_checkpoint(dst, path), LoadError);
  CHECK(load_checkpoint(dst, path, {.strip_module_prefix = true}).ok());
  expect_equal(src, dst);

  TinyImpl fresh;
  const auto before = fresh.fc->weight.clone();
  const LoadReport r =
      load_checkpoint(fresh, path, {.strip_module_prefix = true, .skip = {"fc.*"}, .reinit_skipped = false});
  CHECK(r.ok());
  CHECK(r.skipped == std::vector<std::string>{"fc.weight", "fc.bias"});
  CHECK(torch::equal(fresh.fc->weight, before));
  CHECK(torch::equal(fresh.conv->weight, src.conv->weight));

  TinyImpl renamed;
  CHECK(load_checkpoint(renamed, path, {.rename = [](const std::string& k) { return k.substr(7); }}).ok());
}

TEST_CASE("tensors of other dtypes convert to the parameter's dtype") {
  TinyImpl src, dst;
  TensorDict mixed;
  for (const auto& item : state_of(src)) {
    const std::string& k = item.key();
    const torch::Tensor& t = item.value();
    mixed.insert(k, t.is_floating_point() ? t.to(k.rfind("conv", 0) == 0 ? torch::kFloat64 : torch::kBFloat16) : t);
  }
  const auto path = temp_path("mixed.safetensors");
  save_safetensors(path, mixed);
  CHECK(load_checkpoint(dst, path).ok());
  CHECK(torch::equal(dst.conv->weight, src.conv->weight));
  CHECK(torch::allclose(dst.fc->weight, src.fc->weight, 1e-2, 1e-2));
  CHECK((dst.fc->weight.scalar_type() == torch::kFloat32));
  CHECK((Checkpoint(path).tensor("conv.weight").scalar_type() == torch::kFloat64));
}

TEST_CASE("unreadable files are CheckpointErrors naming the file") {
  CHECK_THROWS_WITH_AS(Checkpoint("/nonexistent/x.pth"), "/nonexistent/x.pth: cannot open: No such file or directory",
                       CheckpointError);
  CHECK_THROWS_WITH_AS(Checkpoint("/tmp"), "/tmp: not a regular file", CheckpointError);
  TinyImpl tiny;
  save_safetensors(temp_path("names.safetensors"), state_of(tiny));
  CHECK_THROWS_WITH_AS(Checkpoint(temp_path("names.safetensors")).tensor("nope"),
                       doctest::Contains("no tensor named 'nope'"), CheckpointError);
}

TEST_CASE("Storage::Map: parameters are the file's own pages, copy-on-write; paths load as copies by default") {
  TinyImpl src;
  src.bn->running_mean.normal_();
  src.bn->num_batches_tracked.fill_(7);
  TensorDict state = state_of(src);
  state["fc.bias"] = state["fc.bias"].to(torch::kBFloat16);  // another dtype than the parameter's: copied
  const auto path = temp_path("mapped.safetensors");
  save_safetensors(path, state);

  TinyImpl copied;
  const LoadReport by_path = load_checkpoint(copied, path);
  CHECK(by_path.mapped.empty());
  CHECK_FALSE(mapped_from(copied.conv->weight.data_ptr(), path));

  TinyImpl dst;
  const LoadReport report = load_checkpoint(dst, path, {.storage = Storage::Map});
  CHECK(report.ok());
  CHECK(report.loaded.size() == 8);
  // Copied: fc.bias (bfloat16 in the file) and num_batches_tracked (an int64 that the 4-byte fc.bias
  // before it leaves 4-aligned, see the offsets in save_safetensors). Every other tensor is mapped.
  CHECK(report.mapped.size() == 6);
  CHECK_FALSE(contains(report.mapped, "fc.bias"));
  CHECK_FALSE(contains(report.mapped, "bn.num_batches_tracked"));
  expect_equal(copied, dst);
  CHECK(mapped_from(dst.conv->weight.data_ptr(), path));
  CHECK(mapped_from(dst.bn->running_mean.data_ptr(), path));
  CHECK_FALSE(mapped_from(dst.fc->bias.data_ptr(), path));
  CHECK(dst.conv->weight.requires_grad());

  // Writes (fine-tuning) reach private pages, never the file.
  {
    torch::NoGradGuard no_grad;
    dst.conv->weight.add_(1);
  }
  CHECK(torch::equal(dst.conv->weight, src.conv->weight + 1));
  CHECK(torch::equal(Checkpoint(path).tensor("conv.weight"), src.conv->weight));
  // The mapping outlives the file's name (the hub cache replaces files by rename, rm unlinks them).
  fs::remove(path);
  CHECK(torch::equal(dst.bn->running_mean, src.bn->running_mean));
  CHECK(torch::equal(dst.fc->weight, src.fc->weight));
  const torch::Tensor x = torch::ones({1, 3, 3, 3});  // conv with weight + 1 adds the 27 inputs
  CHECK(torch::allclose(dst.conv->forward(x), copied.conv->forward(x) + 27, 1e-5, 1e-4));
}
