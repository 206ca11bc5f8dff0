#!/usr/bin/env bash
# Opt-in bounded fuzz run of the image decoders (weights/transforms/image.cpp: JPEG via libjpeg-turbo, PNG via
# libpng): builds the standalone libFuzzer target tests/images/fuzz (clang-14, ASan + UBSan, no
# LibTorch) and runs it for SECONDS (default 60), seeded with small generated images and the
# committed corpus. Inputs that add coverage are merged into tests/images/corpus/; crashes are
# written to the build directory (crash-*, leak-*, timeout-*) and make the script fail.
#   usage: scripts/fuzz_images.sh [SECONDS]      env: MZ_FUZZ_IMAGES_BUILD (default build-fuzz-images)
set -euo pipefail
seconds=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MZ_FUZZ_IMAGES_BUILD:-$root/build-fuzz-images}
corpus=$root/tests/images/corpus

CXX=clang++-14 cmake -S "$root/tests/images/fuzz" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j1

seeds=$build/fuzz-seeds work=$build/fuzz-work
rm -rf "$seeds" "$work" "$build/images" && mkdir -p "$seeds" "$work" "$corpus"
/usr/bin/python3 "$root/tests/images/gen_images.py" "$build/images"
find "$build/images" -type f -size -32k -exec cp {} "$seeds/" \;

fuzz=$build/fuzz_images
flags=(-max_len=32768 -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$build/")
"$fuzz" "${flags[@]}" -max_total_time="$seconds" -print_final_stats=1 "$work" "$corpus" "$seeds"
# Rebuild the committed corpus as a minimal set covering every edge seen (edges only, no counters).
merged=$build/fuzz-merged
rm -rf "$merged" && mkdir -p "$merged"
"$fuzz" "${flags[@]}" -merge=1 -use_counters=0 "$merged" "$corpus" "$work" "$seeds" 2>&1 | tail -n 1
rm -rf "$corpus" && mv "$merged" "$corpus"
echo "corpus: $(ls "$corpus" | wc -l) files, $(du -sh "$corpus" | cut -f1) in $corpus"
