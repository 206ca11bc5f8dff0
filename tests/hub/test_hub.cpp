// Hub unit tests: SHA-256, checks, environment parsing, the transfer layer (pipeline, resume,
// progress) and fetch() from threads. Run by with_nginx.py, which serves MZ_TEST_WWW on loopback.
// LibTorch (glog) before doctest: both define CHECK, and doctest's must win.
#include <torch/csrc/distributed/c10d/HashStore.hpp>

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "modelzoo/cluster.h"
#include "modelzoo/hub.h"
#include "weights/hub/hub_impl.h"

namespace hub = mz::hub;
namespace detail = mz::hub::detail;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  REQUIRE_MESSAGE(v, "run me through with_nginx.py (", name, " is not set)");
  return v;
}

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

void write(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}

std::string read(const std::string& path) {
  std::string s;
  detail::read_file(path, s);
  return s;
}

// Requests nginx logged for `path` with the given status (0 = any).
int requests(const std::string& path, int status = 0, bool with_range = false) {
  std::ifstream log(env("MZ_TEST_ACCESS_LOG"));
  int n = 0;
  for (std::string line; std::getline(log, line);) {
    auto j = nlohmann::json::parse(line);
    if (j["path"] == path && (!status || j["status"] == status) && (!with_range || j["range"] != "")) ++n;
  }
  return n;
}

// A fresh cache root per test case.
struct Sandbox {
  std::string dir;
  Sandbox() {
    static int n = 0;
    dir = env("MZ_TEST_TMP") + "/case" + std::to_string(++n);
    detail::make_dirs(dir);
    setenv("MZ_CACHE_DIR", (dir + "/cache").c_str(), 1);
    setenv("TORCH_HOME", (dir + "/torch").c_str(), 1);
    setenv("MZ_RETRY_DELAY_MS", "10", 1);
    unsetenv("MZ_OFFLINE");
    unsetenv("MZ_MIRROR");
  }
};

mz::WeightsRecord record(const std::string& value, const std::string& file, const std::string& data) {
  mz::WeightsRecord r;
  r.enum_name = "HubTest_Weights";
  r.value_name = value;
  r.model = "hubtest";
  r.url = env("MZ_TEST_URL") + file;
  r.sha256 = detail::sha256_hex(data);
  r.file_size = data.size();
  return r;
}

}  // namespace

