// One download per cache over a c10d store (README "One download per cluster"). Lives in the
// LibTorch-linked library and installs itself as the hub's coordinator; the hub stays LibTorch-free.
//
// Keys, under the PrefixStore "modelzoo": for the n-th fetch of a weight (id = its name and URL) in attempt
// R of the job (TORCHELASTIC_RESTART_COUNT, 0 without torchrun)
//   fetch/rR/<id>/<n>/<leader>         the outcome, set by the leader: {"ok": true, "path"} or the error
//   fetch/rR/<id>/<n>/<leader>/beat    a counter the leader bumps every 250 ms while it works
//   fetch/rR/<id>/<n>/done             how many ranks have the outcome (the server's rank waits for all at exit)
#include <torch/csrc/distributed/c10d/FileStore.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "modelzoo/cluster.h"
#include "modelzoo/hub.h"
#include "weights/hub/hub_impl.h"

namespace mz::cluster {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
namespace hd = hub::detail;

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

// A store error (a lost connection, a timeout) as the hub's error about `subject`.
[[noreturn]] void store_failed(const std::string& subject, const std::string& doing, const std::exception& e) {
  throw HubError(subject, "c10d store failed while " + doing + ": " + first_line(e.what()));
}

json error_json(const Error& e, const char* type) {
  return {{"ok", false}, {"type", type}, {"subject", e.subject()}, {"reason", e.reason()}, {"exit", e.exit_code()}};
}

// The leader's error, raised again on this rank as the same type with the same message.
[[noreturn]] void rethrow(const json& j) {
  const std::string type = j.value("type", ""), subject = j.value("subject", ""), reason = j.value("reason", "");
  if (type == "HubError") throw HubError(subject, reason);
  if (type == "UsageError") throw UsageError(subject, reason);
  if (type == "CheckpointError") throw CheckpointError(subject, reason);
  if (type == "LoadError") throw LoadError(subject, reason);
  throw Error(subject, reason, j.value("exit", 1));
}

class Group {
  template <class F>
  auto locked(F f) -> decltype(f()) {  // one store operation at a time (the heartbeat runs on its own thread)
    std::lock_guard<std::mutex> guard(mu_);
    return f();
  }

 public:
  Group(c10::intrusive_ptr<c10d::Store> store, Options o, bool hosts_server)
      : store_(c10::make_intrusive<c10d::PrefixStore>("modelzoo", std::move(store))), o_(o), hosts_server_(hosts_server) {
    if (o_.local_rank < 0) o_.local_rank = o_.rank;
    leader_ = o_.shared_cache ? 0 : o_.rank - o_.local_rank;
  }

