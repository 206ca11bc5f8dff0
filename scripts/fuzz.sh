#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz (clang-14, ASan + UBSan) and runs them, one after another.
#   scripts/fuzz.sh [--runs N | --seconds S] [TARGET...]    a campaign (default: 60 seconds per target)
#   scripts/fuzz.sh --smoke [TARGET...]                       the default suite's run: the committed corpus
#                                                             replayed, then 5 seconds of fuzzing per target
# TARGET: formats images weights_json spec tokenizers audio (default: all of them).
# Each run is seeded with the committed corpus (tests/fuzz/corpus/TARGET), the generated fixtures and, when it
# exists, the small files of ../shared/corpus. A campaign merges what adds coverage back into the committed corpus
# (a smoke run changes nothing) and appends a line to $build/campaigns.tsv: target, executions, seconds, edges
# covered, features, corpus files, crashes. A crash stops the run: the input is written to $build/TARGET-crash-*
# and the script fails. The new corpus is then replayed in one process, for LeakSanitizer to check at exit.
#   env: MZ_FUZZ_BUILD (default build-fuzz), MZ_FUZZ_TMPDIR (default /dev/shm)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${MZ_FUZZ_BUILD:-$root/build-fuzz}
all=(formats images weights_json spec tokenizers audio)
limit=(-max_total_time=60) smoke=0 targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) limit=(-runs="$2"); shift 2 ;;
    --seconds) limit=(-max_total_time="$2"); shift 2 ;;
    --smoke) smoke=1 limit=(-max_total_time=5 -seed=1); shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) [[ " ${all[*]} " == *" $1 "* ]] || { echo "fuzz.sh: unknown target $1 (${all[*]})" >&2; exit 2; }
       targets+=("$1"); shift ;;
  esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
CXX=clang++-14 cmake -S "$root/tests/fuzz" -B "$build" -G Ninja >/dev/null
cmake --build "$build" -j "${MZ_JOBS:-$(nproc)}" --target $(printf 'fuzz_%s ' "${targets[@]}")
# the targets that read files write them here: memory, where there is a /dev/shm
[ -n "${MZ_FUZZ_TMPDIR:-}" ] || { [ -w /dev/shm ] && MZ_FUZZ_TMPDIR=/dev/shm; } || MZ_FUZZ_TMPDIR=${TMPDIR:-/tmp}
export TMPDIR=$MZ_FUZZ_TMPDIR
export LSAN_OPTIONS=suppressions=$root/tests/fuzz/lsan.supp:print_suppressions=0
shared=$root/../shared/corpus

# Seed inputs for target $1 (besides its committed corpus), into the folder $2.
seed() {
  local target=$1 out=$2 gen=$build/generated/$1
  rm -rf "$out" && mkdir -p "$out"
  case $target in
    formats)
      [ -d "$gen" ] || /usr/bin/python3 "$root/tests/formats/make_fixtures.py" "$gen" >/dev/null
      find "$gen" -type f ! -name '*.json' -size -64k -exec cp {} "$out/" \;
      [ ! -d "$shared/checkpoints" ] || find "$shared/checkpoints" -type f -size -64k ! -name '*.tsv' ! -name '*.txt' \
        -exec cp {} "$out/" \; ;;
    images)
      [ -d "$gen" ] || /usr/bin/python3 "$root/tests/images/gen_images.py" "$gen" >/dev/null
      find "$gen" -type f -size -32k ! -name '*.safetensors' -exec cp {} "$out/" \;
      [ ! -d "$shared/images" ] || find "$shared/images" -type f -size -32k ! -name '*.tsv' ! -name '*.txt' \
        -exec sh -c 'for f; do cp "$f" "$0/$(echo "$f" | md5sum | cut -c1-12)-$(basename "$f")"; done' "$out" {} + ;;
    weights_json)
      [ ! -x "$root/build/mz" ] || /usr/bin/python3 "$root/tests/fuzz/make_seeds.py" weights_json "$out" "$root/build/mz" ;;
    *)
      /usr/bin/python3 "$root/tests/fuzz/make_seeds.py" "$target" "$out" ;;
  esac
}

for target in "${targets[@]}"; do
  fuzz=$build/fuzz_$target corpus=$root/tests/fuzz/corpus/$target
  seeds=$build/seeds/$target work=$build/work/$target log=$build/$target.log
  mkdir -p "$corpus" && rm -rf "$work" && mkdir -p "$work"
  seed "$target" "$seeds"
  case $target in  # the largest input worth trying: checkpoints and images need room for their structures
    formats) max_len=65536 ;; images) max_len=32768 ;; weights_json|spec) max_len=4096 ;; *) max_len=16384 ;;
  esac
  flags=(-max_len=$max_len -timeout=20 -rss_limit_mb=3072 -artifact_prefix="$build/$target-" -print_final_stats=1)
  # libsndfile leaks libvorbis's state on each damaged Ogg file (lsan.supp), and each leak makes libFuzzer scan
  # LibTorch's heap: 150 executions/s instead of 2,000. The campaign's leaks are checked on its corpus instead.
  campaign_flags=()
  [ "$target" != audio ] || campaign_flags=(-detect_leaks=0)
  echo "== fuzz $target: $(ls "$corpus" | wc -l) corpus files, $(ls "$seeds" | wc -l) seeds, ${limit[*]}"
  start=$(date +%s)
  if [ $smoke = 1 ]; then
    "$fuzz" "${flags[@]}" -runs=0 "$corpus" "$seeds" >"$log" 2>&1 || { tail -n 40 "$log"; exit 1; }
    "$fuzz" "${flags[@]}" "${limit[@]}" "$work" "$corpus" "$seeds" >>"$log" 2>&1 || { tail -n 40 "$log"; exit 1; }
  else
    "$fuzz" "${flags[@]}" "${campaign_flags[@]}" "${limit[@]}" "$work" "$corpus" "$seeds" >"$log" 2>&1 ||
      { tail -n 40 "$log"; exit 1; }
  fi
  seconds=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1)
  cov=$(sed -E 's/.*cov: ([0-9]+).*/\1/' <<<"$done_line") ft=$(sed -E 's/.*ft: ([0-9]+).*/\1/' <<<"$done_line")
  echo "   $execs executions in ${seconds}s, $cov edges, $ft features"
  [ $smoke = 1 ] && continue
  # The committed corpus becomes a minimal set covering every edge seen (edges only, no counters).
  merged=$build/merged/$target
  rm -rf "$merged" && mkdir -p "$merged"
  "$fuzz" "${flags[@]}" -merge=1 -use_counters=0 "$merged" "$corpus" "$work" "$seeds" >>"$log" 2>&1
  rm -rf "$corpus" && mv "$merged" "$corpus"
  # Every input of the new corpus once more, in one process: LeakSanitizer reports at exit what any of them leaked.
  find "$corpus" -type f -print0 | xargs -0 "$fuzz" "${flags[@]}" >>"$log" 2>&1 ||
    { tail -n 40 "$log"; echo "fuzz.sh: $target: the corpus replay failed (a leak?)" >&2; exit 1; }
  files=$(ls "$corpus" | wc -l)
  echo "   corpus: $files files, $(du -sh "$corpus" | cut -f1) in tests/fuzz/corpus/$target"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t0\t%s\n' "$target" "$execs" "$seconds" "$cov" "$ft" "$files" "$(date -u +%F)" \
    >>"$build/campaigns.tsv"
done