TEST_CASE("sha256 of known vectors") {
  CHECK(detail::sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(detail::sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  detail::Sha256 h;
  h.update("a", 1);
  h.update("bc", 2);
  CHECK(h.hex() == detail::sha256_hex("abc"));
}

TEST_CASE("check names expected and actual digest and size") {
  const std::string d = detail::sha256_hex("abc");
  CHECK(detail::check({d, "", 3}, d, 3) == "");
  CHECK(detail::check({"", "ba7816bf", 3}, d, 3) == "");
  CHECK(detail::check({"", "ba7816bf", std::nullopt}, d, 99) == "");
  CHECK(detail::check({"", "00000000", 3}, d, 3) == "hash prefix mismatch: expected 00000000..., got " + d);
  // torch.hub checks the whole hex run of the file name, 10 digits for some files: so do we.
  CHECK(detail::check({"", d.substr(0, 10), 3}, d, 3) == "");
  CHECK(detail::check({"", d.substr(0, 8) + "00", 3}, d, 3) ==
        "hash prefix mismatch: expected " + d.substr(0, 8) + "00..., got " + d);
  CHECK(detail::check({std::string(64, '0'), "", std::nullopt}, d, 3) ==
        "sha256 mismatch: expected " + std::string(64, '0') + ", got " + d);
  CHECK(detail::check({d, "", 4}, d, 3) == "size mismatch: expected 4 bytes, got 3 (sha256 " + d + ")");
}

TEST_CASE("environment: cache root, offline, mirrors") {
  setenv("MZ_CACHE_DIR", "/x/cache", 1);
  CHECK(hub::cache_dir() == "/x/cache");
  unsetenv("MZ_CACHE_DIR");
  setenv("XDG_CACHE_HOME", "/x/xdg", 1);
  CHECK(hub::cache_dir() == "/x/xdg/modelzoo");
  unsetenv("XDG_CACHE_HOME");
  CHECK(hub::cache_dir() == detail::env_str("HOME", "/root") + "/.cache/modelzoo");
  for (const char* on : {"1", "true", "yes", "on"}) {
    setenv("MZ_OFFLINE", on, 1);
    CHECK(hub::offline());
  }
  setenv("MZ_OFFLINE", "0", 1);
  CHECK_FALSE(hub::offline());
  unsetenv("MZ_OFFLINE");
  setenv("MZ_MIRROR", " http://a.example/m ;file:///srv/w/\thttp://b.example/x/ ", 1);
  CHECK(hub::mirrors() == std::vector<std::string>{"http://a.example/m/", "file:///srv/w/", "http://b.example/x/"});
  mz::WeightsRecord r;
  r.url = "https://download.pytorch.org/models/resnet18-f37072fd.pth";
  CHECK(hub::sources(r) == std::vector<std::string>{"http://a.example/m/resnet18-f37072fd.pth",
                                                    "file:///srv/w/resnet18-f37072fd.pth",
                                                    "http://b.example/x/resnet18-f37072fd.pth", r.url});
  unsetenv("MZ_MIRROR");
  setenv("MZ_RETRIES", "lots", 1);
  CHECK_THROWS_WITH_AS(detail::Tuning::from_env(), "MZ_RETRIES: expected a non-negative integer, got 'lots'",
                       mz::UsageError);
  unsetenv("MZ_RETRIES");
}

TEST_CASE("large transfer through the hash/write pipeline, interrupted and resumed") {
  Sandbox box;
  const std::string data = random_bytes(40u << 20, 11);  // above the O_DIRECT pipeline threshold
  write(env("MZ_TEST_WWW") + "/big.bin", data);
  const std::string url = env("MZ_TEST_URL") + "big.bin", dir = box.dir + "/dl";
  const detail::Expect expect{detail::sha256_hex(data), "", data.size()};

  // Stop half way (a callback that throws aborts the transfer and keeps the partial file).
  auto stop_half_way = [&](std::uint64_t done, std::uint64_t total) {
    CHECK(total == data.size());
    if (done > data.size() / 2) throw std::runtime_error("stop here");
  };
  CHECK_THROWS_AS(detail::download(url, dir, "big.bin", expect, stop_half_way), mz::HubError);

  std::uint64_t last = 0;
  int calls = 0;
  auto watch = [&](std::uint64_t done, std::uint64_t total) {
    CHECK(done >= last);
    last = done;
    ++calls;
  };
  const auto got = detail::download(url, dir, "big.bin", expect, watch);
  CHECK(got.sha256 == expect.sha256);
  CHECK(got.size == data.size());
  CHECK(read(got.path) == data);
  CHECK(last == data.size());
  CHECK(calls > 0);
  CHECK(requests("/big.bin", 206, true) == 1);  // the second transfer resumed
}

TEST_CASE("fetch: a cheap check on hits, the verify option re-hashes") {
  Sandbox box;
  const std::string data = random_bytes(300000, 12);
  write(env("MZ_TEST_WWW") + "/v.pth", data);
  const mz::WeightsRecord r = record("V", "v.pth", data);
  std::uint64_t seen = 0;
  hub::FetchOptions opts;
  opts.progress = [&](std::uint64_t done, std::uint64_t) { seen = done; };
  const std::string path = hub::fetch(r, opts);
  CHECK(seen == data.size());
  CHECK(path == hub::cache_path(r));
  CHECK(read(path) == data);
  REQUIRE(hub::cached(r));
  CHECK(hub::cached(r)->sha256 == r.sha256);

  // Corrupt in place, keeping size and mtime: only a re-hash notices.
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  std::string bad = data;
  bad[1000] ^= 0x55;
  write(path, bad);
  const struct timespec times[2] = {st.st_atim, st.st_mtim};
  REQUIRE(::utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);
  CHECK(hub::fetch(r) == path);
  CHECK(read(path) == bad);
  const auto entries = hub::cache_list();
  REQUIRE(entries.size() == 1);
  std::string reason;
  CHECK_FALSE(hub::verify_cached(entries[0], &reason));
  CHECK(reason.find("sha256 mismatch") != std::string::npos);
  hub::FetchOptions verify;
  verify.verify = true;
  CHECK(hub::fetch(r, verify) == path);
  CHECK(read(path) == data);
  CHECK(requests("/v.pth", 200) == 2);
}

TEST_CASE("fetch from 8 threads: one transfer, one path") {
  Sandbox box;
  const std::string data = random_bytes(5u << 20, 13);
  write(env("MZ_TEST_WWW") + "/t.pth", data);
  const mz::WeightsRecord r = record("T", "t.pth", data);
  std::vector<std::string> paths(8);
  std::vector<std::thread> threads;
  std::atomic<int> errors{0};
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] {
      try {
        paths[i] = hub::fetch(r);
      } catch (...) {
        ++errors;
      }
    });
  for (auto& t : threads) t.join();
  CHECK(errors == 0);
  for (const auto& p : paths) CHECK(p == paths[0]);
  CHECK(read(paths[0]) == data);
  CHECK(requests("/t.pth") == 1);
}