  // The server's rank keeps the store up until every rank has read the outcome of every fetch.
  ~Group() {
    if (!hosts_server_) return;
    for (const std::string& key : done_keys_) {
      std::int64_t seen = -1;
      auto changed = Clock::now();
      try {
        for (std::int64_t n; (n = locked([&] { return store_->add(key, 0); })) < o_.world_size;) {
          if (n != seen) seen = n, changed = Clock::now();
          if (Clock::now() - changed > std::chrono::seconds(10)) break;  // a rank is gone
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
      } catch (const std::exception&) {
        return;
      }
    }
  }

  std::string fetch(const WeightsRecord& r, const hub::FetchOptions& options) {
    const std::string id = hd::sha256_hex(r.name() + "\n" + r.url).substr(0, 16);
    std::string base;
    {
      std::lock_guard<std::mutex> guard(sequence_mu_);
      base = "fetch/r" + restart_ + "/" + id + "/" + std::to_string(sequence_[id]++);
      if (hosts_server_) done_keys_.push_back(base + "/done");
    }
    const std::string key = base + "/" + std::to_string(leader_), done = base + "/done";
    if (o_.rank == leader_) return lead(r, options, key, done);
    return follow(r, key, done);
  }

 private:
  std::string lead(const WeightsRecord& r, const hub::FetchOptions& options, const std::string& key,
                   const std::string& done) {
    std::atomic<bool> working{true};
    std::mutex m;
    std::condition_variable cv;
    std::thread beat([&] {
      std::unique_lock<std::mutex> lk(m);
      while (working) {
        try {
          locked([&] { return store_->add(key + "/beat", 1); });
        } catch (const std::exception&) {
          // the outcome's set() below reports a broken store
        }
        cv.wait_for(lk, std::chrono::milliseconds(250), [&] { return !working; });
      }
    });
    json outcome;
    std::string path;
    std::exception_ptr error;
    try {
      path = hub::fetch_local(r, options);
      outcome = {{"ok", true}, {"path", path}};
    } catch (const HubError& e) {
      outcome = error_json(e, "HubError"), error = std::current_exception();
    } catch (const UsageError& e) {
      outcome = error_json(e, "UsageError"), error = std::current_exception();
    } catch (const Error& e) {
      outcome = error_json(e, "Error"), error = std::current_exception();
    } catch (const std::exception& e) {
      outcome = error_json(HubError(r.name(), first_line(e.what())), "HubError"), error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lk(m);
      working = false;
    }
    cv.notify_all();
    beat.join();
    try {
      const std::string text = outcome.dump();
      locked([&] {
        store_->set(key, std::vector<std::uint8_t>(text.begin(), text.end()));
        return store_->add(done, 1);
      });
    } catch (const std::exception& e) {
      if (!error) store_failed(r.name(), "telling the other ranks the outcome", e);
    }
    if (error) std::rethrow_exception(error);
    return path;
  }

  std::string follow(const WeightsRecord& r, const std::string& key, const std::string& done) {
    const std::string who = "rank " + std::to_string(leader_);
    const auto start = Clock::now();
    auto changed = start;
    std::int64_t beat = 0;
    json outcome;
    try {
      for (;;) {
        if (locked([&] { return store_->check({key}); })) break;
        const std::int64_t b = locked([&] { return store_->add(key + "/beat", 0); });
        const auto now = Clock::now();
        if (b != beat) beat = b, changed = now;
        if (beat > 0 && now - changed > o_.heartbeat)
          throw HubError(r.name(), who + " stopped while fetching it (no sign of life for " + seconds(o_.heartbeat) +
                                       ", MZ_STORE_HEARTBEAT); rerun to resume its partial download");
        if (now - start > o_.timeout)
          throw HubError(r.name(), "timed out after " + seconds(o_.timeout) + " waiting for " + who +
                                       " to fetch it (MZ_STORE_TIMEOUT)");
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      const std::vector<std::uint8_t> value = locked([&] { return store_->get(key); });
      outcome = json::parse(std::string(value.begin(), value.end()), nullptr, false);
      locked([&] { return store_->add(done, 1); });
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      store_failed(r.name(), "waiting for " + who + " to fetch it (did it die?)", e);
    }
    if (!outcome.is_object()) throw HubError(r.name(), who + " left a malformed outcome in the c10d store");
    if (!outcome.value("ok", false)) rethrow(outcome);
    const std::string path = hub::fetch_cached(r);
    if (path.empty())
      throw HubError(r.name(), who + " fetched it to " + outcome.value("path", "?") + ", but this rank's cache (" +
                                   hub::cache_dir() + ") does not have it: a node's ranks must share MZ_CACHE_DIR, "
                                   "and MZ_SHARED_CACHE=1 needs one cache for the whole cluster");
    return path;
  }

  static std::string seconds(std::chrono::milliseconds ms) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g s", ms.count() / 1000.0);
    return buf;
  }

  c10::intrusive_ptr<c10d::Store> store_;
  Options o_;
  bool hosts_server_;
  int leader_ = 0;
  std::mutex mu_;
  // torchrun restarts a failed job's workers against the same store: their keys must not see the last attempt's
  std::string restart_ = hd::env_str("TORCHELASTIC_RESTART_COUNT", "0");
  std::mutex sequence_mu_;
  std::map<std::string, std::int64_t> sequence_;
  std::vector<std::string> done_keys_;
};

struct State {
  std::mutex mu;
  std::shared_ptr<Group> passed;    // use_store()
  std::shared_ptr<Group> from_env;  // torchrun's environment, created on first use
  bool env_failed = false;
};
State& state() {
  static State s;
  return s;
}

bool truthy(const std::string& v) { return v == "1" || v == "true" || v == "yes" || v == "on"; }

int env_int(const char* name) {
  const long v = hd::env_long(name, -1);
  return static_cast<int>(v);
}

// Sends stderr to /dev/null for its lifetime.
class QuietStderr {
 public:
  QuietStderr() : saved_(::dup(2)) {
    const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (saved_ >= 0 && null >= 0) ::dup2(null, 2);
    if (null >= 0) ::close(null);
  }
  ~QuietStderr() {
    if (saved_ < 0) return;
    ::dup2(saved_, 2);
    ::close(saved_);
  }
  QuietStderr(const QuietStderr&) = delete;
  QuietStderr& operator=(const QuietStderr&) = delete;

