// What the fuzz targets share: failing loudly, and per-process paths for the inputs they hand over as files.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace mz_fuzz {

// A broken promise: print why and abort, which libFuzzer reports as a crash with the input saved.
[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "%s\n", what.c_str());
  std::abort();
}

// $TMPDIR/mz-fuzz-<pid>-<name>: one per process, so that parallel fuzzers (-jobs) do not share files.
inline std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("mz-fuzz-" + std::to_string(::getpid()) + "-" + name)).string();
}

}  // namespace mz_fuzz