TEST_CASE("offline: cached works, uncached names the weights") {
  Sandbox box;
  const std::string data = random_bytes(1000, 14);
  write(env("MZ_TEST_WWW") + "/o.pth", data);
  const mz::WeightsRecord r = record("O", "o.pth", data), missing = record("MISSING", "nothere.pth", data);
  const std::string path = hub::fetch(r);
  setenv("MZ_OFFLINE", "1", 1);
  CHECK(hub::fetch(r) == path);
  CHECK_THROWS_WITH_AS(hub::fetch(missing),
                       ("HubTest_Weights.MISSING: not in the cache and offline mode is on (MZ_OFFLINE=1); expected at " +
                        hub::cache_path(missing)).c_str(),
                       mz::HubError);
  unsetenv("MZ_OFFLINE");
  CHECK(requests("/nothere.pth") == 0);
}

// ---- lock files (mz::LockFile) and mz::cluster ------------------------------------------------

namespace {
std::string lock_json(const std::string& weight, const std::string& url, const std::string& sha256, std::size_t size) {
  return nlohmann::json{{"modelzoo_lock", 1},
                        {"weights", {{{"weight", weight}, {"url", url}, {"sha256", sha256}, {"size", size},
                                      {"trust", "first-use"}}}}}
      .dump();
}
}  // namespace

TEST_CASE("lock file: malformed ones are HubErrors naming the file") {
  CHECK_THROWS_WITH_AS(mz::LockFile::parse("[1,", "l.json"), "l.json: not a lock file: not JSON", mz::HubError);
  CHECK_THROWS_WITH_AS(mz::LockFile::parse(R"({"modelzoo_lock": "1", "weights": []})", "l.json"),
                       "l.json: unknown lock file schema: \"modelzoo_lock\": \"1\" (this mz reads version 1)",
                       mz::HubError);
  CHECK_THROWS_WITH_AS(mz::LockFile::parse(R"({"modelzoo_lock": 1})", "l.json"), "l.json: missing \"weights\"",
                       mz::HubError);
  CHECK_THROWS_WITH_AS(
      mz::LockFile::parse(R"({"modelzoo_lock": 1, "weights": [], "defaults": {"A_Weights": "V1"}})", "l.json"),
      "l.json: defaults.A_Weights: names A_Weights.V1, which the lock does not list", mz::HubError);
  const std::string ok = lock_json("A_Weights.V1", "http://x/a.pth", std::string(64, 'a'), 3);
  const mz::LockFile lock = mz::LockFile::parse(ok, "l.json");
  REQUIRE(lock.find("A_Weights.V1"));
  CHECK(lock.find("A_Weights.V1")->file.first_use);
  CHECK(mz::LockFile::parse(lock.to_json().dump(), "again").to_json() == lock.to_json());
  CHECK_THROWS_WITH_AS(mz::LockFile::activate("/nonexistent/mz.lock"), "/nonexistent/mz.lock: cannot read the lock file",
                       mz::HubError);
}