 private:
  int saved_;
};

// The store torchrun's environment names: rank 0 serves it at MASTER_ADDR:MASTER_PORT unless the
// agent does (TORCHELASTIC_USE_AGENT_STORE=True, as torchrun sets it, or a Python server); with
// MZ_STORE_FILE, a FileStore on a shared file system instead.
std::shared_ptr<Group> group_from_env(const std::string& subject) {
  const Options o = Options::from_env();
  const std::string file = hd::env_str("MZ_STORE_FILE");
  if (!file.empty()) {
    try {
      return std::make_shared<Group>(c10::make_intrusive<c10d::FileStore>(file, o.world_size), o, false);
    } catch (const std::exception& e) {
      throw HubError(subject, "cannot open the c10d FileStore " + file + " (MZ_STORE_FILE): " + first_line(e.what()));
    }
  }
  const std::string host = hd::env_str("MASTER_ADDR");
  const long port = hd::env_long("MASTER_PORT", -1);
  if (host.empty() || port <= 0 || port > 65535)
    throw UsageError(subject, "RANK and WORLD_SIZE are set but MASTER_ADDR/MASTER_PORT are not (torchrun sets all)");
  c10d::TCPStoreOptions t;
  t.port = static_cast<std::uint16_t>(port);
  t.isServer = o.rank == 0 && hd::env_str("TORCHELASTIC_USE_AGENT_STORE") != "True";
  t.waitWorkers = false;
  t.timeout = std::min<std::chrono::milliseconds>(o.timeout, std::chrono::seconds(300));
  try {
    const QuietStderr quiet;  // c10d logs its connection failures through glog; the HubError below says it once
    return std::make_shared<Group>(c10::make_intrusive<c10d::TCPStore>(host, t), o, t.isServer);
  } catch (const std::exception& e) {
    throw HubError(subject, std::string(t.isServer ? "cannot serve" : "cannot reach") + " the c10d store at " + host +
                                ":" + std::to_string(port) + " within " +
                                std::to_string(t.timeout.count() / 1000) + " s (MASTER_ADDR, MASTER_PORT, "
                                "MZ_STORE_TIMEOUT): " + first_line(e.what()));
  }
}

bool env_present() {
  return !hd::env_str("RANK").empty() && !hd::env_str("WORLD_SIZE").empty() && hd::env_str("MZ_CLUSTER") != "0";
}

std::string coordinate(const WeightsRecord& r, const hub::FetchOptions& options) {
  std::shared_ptr<Group> g;
  {
    State& s = state();
    std::lock_guard<std::mutex> guard(s.mu);
    if (s.passed) g = s.passed;
    else if (env_present() && hd::env_long("WORLD_SIZE", 1) > 1) {
      if (!s.from_env) s.from_env = group_from_env(r.name());
      g = s.from_env;
    }
  }
  if (!g) return hub::fetch_local(r, options);
  LockFile::active();  // a lock file that does not parse fails here, on every rank alike
  return g->fetch(r, options);
}

// NOLINTNEXTLINE(cert-err58-cpp): installing the coordinator at load time is the point.
const bool installed = (hub::set_coordinator(coordinate), true);

}  // namespace

Options Options::from_env() {
  Options o;
  o.rank = env_int("RANK");
  o.world_size = env_int("WORLD_SIZE");
  o.local_rank = env_int("LOCAL_RANK");
  if (o.rank < 0) o.rank = 0;
  if (o.world_size < 1) o.world_size = 1;
  o.shared_cache = truthy(hd::env_str("MZ_SHARED_CACHE"));
  o.timeout = std::chrono::seconds(hd::env_long("MZ_STORE_TIMEOUT", 1800));
  o.heartbeat = std::chrono::seconds(hd::env_long("MZ_STORE_HEARTBEAT", 60));
  return o;
}

void use_store(c10::intrusive_ptr<c10d::Store> store, Options options) {
  if (!store) throw UsageError("mz::cluster::use_store", "no store");
  if (options.world_size < 1 || options.rank < 0 || options.rank >= options.world_size)
    throw UsageError("mz::cluster::use_store", "rank " + std::to_string(options.rank) + " is not in a world of " +
                                                   std::to_string(options.world_size));
  const Options env = Options::from_env();
  if (options.local_rank < 0 && hd::env_long("LOCAL_RANK", -1) >= 0) options.local_rank = env.local_rank;
  if (options.timeout.count() <= 0) options.timeout = env.timeout;
  if (options.heartbeat.count() <= 0) options.heartbeat = env.heartbeat;
  options.shared_cache = options.shared_cache || env.shared_cache;
  State& s = state();
  std::lock_guard<std::mutex> guard(s.mu);
  s.passed = std::make_shared<Group>(std::move(store), options, false);
}

void stop_using_store() {
  State& s = state();
  std::lock_guard<std::mutex> guard(s.mu);
  s.passed.reset();
}

}  // namespace mz::cluster
