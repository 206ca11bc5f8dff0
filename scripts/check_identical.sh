#!/usr/bin/env bash
# Checks that a change leaves the numbers bit-identical: builds REV (default: origin/main, else
# HEAD~1) in a separate worktree, builds scripts/identical/dump.cpp against it and against this
# tree's build/, and compares what each writes for a sample of models: every parameter and buffer
# after seeded random init (the init path) and the outputs of an eval forward pass.
#   scripts/check_identical.sh [REV]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
REV="${1:-$(git rev-parse -q --verify origin/main || git rev-parse HEAD~1)}"
WORK="${MZ_IDENTICAL_DIR:-$ROOT/build-identical}"
export CCACHE_BASEDIR="${CCACHE_BASEDIR:-$(dirname "$ROOT")}"

scripts/build.sh >/dev/null
if [ ! -d "$WORK/base" ]; then git worktree add --detach "$WORK/base" "$REV" >/dev/null; fi
git -C "$WORK/base" checkout -q --detach "$REV"
(cd "$WORK/base" && MZ_JOBS="${MZ_JOBS:-$(nproc)}" scripts/build.sh -DMZ_BUILD_TESTS=OFF >/dev/null)

for side in base head; do
  prefix="$ROOT/build"
  [ "$side" = base ] && prefix="$WORK/base/build"
  cmake -S scripts/identical -B "$WORK/dump-$side" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
  cmake --build "$WORK/dump-$side" >/dev/null
  rm -rf "$WORK/out-$side" && mkdir -p "$WORK/out-$side"
  "$WORK/dump-$side/dump" "$WORK/out-$side" >/dev/null
done

status=0
for f in "$WORK"/out-base/*.bin; do
  name=$(basename "$f" .bin)
  if cmp -s "$f" "$WORK/out-head/$name.bin"; then echo "identical  $name"; else echo "DIFFERENT  $name"; status=1; fi
done
echo "check_identical: $REV vs the working tree: $([ $status = 0 ] && echo bit-identical || echo DIFFERENT)"
exit $status
