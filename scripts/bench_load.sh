#!/usr/bin/env bash
# Load time (construct + read + load, median) and batch-1 forward latency of mz against torchvision in
# Python on the same checkpoint file, in the same run; prints both and the ratios, and the peak RSS
# of mz's load above its baseline against the checkpoint size. mz loads twice: copying the tensors
# (what a checkpoint path gets) and mapping the file (what weights from the hub cache get, --mmap).
#   scripts/bench_load.sh [MODEL...]      (default: resnet50 efficientnet_b0 vit_b_16)
# Env: REPEAT (default 7), SIZE (input side, default 224), FORMAT (zip|legacy|safetensors, default zip),
#      ROUNDS (alternating forward rounds, default 3), FORWARD=0 to time loads only (vit_l_16's
#      forward takes a minute here).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/mz ] || scripts/build.sh >&2
REPEAT=${REPEAT:-7} SIZE=${SIZE:-224} FORMAT=${FORMAT:-zip} FORWARD=${FORWARD:-1} ROUNDS=${ROUNDS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(resnet50 efficientnet_b0 vit_b_16)

printf '%-16s %10s %16s %16s   %10s %10s %6s   %s\n' model "tv load" "mz load (copy)" "mz load (mmap)" \
  "tv fwd" "mz fwd" ratio "load RSS over baseline / checkpoint"
# torchvision's side: `load` writes the checkpoint and times loads; `forward` times forward passes.
tv() {
  /usr/bin/python3 - "$@" "$REPEAT" "$SIZE" "$FORMAT" <<'PY'
import statistics, sys, time, json, os
import torch, torchvision.models as tvm
sys.path.insert(0, "tests/oracle")
import st
phase, model, ckpt, repeat, size, fmt = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
load = lambda: st.load(ckpt) if fmt == "safetensors" else torch.load(ckpt)
if phase == "load":
    sd = tvm.get_model(model).state_dict()
    if fmt == "safetensors": st.save(ckpt, dict(sd))
    else: torch.save(sd, ckpt, **({} if fmt == "zip" else {"_use_new_zipfile_serialization": False}))
    del sd
    loads = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        m = tvm.get_model(model)
        m.load_state_dict(load())
        loads.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({"load_ms": statistics.median(loads), "size_mb": os.path.getsize(ckpt) / 2**20}))
else:
    m = tvm.get_model(model)
    m.load_state_dict(load())
    m.eval()
    x = torch.randn(1, 3, size, size)
    fwd = []
    with torch.inference_mode():
        m(x)
        for _ in range(repeat):
            t0 = time.perf_counter(); m(x); fwd.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({"forward_ms": statistics.median(fwd)}))
PY
}
for model in "${models[@]}"; do
  ckpt=$work/$model.pth
  tv_load=$(tv load "$model" "$ckpt")
  copy=$(build/mz bench "$model" --checkpoint "$ckpt" --load-only --repeat "$REPEAT" --json)
  mapped=$(build/mz bench "$model" --checkpoint "$ckpt" --mmap --load-only --repeat "$REPEAT" --json)
  # Forward passes alternate between the two, ROUNDS times, so that drifts of the machine hit both.
  forwards=()
  for _ in $(seq "$ROUNDS"); do
    [ "$FORWARD" = 1 ] || break
    forwards+=("$(tv forward "$model" "$ckpt")")
    forwards+=("$(build/mz bench "$model" --checkpoint "$ckpt" --repeat "$REPEAT" --size "$SIZE" --json)")
  done
  /usr/bin/python3 - "$model" "$tv_load" "$copy" "$mapped" "${forwards[@]}" <<'PY'
import json, statistics, sys
model, tv, copy, mapped, *fwd = sys.argv[1], *map(json.loads, sys.argv[2:])
median = lambda xs: statistics.median(xs) if xs else float("nan")
tv_fwd, mz_fwd = median([f["forward_ms"] for f in fwd[0::2]]), median([f["forward_ms"] for f in fwd[1::2]])
rss = copy["load_peak_rss_mb"] - copy["baseline_rss_mb"]
ms = lambda x, ref: f"{x:7.1f} ({x / ref:5.3f})"
print(f"{model:16s} {tv['load_ms']:10.1f} {ms(copy['load_ms'], tv['load_ms']):>16s} {ms(mapped['load_ms'], tv['load_ms']):>16s}   "
      f"{tv_fwd:10.1f} {mz_fwd:10.1f} {mz_fwd / tv_fwd:6.3f}   "
      f"{rss:.0f} MB / {tv['size_mb']:.0f} MB = {rss / tv['size_mb']:.2f}x")
PY
done
echo "(milliseconds, medians; (ratio) = mz / torchvision, lower is better. $(nproc) cores, torch threads = default," \
  "REPEAT=$REPEAT, forward: median of $ROUNDS alternating rounds)"
