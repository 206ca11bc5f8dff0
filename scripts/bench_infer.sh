#!/usr/bin/env bash
# Inference latency, four ways, in one run on the same checkpoint and the same thread count:
#   tv        torchvision eager (Python)
#   tv-jit    torch.jit.optimize_for_inference(torch.jit.script(model))
#   mz        mz eager (mz bench)
#   mz-opt    mz::optimize_for_inference (mz bench --optimize)
# Rounds alternate between the four, so that drifts of the machine hit all of them; each prints the
# median of REPEAT forwards. The table gives each way's median over rounds, and ratios that are the median
# of each round's own ratios (scripts/bench_ratios.py).
#   scripts/bench_infer.sh [MODEL...]   (default: resnet50 efficientnet_b0 mobilenet_v3_large convnext_tiny vit_b_16)
# Env: BATCHES (default "1 8"), THREADS (default: nproc), ROUNDS (default 3), REPEAT (default 5), SIZE (default 224).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/mz ] || scripts/build.sh >&2
BATCHES=${BATCHES:-"1 8"} THREADS=${THREADS:-$(nproc)} ROUNDS=${ROUNDS:-3} REPEAT=${REPEAT:-5} SIZE=${SIZE:-224}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(resnet50 efficientnet_b0 mobilenet_v3_large convnext_tiny vit_b_16)

# torchvision's side: `save` writes a random-weight checkpoint; `eager` and `jit` time forwards.
tv() {
  /usr/bin/python3 - "$@" <<'PY'
import json, statistics, sys, time, warnings
import torch, torchvision.models as tvm
warnings.filterwarnings("ignore")  # TorchScript's frozen MobileNetV3 warns at every forward (resized outputs)
mode, model, ckpt, batch, threads, repeat, size = sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:8])
torch.set_num_threads(threads)
m = tvm.get_model(model)
if mode == "save":
    torch.save(m.state_dict(), ckpt)
    sys.exit(0)
m.load_state_dict(torch.load(ckpt))
m.eval()
x = torch.randn(batch, 3, size, size)
if mode == "jit":
    m = torch.jit.optimize_for_inference(torch.jit.script(m))
with torch.inference_mode():
    for _ in range(2):
        m(x)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter(); m(x); times.append((time.perf_counter() - t0) * 1000)
print(json.dumps({"forward_ms": statistics.median(times)}))
PY
}
mz() { build/mz bench "$1" --checkpoint "$2" --batch "$3" --threads "$THREADS" --repeat "$REPEAT" --size "$SIZE" \
         --json ${4:+"$4"}; }

printf '%-20s %5s %9s %9s %9s %9s   %8s %8s %8s\n' model batch tv tv-jit mz mz-opt "mz/tv" "opt/tv" "opt/jit"
for model in "${models[@]}"; do
  ckpt=$work/$model.pth
  tv save "$model" "$ckpt" 1 "$THREADS" 1 "$SIZE"
  for batch in $BATCHES; do
    runs=()
    for _ in $(seq "$ROUNDS"); do
      runs+=("$(tv eager "$model" "$ckpt" "$batch" "$THREADS" "$REPEAT" "$SIZE")")
      runs+=("$(tv jit "$model" "$ckpt" "$batch" "$THREADS" "$REPEAT" "$SIZE")")
      runs+=("$(mz "$model" "$ckpt" "$batch")")
      runs+=("$(mz "$model" "$ckpt" "$batch" --optimize)")
    done
    scripts/bench_ratios.py 20 "$model" "$batch" "${runs[@]}"
  done
done
echo "(milliseconds per forward, median of $ROUNDS alternating rounds of $REPEAT; $THREADS threads on both sides;" \
  "BLAS $(build/mz doctor --json 2>/dev/null | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["blas"])');" \
  "ratios below 1 mean mz is faster)"
