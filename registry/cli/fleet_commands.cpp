// mz lock | mz lock --check | mz mirror: the lock files and mirrors of a fleet (README "Lock files", "Mirrors").
// LibTorch-free: runs in the `mz` front end.
#include <sys/stat.h>

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

// A weight ("Enum.VALUE", "Enum.DEFAULT") or a model name (its DEFAULT), resolved against the registry.
// Sets `default_of` to the enum when the name asked for a DEFAULT.
const WeightsRecord& resolve(const std::string& name, std::string& default_of) {
  default_of.clear();
  if (const WeightsRecord* r = find_weights(name)) return *r;
  std::string full = name;
  if (name.find('.') == std::string::npos) {
    const std::string e = detail::builtin_weights_enum(name);
    if (e.empty()) return get_weight(name);  // throws "unknown weights" with suggestions
    full = e + ".DEFAULT";
  }
  const WeightsRecord& r = get_weight(full);
  if (full.size() > 8 && full.compare(full.size() - 8, 8, ".DEFAULT") == 0) default_of = r.enum_name;
  return r;
}

// Every resolution of `mz lock` and `mz lock --check` is the registry's, never an active lock's.
void ignore_active_lock() {
  ::unsetenv("MZ_LOCKFILE");
  LockFile::deactivate();
}

std::string lock_path_or_default(const std::string& given) {
  if (!given.empty()) return given;
  return hub::detail::env_str("MZ_LOCKFILE", "mz.lock");
}

// ---- mz lock ------------------------------------------------------------------------------------
struct LockArgs {
  std::vector<std::string> names;
  std::string output;
  bool add = false, check = false;
};

void run_lock(const LockArgs& a) {
  const std::string out = lock_path_or_default(a.output);
  check_output_file(out);  // before any download
  ignore_active_lock();
  struct stat st {};
  LockFile lock = a.add && ::stat(out.c_str(), &st) == 0 ? LockFile::load(out) : LockFile();
  for (const std::string& name : a.names) {
    std::string default_of;
    const WeightsRecord& r = resolve(name, default_of);
    LockEntry e = hub::lock_entry(r);
    std::cout << "locked  " << e.weight << "  sha256 " << e.file.sha256 << (e.file.first_use ? " (first use)" : "");
    if (!e.assets.empty()) std::cout << "  + " << e.assets.size() << " asset(s)";
    std::cout << std::endl;
    lock.add(std::move(e));
    if (!default_of.empty()) lock.set_default(default_of, r.value_name);
  }
  lock.save(out);
  std::cout << "wrote " << out << " (" << lock.entries().size() << " weight(s))" << std::endl;
}

// A locked file in the cache, re-hashed: "" when it matches, "not cached" when absent, else the mismatch.
std::string check_cached_file(const WeightsRecord& owner, const LockedFile& f, bool asset) {
  const std::string path = hub::cache_path(hub::pinned(asset ? hub::asset_record(owner, f.url) : owner, f));
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "not cached";
  const std::string bad = hub::detail::check({f.sha256, "", f.size}, hub::detail::sha256_file(path),
                                             static_cast<std::uint64_t>(st.st_size));
  return bad.empty() ? "" : path + ": " + bad;
}

