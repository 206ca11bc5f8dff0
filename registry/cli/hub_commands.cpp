// mz download | verify | cache ls|rm|prune|dir (and, from fleet_commands.cpp, lock | mirror)
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>

#include <nlohmann/json.hpp>

#include "modelzoo/hub.h"
#include "modelzoo/weights.h"
#include "registry/cli/cli.h"
#include "weights/hub/hub_impl.h"

namespace mz::cli {
namespace {

using nlohmann::json;

std::string human_size(std::uint64_t n) { return hub::detail::human_bytes(static_cast<double>(n)); }

json entry_json(const hub::CacheEntry& e) {
  return {{"weight", e.weights.empty() ? json(nullptr) : json(e.weights)},
          {"path", e.path}, {"sha256", e.sha256}, {"size", e.size}, {"url", e.url}, {"source", e.source}};
}

// ---- download -----------------------------------------------------------------------------------
struct DownloadArgs {
  std::vector<std::string> weights;
  bool json = false, verify = false;
};

void run_download(const DownloadArgs& a) {
  json out = json::array();
  for (const std::string& name : a.weights) {
    const WeightsRecord& r = get_weight(name);
    hub::FetchOptions options;
    options.verify = a.verify;
    // The weight's assets first (a text weight's tokenizer and vocabulary: everything a later offline run needs),
    // then its own file, whose path stays the last line.
    json files = json::array();
    std::vector<WeightsRecord> all;
    for (const std::string& url : hub::asset_urls(r)) all.push_back(hub::asset_record(r, url));
    all.push_back(r);
    for (const WeightsRecord& file : all) {
      const std::string path = hub::fetch(file, options);
      if (!a.json) {
        std::cout << path << std::endl;
        continue;
      }
      const auto e = hub::cached(file);
      if (!e) throw HubError(file.name(), "disappeared from the cache right after the download: " + path);
      files.push_back({{"weight", file.name()}, {"path", path}, {"sha256", e->sha256}, {"size", e->size}});
      if (&file != &all.back()) files.back()["url"] = file.url;  // an asset: which file it is
    }
    if (a.json) {
      json entry = files.back();
      files.erase(files.end() - 1);
      if (!files.empty()) entry["assets"] = files;
      out.push_back(entry);
    }
  }
  if (a.json) std::cout << out.dump(1) << std::endl;
}

// ---- verify -------------------------------------------------------------------------------------
void run_verify(const std::vector<std::string>& names) {
  std::vector<hub::CacheEntry> entries;
  std::size_t failed = 0, missing = 0;
  if (names.empty()) {
    entries = hub::cache_list();
    if (entries.empty()) std::cout << "no cached files in " << hub::cache_dir() << std::endl;
  } else {
    const auto all = hub::cache_list();
    for (const std::string& name : names) {
      const WeightsRecord& r = get_weight(name);
      const std::string path = hub::cache_path(r);
      auto it = std::find_if(all.begin(), all.end(), [&](const auto& e) { return e.path == path; });
      if (it == all.end()) {
        std::cout << "FAILED  " << r.name() << "  not in the cache (" << path << ")" << std::endl;
        ++failed;
        ++missing;
        continue;
      }
      entries.push_back(*it);
      entries.back().weights = r.name();
    }
  }
  for (const auto& e : entries) {
    std::string reason;
    const std::string label = e.weights.empty() ? e.url : e.weights;
    if (hub::verify_cached(e, &reason)) {
      std::cout << "OK      " << label << "  " << e.path << std::endl;
    } else {
      std::cout << "FAILED  " << label << "  " << e.path << ": " << reason << std::endl;
      ++failed;
    }
  }
  if (failed)
    throw HubError("verify", std::to_string(failed) + " of " + std::to_string(entries.size() + missing) +
                                 " files failed verification");
}

// ---- cache --------------------------------------------------------------------------------------
void run_cache_ls(bool as_json) {
  const auto entries = hub::cache_list();
  if (as_json) {
    json out = json::array();
    for (const auto& e : entries) out.push_back(entry_json(e));
    std::cout << out.dump(1) << std::endl;
    return;
  }
  std::uint64_t total = 0;
  for (const auto& e : entries) {
    std::printf("%10s  %-40s  %s\n", human_size(e.size).c_str(), e.weights.empty() ? "-" : e.weights.c_str(),
                e.path.c_str());
    total += e.size;
  }
  std::printf("%zu file(s), %s in %s\n", entries.size(), human_size(total).c_str(), hub::cache_dir().c_str());
}

void run_cache_rm(const std::vector<std::string>& targets) {
  for (const std::string& t : targets) {
    const auto removed = hub::remove_cached(t);
    if (removed.empty()) throw UsageError(t, "not in the cache (give a weight name or a path from 'mz cache ls')");
    for (const auto& p : removed) std::cout << "removed " << p << std::endl;
  }
}

void run_cache_prune() {
  const auto res = hub::prune();
  for (const auto& p : res.removed) std::cout << "removed " << p << std::endl;
  std::cout << "pruned " << res.removed.size() << " file(s), " << human_size(res.bytes) << std::endl;
}

}  // namespace

void add_hub_commands(CLI::App& app) {
  auto da = std::make_shared<DownloadArgs>();
  auto* download = app.add_subcommand("download", "Download and verify weights; prints each verified path");
  download->add_option("WEIGHT", da->weights, "Weight names, e.g. ResNet50_Weights.IMAGENET1K_V2")->required();
  download->add_flag("--json", da->json, "A JSON array of {weight, path, sha256, size}");
  download->add_flag("--verify", da->verify, "Re-hash files that are cached already");
  download->callback([da] { run_download(*da); });

  auto names = std::make_shared<std::vector<std::string>>();
  auto* verify = app.add_subcommand("verify", "Re-hash cached files (all, or those of the given weights)");
  verify->add_option("WEIGHT", *names, "Weight names; none = every cached file");
  verify->callback([names] { run_verify(*names); });

  auto* cache = app.add_subcommand("cache", "Inspect and clean the download cache ($MZ_CACHE_DIR)");
  cache->require_subcommand(1);
  auto ls_json = std::make_shared<bool>(false);
  auto* ls = cache->add_subcommand("ls", "List cached files: size, weight name, path");
  ls->add_flag("--json", *ls_json, "JSON output");
  ls->callback([ls_json] { run_cache_ls(*ls_json); });
  auto targets = std::make_shared<std::vector<std::string>>();
  auto* rm = cache->add_subcommand("rm", "Remove cached files by weight name or path");
  rm->add_option("TARGET", *targets, "Weight names or paths")->required();
  rm->callback([targets] { run_cache_rm(*targets); });
  cache->add_subcommand("prune", "Remove partial downloads, orphans and files that fail their digest")
      ->callback(run_cache_prune);
  cache->add_subcommand("dir", "Print the cache root")->callback([] { std::cout << hub::cache_dir() << std::endl; });
  add_fleet_commands(app);
}

}  // namespace mz::cli
