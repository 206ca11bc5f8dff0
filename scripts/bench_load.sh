#!/usr/bin/env bash
# Load time (construct + read + load, median) and batch-1 forward latency of mz against torchvision in
# Python on the same checkpoint file, in the same run; prints both and the ratios, and the peak RSS
# of mz's load above its baseline against the checkpoint size. mz loads twice: copying the tensors
# (what a checkpoint path gets) and mapping the file (what weights from the hub cache get, --mmap).
#   scripts/bench_load.sh [MODEL...]      (default: resnet50 efficientnet_b0 vit_b_16)
# Env: REPEAT (default 7), SIZE (input side, default 224), FORMAT (zip|legacy|safetensors, default zip).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/mz ] || scripts/build.sh >&2
REPEAT=${REPEAT:-7} SIZE=${SIZE:-224} FORMAT=${FORMAT:-zip}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(resnet50 efficientnet_b0 vit_b_16)

printf '%-16s %10s %16s %16s   %10s %10s %6s   %s\n' model "tv load" "mz load (copy)" "mz load (mmap)" \
  "tv fwd" "mz fwd" ratio "load RSS over baseline / checkpoint"
for model in "${models[@]}"; do
  ckpt=$work/$model.pth
  tv=$(/usr/bin/python3 - "$model" "$ckpt" "$REPEAT" "$SIZE" "$FORMAT" <<'PY'
import statistics, sys, time, json, os
import torch, torchvision.models as tvm
sys.path.insert(0, "tests/oracle")
import st
model, ckpt, repeat, size, fmt = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
sd = tvm.get_model(model).state_dict()
if fmt == "safetensors": st.save(ckpt, dict(sd))
else: torch.save(sd, ckpt, **({} if fmt == "zip" else {"_use_new_zipfile_serialization": False}))
del sd
loads = []
for _ in range(repeat):
    t0 = time.perf_counter()
    m = tvm.get_model(model)
    m.load_state_dict(st.load(ckpt) if fmt == "safetensors" else torch.load(ckpt))
    loads.append((time.perf_counter() - t0) * 1000)
m.eval()
x = torch.randn(1, 3, size, size)
fwd = []
with torch.inference_mode():
    m(x)
    for _ in range(repeat):
        t0 = time.perf_counter(); m(x); fwd.append((time.perf_counter() - t0) * 1000)
print(json.dumps({"load_ms": statistics.median(loads), "forward_ms": statistics.median(fwd),
                  "size_mb": os.path.getsize(ckpt) / 2**20}))
PY
)
  ours=$(build/mz bench "$model" --checkpoint "$ckpt" --repeat "$REPEAT" --size "$SIZE" --json)
  mapped=$(build/mz bench "$model" --checkpoint "$ckpt" --mmap --load-only --repeat "$REPEAT" --json)
  /usr/bin/python3 - "$model" "$tv" "$ours" "$mapped" <<'PY'
import json, sys
model, tv, ours, mapped = sys.argv[1], *map(json.loads, sys.argv[2:])
rss = ours["load_peak_rss_mb"] - ours["baseline_rss_mb"]
ms = lambda x, ref: f"{x:7.1f} ({x / ref:5.3f})"
print(f"{model:16s} {tv['load_ms']:10.1f} {ms(ours['load_ms'], tv['load_ms']):>16s} {ms(mapped['load_ms'], tv['load_ms']):>16s}   "
      f"{tv['forward_ms']:10.1f} {ours['forward_ms']:10.1f} {ours['forward_ms'] / tv['forward_ms']:6.3f}   "
      f"{rss:.0f} MB / {tv['size_mb']:.0f} MB = {rss / tv['size_mb']:.2f}x")
PY
done
echo "(milliseconds, medians; (ratio) = mz / torchvision, lower is better. $(nproc) cores, torch threads = default, REPEAT=$REPEAT)"
