#!/usr/bin/env bash
# Detection latency, four ways, on the same checkpoint and the same image, in the same run, batch 1:
#   tv      torchvision eager (Python)
#   tv-jit  torch.jit.optimize_for_inference(torch.jit.script(model))
#   mz      mz eager (mz bench)
#   mz-opt  mz::optimize_for_inference (mz bench --optimize)
# Prints the medians and the ratios mz / tv (target <= 1.0), opt / tv and opt / jit, each the median of the
# rounds' own ratios (scripts/bench_ratios.py, as bench_infer.sh).
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

tv() {  # tv prepare|eager|jit MODEL CKPT INPUT SIZE
  /usr/bin/python3 - "$@" "$REPEAT" <<'PY'
import json, statistics, sys, time, warnings
import torch
from torchvision.models import detection
warnings.filterwarnings("ignore")  # scripted detectors warn at every call that they return losses too
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
if phase == "jit":
    model = torch.jit.optimize_for_inference(torch.jit.script(model))
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

printf '%-32s %5s %9s %9s %9s %9s   %8s %8s %8s\n' model size tv tv-jit mz mz-opt "mz/tv" "opt/tv" "opt/jit"
for model in "${models[@]}"; do
  case $model in ssd*) size=320 ;; *) size=800 ;; esac
  ckpt=$work/$model.pth input=$work/$model.safetensors
  tv prepare "$model" "$ckpt" "$input" "$size"
  runs=()
  for _ in $(seq "$ROUNDS"); do  # alternating, so that the machine's drifts hit all four
    runs+=("$(tv eager "$model" "$ckpt" "$input" "$size")")
    runs+=("$(tv jit "$model" "$ckpt" "$input" "$size")")
    runs+=("$(build/mz bench "$model" --checkpoint "$ckpt" --input "$input" --repeat "$REPEAT" --json)")
    runs+=("$(build/mz bench "$model" --checkpoint "$ckpt" --input "$input" --repeat "$REPEAT" --json --optimize)")
  done
  scripts/bench_ratios.py 32 "$model" "$size" "${runs[@]}"
done
echo "(milliseconds, median over $ROUNDS alternating rounds of $REPEAT forwards each, after a warm-up; batch 1;" \
  "$(nproc) cores, default torch threads on both sides)"
