#!/usr/bin/env bash
# find_package(modelzoo) works from an install prefix and from the build tree: builds examples/load_checkpoint.cpp
# against each, as a consumer project would, and runs it. It uses the typed weights, whose headers the build generates.
# (tests/CMakeLists.txt builds and runs every program of examples/ in the build.)
# Usage: check_package.sh SOURCE_DIR BUILD_DIR WORK_DIR
set -euo pipefail
src=$1 build=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
# The examples take the library's compiler flags: a program linked to a sanitizer build must be built with the same
# sanitizers (their runtime has to come first among the loaded libraries).
flags=$(sed -n 's/^CMAKE_CXX_FLAGS:STRING=//p' "$build/CMakeCache.txt")
cmake --install "$build" --prefix "$work/prefix" >/dev/null
for kind in install-prefix build-tree; do
  prefix=$work/prefix
  [ "$kind" = build-tree ] && prefix=$build
  # A Release consumer (the package's Release configuration is the one imported), compiled without optimisation: the
  # program's work runs in the library, and -O0 compiles it in two thirds of the time.
  cmake -S "$src/examples" -B "$work/$kind" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE=-DNDEBUG \
        "${launcher[@]}" -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
  cmake --build "$work/$kind" --target load_checkpoint >/dev/null
  "$work/$kind/load_checkpoint" >/dev/null || { echo "package: $kind: load_checkpoint failed"; exit 1; }
  echo "package: $kind ok"
done
# An installed mz finds its library through its RPATH.
"$work/prefix/bin/mz" list resnet18 >/dev/null   # the front end executes the installed mz-torch
MZ_CACHE_DIR="$work/cache" "$work/prefix/bin/mz" cache dir >/dev/null
echo "package: 2 passed, 0 failed"
