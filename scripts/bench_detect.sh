#!/usr/bin/env bash
# Detection latency: torchvision (Python, eager) and mz on the same checkpoint and the same image, in
# the same run, batch 1; prints both medians and the ratio mz / torchvision (target <= 1.0).
#   scripts/bench_detect.sh [MODEL...]
#   (default: fasterrcnn_resnet50_fpn retinanet_resnet50_fpn ssdlite320_mobilenet_v3_large)
# The checkpoint is torchvision's random init (weights=None, weights_backbone=None: BatchNorm); the image
# is uniform noise, 800 x 800 px for the R-CNNs and RetinaNet (their transform keeps 800) and 320 x 320
# for SSDLite. Env: REPEAT (forwards per round, default 5), ROUNDS (alternating rounds, default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/mz ] || scripts/build.sh >&2
REPEAT=${REPEAT:-5} ROUNDS=${ROUNDS:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(fasterrcnn_resnet50_fpn retinanet_resnet50_fpn ssdlite320_mobilenet_v3_large)

tv() {  # tv prepare|forward MODEL CKPT INPUT SIZE
  /usr/bin/python3 - "$@" "$REPEAT" <<'PY'
import json, statistics, sys, time
import torch
from torchvision.models import detection
sys.path.insert(0, "tests/oracle")
import st
phase, name, ckpt, inp, size, repeat = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
model = getattr(detection, name)(weights=None, weights_backbone=None)
if phase == "prepare":
    torch.manual_seed(0)
    torch.save(model.state_dict(), ckpt)
    st.save(inp, {"input": torch.rand(1, 3, size, size)})
    sys.exit()
model.load_state_dict(torch.load(ckpt))
model.eval()
images = list(st.load(inp)["input"])
times = []
with torch.inference_mode():
    model(images)
    for _ in range(repeat):
        t0 = time.perf_counter()
        model(images)
        times.append((time.perf_counter() - t0) * 1000)
print(json.dumps({"forward_ms": statistics.median(times), "threads": torch.get_num_threads()}))
PY
}

printf '%-32s %6s %12s %12s %8s\n' model size "tv ms" "mz ms" "mz/tv"
for model in "${models[@]}"; do
  case $model in ssd*) size=320 ;; *) size=800 ;; esac
  ckpt=$work/$model.pth input=$work/$model.safetensors
  tv prepare "$model" "$ckpt" "$input" "$size"
  runs=()
  for _ in $(seq "$ROUNDS"); do  # alternating, so that the machine's drifts hit both
    runs+=("$(tv forward "$model" "$ckpt" "$input" "$size")")
    runs+=("$(build/mz bench "$model" --checkpoint "$ckpt" --input "$input" --repeat "$REPEAT" --json)")
  done
  /usr/bin/python3 - "$model" "$size" "${runs[@]}" <<'PY'
import json, statistics, sys
model, size, *runs = sys.argv[1], sys.argv[2], *map(json.loads, sys.argv[3:])
tv = statistics.median(r["forward_ms"] for r in runs[0::2])
mz = statistics.median(r["forward_ms"] for r in runs[1::2])
print(f"{model:32s} {size:>6s} {tv:12.1f} {mz:12.1f} {mz / tv:8.3f}")
PY
done
echo "(milliseconds, median over $ROUNDS alternating rounds of $REPEAT forwards each, after a warm-up; batch 1;" \
  "$(nproc) cores, default torch threads on both sides)"