void run_lock_check(const LockArgs& a) {
  if (a.names.size() > 1) throw UsageError("lock --check", "takes one lock file, got " + std::to_string(a.names.size()));
  const std::string path = lock_path_or_default(a.names.empty() ? "" : a.names[0]);
  ignore_active_lock();
  const LockFile lock = LockFile::load(path);
  std::size_t bad = 0, cached = 0;
  auto report = [&](const char* what, const std::string& weight, const std::string& text) {
    std::cout << what << "  " << weight << "  " << text << std::endl;
  };
  for (const auto& [enum_name, value] : lock.defaults()) {
    const WeightsRecord* now = nullptr;
    for (const WeightsRecord* r : all_weights())
      if (r->enum_name == enum_name && r->is_default) now = r;
    if (!now || now->value_name != value) {
      ++bad;
      report("CHANGED", enum_name + ".DEFAULT",
             "is now " + (now ? now->name() : std::string("undefined")) + " (locked: " + enum_name + "." + value + ")");
    }
  }
  for (const LockEntry& e : lock.entries()) {
    const WeightsRecord* r = find_weights(e.weight);
    if (!r) {
      ++bad;
      report("MISSING", e.weight, "is no longer in the registry");
      continue;
    }
    std::vector<std::string> changes;
    if (r->url != e.file.url) changes.push_back("URL is now " + r->url + " (locked: " + e.file.url + ")");
    if (!r->sha256.empty() && r->sha256 != e.file.sha256)
      changes.push_back("sha256 is now " + r->sha256 + " (locked: " + e.file.sha256 + ")");
    if (r->sha256.empty() && r->url == e.file.url && e.file.sha256.compare(0, r->hash_prefix.size(), r->hash_prefix) != 0)
      changes.push_back("the locked sha256 does not start with the record's prefix " + r->hash_prefix);
    const auto urls = hub::asset_urls(*r);
    std::vector<std::string> locked_urls;
    for (const auto& f : e.assets) locked_urls.push_back(f.url);
    if (urls != locked_urls) changes.push_back("its assets changed");
    for (const auto& c : changes) report("CHANGED", e.weight, c);
    bad += changes.size();
    std::vector<std::pair<const LockedFile*, bool>> files{{&e.file, false}};
    for (const auto& f : e.assets) files.emplace_back(&f, true);
    for (const auto& [f, asset] : files) {
      const std::string why = check_cached_file(*r, *f, asset);
      const std::string label = asset ? e.weight + ":" + hub::mirror_name(f->url) : e.weight;
      if (why == "not cached") continue;
      if (!why.empty()) {
        ++bad;
        report("FAILED ", label, why);
      } else {
        ++cached;
      }
    }
    if (changes.empty()) report("OK     ", e.weight, e.file.sha256 + (e.file.first_use ? " (first use)" : ""));
  }
  std::cout << lock.entries().size() << " weight(s), " << cached << " cached file(s) verified" << std::endl;
  if (bad) throw HubError(lock.source(), std::to_string(bad) + " problem(s): the registry or the cache no longer matches the lock");
}

// ---- mz mirror ----------------------------------------------------------------------------------
struct MirrorArgs {
  std::vector<std::string> what;
  std::string to;
};

bool is_lock_file(const std::string& arg) {
  struct stat st {};
  return arg.find('/') != std::string::npos || (::stat(arg.c_str(), &st) == 0 && S_ISREG(st.st_mode));
}

void run_mirror(const MirrorArgs& a) {
  std::size_t n = 0;
  auto place = [&](const WeightsRecord& r) {
    for (const auto& f : hub::mirror(r, a.to)) {
      std::cout << a.to << "/" << f.name << "  " << f.sha256 << "  " << f.weight << std::endl;
      ++n;
    }
  };
  for (const std::string& arg : a.what) {
    if (!is_lock_file(arg)) {
      std::string default_of;
      place(resolve(arg, default_of));
      continue;
    }
    const LockFile lock = LockFile::load(arg);
    lock.activate();  // every file verified against the lock's digest
    for (const LockEntry& e : lock.entries()) place(hub::pinned(get_weight(e.weight), e.file));
    LockFile::deactivate();
  }
  std::cout << "mirrored " << n << " file(s) into " << a.to << " (manifest " << hub::kMirrorManifest << ")" << std::endl;
}

}  // namespace

void add_fleet_commands(CLI::App& app) {
  auto la = std::make_shared<LockArgs>();
  auto* lock = app.add_subcommand("lock", "Write a lock file pinning weights (DEFAULT, URL, full sha256, size, assets), "
                                          "or check one (--check [FILE])");
  lock->add_option("NAME", la->names, "Weights or model names; with --check: the lock file (default $MZ_LOCKFILE, mz.lock)");
  lock->add_option("--output,-o", la->output, "Where to write the lock (default $MZ_LOCKFILE, else mz.lock)");
  lock->add_flag("--add", la->add, "Keep the entries of an existing --output file and add these");
  lock->add_flag("--check", la->check, "Verify a lock against the cache and the registry; report what changed upstream");
  lock->callback([la] {
    if (la->check) return run_lock_check(*la);
    if (la->names.empty()) throw UsageError("lock", "name at least one weight or model (or use --check)");
    run_lock(*la);
  });

  auto ma = std::make_shared<MirrorArgs>();
  auto* mirror = app.add_subcommand("mirror", "Materialise a mirror (the layout MZ_MIRROR reads, assets, a manifest) in DIR");
  mirror->add_option("WEIGHT_OR_LOCK", ma->what, "Weights, model names or lock files")->required();
  mirror->add_option("--to", ma->to, "The mirror directory")->required();
  mirror->callback([ma] { run_mirror(*ma); });
}

}  // namespace mz::cli
