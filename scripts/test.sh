#!/usr/bin/env bash
# Builds and runs the default test suite (what CI runs). --extended adds the large models.
#   scripts/test.sh [--extended] [ctest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
LABELS=(-LE extended)
if [ "${1:-}" = "--extended" ]; then LABELS=(); shift; fi

scripts/build.sh

# The LibTorch-free checkpoint parsers again, under ASan + UBSan (clang-14).
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
if [ ! -f build-asan/build.ninja ]; then
  CXX=clang++-14 cmake -S . -B build-asan -G Ninja -DMZ_FORMATS_ONLY=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
fi
cmake --build build-asan -j "${MZ_JOBS:-$(nproc)}"
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure

# Every fuzz target (tests/fuzz) for a few seconds, after replaying its committed corpus.
scripts/fuzz.sh --smoke

ctest --test-dir build --output-on-failure -j "${MZ_JOBS:-$(nproc)}" "${LABELS[@]}" "$@"