TEST_CASE("lock file: a digest that differs is an error even when the 8-hex prefix matches") {
  Sandbox box;
  const std::string data = random_bytes(20000, 15);
  write(env("MZ_TEST_WWW") + "/p.pth", data);
  mz::WeightsRecord r = record("P", "p.pth", data);
  const std::string digest = r.sha256;
  r.sha256.clear();  // as upstream: only the prefix in the file name
  r.file_size.reset();
  r.hash_prefix = digest.substr(0, 8);
  const std::string other = digest.substr(0, 8) + std::string(56, '0');

  mz::LockFile::parse(lock_json(r.name(), r.url, other, data.size()), "pinned.lock").activate();
  CHECK_THROWS_WITH_AS(hub::fetch(r), ("HubTest_Weights.P: " + r.url + ": sha256 mismatch: expected " + other +
                                       ", got " + digest).c_str(),
                       mz::HubError);
  mz::LockFile::deactivate();
  const std::string path = hub::fetch(r);  // without the lock, the prefix is all there is to check

  mz::LockFile::parse(lock_json(r.name(), r.url, other, data.size()), "pinned.lock").activate();
  CHECK_THROWS_WITH_AS(hub::fetch(r), ("HubTest_Weights.P: the cached file " + path +
                                       " does not match the lock file pinned.lock: sha256 mismatch: expected " + other +
                                       ", got " + digest + "; re-lock it (mz lock) or remove it (mz cache rm "
                                       "HubTest_Weights.P)").c_str(),
                       mz::HubError);
  CHECK(read(path) == data);  // the registry's file stays
  mz::LockFile::parse(lock_json(r.name(), r.url, digest, data.size()), "right.lock").activate();
  CHECK(hub::fetch(r) == path);
  const mz::WeightsRecord q = record("Q", "p.pth", data);
  CHECK_THROWS_WITH_AS(hub::fetch(q),
                       "HubTest_Weights.Q: not in the lock file right.lock; add it with: mz lock --add HubTest_Weights.Q "
                       "--output right.lock",
                       mz::HubError);
  mz::LockFile::deactivate();
  CHECK(requests("/p.pth") == 2);
}

TEST_CASE("cluster: a store passed from C++; the leader's failure, a silent leader") {
  Sandbox box;
  const std::string data = random_bytes(1000, 16);
  write(env("MZ_TEST_WWW") + "/c.pth", data);
  const mz::WeightsRecord r = record("C", "c.pth", data);
  auto store = c10::make_intrusive<c10d::HashStore>();
  mz::cluster::Options o;
  o.rank = 1;  // a follower: rank 0 leads; here the test plays rank 0, through the store
  o.world_size = 2;
  o.timeout = std::chrono::milliseconds(1500);
  o.heartbeat = std::chrono::milliseconds(500);
  mz::cluster::use_store(store, o);
  const std::string id = detail::sha256_hex(r.name() + "\n" + r.url).substr(0, 16);
  auto set = [&](const std::string& key, const std::string& value) {
    store->set("modelzoo/fetch/r0/" + id + "/" + key, std::vector<std::uint8_t>(value.begin(), value.end()));
  };
  // 1st fetch: rank 0 reports a typed failure; this rank raises the same error without touching the network.
  set("0/0", R"({"ok": false, "type": "HubError", "subject": "HubTest_Weights.C", "reason": "HTTP 404"})");
  CHECK_THROWS_WITH_AS(hub::fetch(r), "HubTest_Weights.C: HTTP 404", mz::HubError);
  // 2nd fetch: rank 0 says it is done, but this rank's cache does not have the file.
  set("1/0", R"({"ok": true, "path": "/elsewhere/c.pth"})");
  CHECK_THROWS_WITH_AS(hub::fetch(r), doctest::Contains("this rank's cache"), mz::HubError);
  // 3rd: rank 0 never answers.
  CHECK_THROWS_WITH_AS(hub::fetch(r), "HubTest_Weights.C: timed out after 1.5 s waiting for rank 0 to fetch it "
                                      "(MZ_STORE_TIMEOUT)", mz::HubError);
  // 4th: rank 0 showed signs of life, then went silent.
  store->add("modelzoo/fetch/r0/" + id + "/3/0/beat", 1);
  CHECK_THROWS_WITH_AS(hub::fetch(r), doctest::Contains("rank 0 stopped while fetching it (no sign of life for 0.5 s"),
                       mz::HubError);
  CHECK(requests("/c.pth") == 0);
  CHECK(store->add("modelzoo/fetch/r0/" + id + "/0/done", 0) == 1);  // this rank read the outcome

  // As rank 0 of that world, this process fetches and publishes the outcome for rank 1.
  o.rank = 0;
  mz::cluster::use_store(store, o);
  const std::string path = hub::fetch(r);
  const auto outcome = store->get("modelzoo/fetch/r0/" + id + "/0/0");
  CHECK(nlohmann::json::parse(std::string(outcome.begin(), outcome.end())) ==
        nlohmann::json{{"ok", true}, {"path", path}});
  CHECK(store->add("modelzoo/fetch/r0/" + id + "/0/0/beat", 0) >= 1);
  mz::cluster::stop_using_store();
  CHECK(requests("/c.pth") == 1);
}
