#!/usr/bin/env bash
# find_package(modelzoo) works from the build tree and from an install prefix: builds examples/ both
# ways and runs them. Usage: check_package.sh SOURCE_DIR BUILD_DIR WORK_DIR
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
for kind in build-tree install-prefix; do
  prefix=$build
  [ "$kind" = install-prefix ] && prefix=$work/prefix
  cmake -S "$src/examples" -B "$work/$kind" -G Ninja -DCMAKE_BUILD_TYPE=Release "${launcher[@]}" \
        -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
  cmake --build "$work/$kind" -j 2 >/dev/null
  for exe in "$work/$kind"/*; do
    [ -x "$exe" ] && [ -f "$exe" ] || continue
    "$exe" >/dev/null || { echo "package: $kind: $(basename "$exe") failed"; exit 1; }
  done
  echo "package: $kind ok"
done
# An installed mz finds its library through its RPATH.
"$work/prefix/bin/mz" list resnet18 >/dev/null   # the front end executes the installed mz-torch
MZ_CACHE_DIR="$work/cache" "$work/prefix/bin/mz" cache dir >/dev/null
echo "package: 2 passed, 0 failed"
