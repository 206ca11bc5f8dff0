// Loading checkpoints into modules: strictness and its report, options, dtypes, safetensors writing.
#include <doctest/doctest.h>

#include <filesystem>

#include "modelzoo/modelzoo.h"

using namespace mz;
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

std::string temp_path(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("mz-core-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}

NamedTensors state_of(torch::nn::Module& m) {
  NamedTensors out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value().detach().clone());
  for (const auto& b : m.named_buffers()) out.emplace_back(b.key(), b.value().detach().clone());
  return out;
}

void expect_equal(torch::nn::Module& a, torch::nn::Module& b) {
  auto sa = state_of(a), sb = state_of(b);
  REQUIRE(sa.size() == sb.size());
  for (std::size_t i = 0; i < sa.size(); ++i) {
    CAPTURE(sa[i].first);
    CHECK(torch::equal(sa[i].second, sb[i].second));
  }
}

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
  NamedTensors bad = state_of(dst);
  bad.erase(bad.begin());                                     // conv.weight missing
  bad.emplace_back("extra.weight", torch::zeros({1}));        // unexpected
  for (auto& [k, t] : bad)
    if (k == "fc.weight") t = torch::zeros({3, 4});            // mismatched
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
  NamedTensors prefixed;
  for (auto& [k, t] : state_of(src)) prefixed.emplace_back("module." + k, t);
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
  NamedTensors mixed;
  for (auto& [k, t] : state_of(src))
    mixed.emplace_back(k, t.is_floating_point() ? t.to(k.rfind("conv", 0) == 0 ? torch::kFloat64 : torch::kBFloat16) : t);
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
