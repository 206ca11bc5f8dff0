#!/usr/bin/env bash
# Opt-in bounded fuzz run of the checkpoint parsers: builds the libFuzzer target (clang-14, ASan +
# UBSan) and runs parse_checkpoint for SECONDS (default 60), seeded with the fixtures and the committed
# corpus. Inputs that add coverage are merged into tests/formats/corpus/; crashes are written to the
# build directory (crash-*, leak-*, timeout-*) and make the script fail.
#   usage: scripts/fuzz_formats.sh [SECONDS]      env: MZ_FUZZ_BUILD (default build-fuzz)
set -euo pipefail
seconds=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MZ_FUZZ_BUILD:-$root/build-fuzz}
corpus=$root/tests/formats/corpus

CXX=clang++-14 cmake -S "$root" -B "$build" -G Ninja -DMZ_FORMATS_ONLY=ON -DMZ_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" >/dev/null
cmake --build "$build" -j2 --target fuzz_formats

seeds=$build/fuzz-seeds work=$build/fuzz-work
rm -rf "$seeds" "$work" && mkdir -p "$seeds" "$work" "$corpus"
/usr/bin/python3 "$root/tests/formats/make_fixtures.py" "$build/fixtures/formats"
find "$build/fixtures/formats" -type f ! -name '*.json' -size -64k -exec cp {} "$seeds/" \;

fuzz=$build/tests/formats/fuzz_formats
flags=(-max_len=65536 -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$build/")
"$fuzz" "${flags[@]}" -max_total_time="$seconds" -print_final_stats=1 "$work" "$corpus" "$seeds"
# Rebuild the committed corpus as a minimal set covering every edge seen (edges only, no counters).
merged=$build/fuzz-merged
rm -rf "$merged" && mkdir -p "$merged"
"$fuzz" "${flags[@]}" -merge=1 -use_counters=0 "$merged" "$corpus" "$work" "$seeds" 2>&1 | tail -n 1
rm -rf "$corpus" && mv "$merged" "$corpus"
echo "corpus: $(ls "$corpus" | wc -l) files in $corpus"
