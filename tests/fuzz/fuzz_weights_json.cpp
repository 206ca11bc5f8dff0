// libFuzzer target: the JSON users hand modelzoo about weights. Every input is tried as both:
// - a weight entry (manifests, `mz list --json`): mz::UsageError naming the source, or a record whose JSON reads
//   back to the same JSON;
// - a lock file: mz::HubError naming the source, or a lock whose JSON parses back to the same JSON.
// Anything else (crash, sanitizer report, another exception) is a bug.
#include <string>

#include "harness.h"
#include "modelzoo/hub.h"
#include "modelzoo/weights.h"

namespace {
constexpr const char* kSource = "fuzz-input";

[[noreturn]] void fail(const char* what, const std::string& detail) { mz_fuzz::fail(std::string(what) + ": " + detail); }

void weight_entry(const std::string& text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return;
  try {
    const nlohmann::json once = mz::to_json(mz::record_from_json(j, kSource));
    const nlohmann::json twice = mz::to_json(mz::record_from_json(once, kSource));
    if (once != twice) fail("weight entry does not round-trip", once.dump() + " != " + twice.dump());
  } catch (const mz::UsageError& e) {
    if (e.subject().rfind(kSource, 0) != 0) fail("error does not name the source", e.what());
  }
}

void lock_file(const std::string& text) {
  try {
    const nlohmann::json once = mz::LockFile::parse(text, kSource).to_json();
    const nlohmann::json twice = mz::LockFile::parse(once.dump(), kSource).to_json();
    if (once != twice) fail("lock file does not round-trip", once.dump() + " != " + twice.dump());
  } catch (const mz::HubError& e) {
    if (e.subject().rfind(kSource, 0) != 0) fail("error does not name the source", e.what());
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  weight_entry(text);
  lock_file(text);
  return 0;
}
