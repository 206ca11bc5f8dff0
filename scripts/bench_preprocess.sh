#!/usr/bin/env bash
# Decode + preset per image for 200 JPEGs of mixed sizes (generated here, quality 90), in the same run:
# modelzoo (libjpeg-turbo + PIL-exact resampling in C++) vs torchvision 0.14 + PIL (Debian's python3),
# one thread each, best of REPEAT passes. Prints both throughputs and the ratio (target: >= 2x).
#   usage: scripts/bench_preprocess.sh [WEIGHT] [REPEAT]    (default ResNet50_Weights.IMAGENET1K_V2, 3)
#   env: MZ_BUILD (default build; scripts/build.sh builds it when it is "build")
set -euo pipefail
cd "$(dirname "$0")/.."
weight=${1:-ResNet50_Weights.IMAGENET1K_V2}
repeat=${2:-3}
build=${MZ_BUILD:-build}
if [ "$build" = build ]; then scripts/build.sh >/dev/null; fi
bench="$build/tests/images/mz_images_tool"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

/usr/bin/python3 - "$work" <<'PY'
import sys
import numpy as np
from PIL import Image
rng = np.random.default_rng(0)
for i in range(200):
    w, h = int(rng.integers(200, 1600)), int(rng.integers(200, 1200))
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 255 // w), (y * 255 // h), ((x // 16 + y // 16) % 2) * 255], -1)
    img = np.clip(img + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(f"{sys.argv[1]}/img{i:03d}.jpg", quality=90)
PY
mp=$(du -sh "$work" | cut -f1)
ours=$(OMP_NUM_THREADS=1 "$bench" bench "$weight" "$repeat" "$work"/*.jpg)
theirs=$(OMP_NUM_THREADS=1 /usr/bin/python3 - "$weight" "$repeat" "$work" <<'PY'
import glob, json, sys, time
import torch, torchvision
from PIL import Image
torch.set_num_threads(1)
enum, value = sys.argv[1].split(".")
preset = getattr(torchvision.models, enum)[value].transforms()
paths = sorted(glob.glob(sys.argv[3] + "/*.jpg"))
best = 1e30
for _ in range(int(sys.argv[2])):
    start = time.perf_counter()
    for p in paths:
        preset(Image.open(p).convert("RGB"))
    best = min(best, time.perf_counter() - start)
print(json.dumps({"images": len(paths), "seconds": best, "images_per_s": len(paths) / best}))
PY
)
/usr/bin/python3 - "$ours" "$theirs" "$weight" "$mp" <<'PY'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"decode + {sys.argv[3]} preset, {ours['images']} JPEGs ({sys.argv[4]}), one thread, best pass:")
print(f"  modelzoo             {ours['images_per_s']:8.1f} images/s  ({ours['seconds'] * 1000 / ours['images']:.2f} ms/image)")
print(f"  torchvision + PIL    {theirs['images_per_s']:8.1f} images/s  ({theirs['seconds'] * 1000 / theirs['images']:.2f} ms/image)")
print(f"  ratio                {ours['images_per_s'] / theirs['images_per_s']:8.2f}x  (target >= 2x)")
PY
