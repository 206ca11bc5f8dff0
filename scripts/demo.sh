#!/usr/bin/env bash
# The main job end to end, with no network: list the registry, show a weight's record, publish a
# checkpoint on a local file:// mirror with a manifest entry, then download (verify, cache), load
# and run it through the same hub code path a real download uses.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh >/dev/null
MZ="$PWD/build/mz"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export MZ_CACHE_DIR="$work/cache" MZ_OFFLINE=1   # offline: only the local mirror can serve files
step() { printf '\n\033[1m== %s\033[0m\n$ %s\n' "$1" "${*:2}"; "${@:2}"; }

step "The registry: ResNet builders and their weights" "$MZ" list 'resnet*' 'wide_*'
step "One weight's record (what ResNet50_Weights::IMAGENET1K_V2 carries)" \
  "$MZ" info ResNet50_Weights.IMAGENET1K_V2

# A checkpoint made here (torchvision's resnet18 with random weights), published on a local mirror.
# Its entry borrows the ImageNet categories of the builtin record, so predictions read as labels.
mkdir -p "$work/mirror"
"$MZ" info ResNet18_Weights.IMAGENET1K_V1 --json >"$work/imagenet.json"
/usr/bin/python3 - "$work" <<'PY'
import hashlib, json, os, sys
import torch, torchvision
sys.path.insert(0, "tests/oracle")
import st
work = sys.argv[1]
torch.manual_seed(0)
tmp = os.path.join(work, "resnet18.pth")
torch.save(torchvision.models.resnet18().state_dict(), tmp)
digest = hashlib.sha256(open(tmp, "rb").read()).hexdigest()
name = f"resnet18-demo-{digest[:8]}.pth"
os.rename(tmp, os.path.join(work, "mirror", name))
categories = json.load(open(os.path.join(work, "imagenet.json")))["meta"]["categories"]
entry = {"weight": "ResNet18_Weights.DEMO_V1", "model": "resnet18",
         "url": f"https://models.example.invalid/weights/{name}", "sha256": digest,
         "file_size": os.path.getsize(os.path.join(work, "mirror", name)),
         "meta": {"num_params": 11689512, "min_size": [1, 1], "categories": categories,
                  "docs": "Random weights published on a local mirror by scripts/demo.sh."},
         "transforms": {"preset": "ImageClassification", "crop_size": 224, "resize_size": 256,
                        "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "interpolation": "bilinear"}}
json.dump({"schema": "modelzoo.weights/1", "weights": [entry]}, open(os.path.join(work, "manifest.json"), "w"), indent=1)
st.save(os.path.join(work, "input.safetensors"), {"input": torch.randn(2, 3, 224, 224)})
PY
export MZ_MANIFEST="$work/manifest.json" MZ_MIRROR="file://$work/mirror/"

step "A manifest registers ResNet18_Weights.DEMO_V1; MZ_MIRROR points at a local directory" \
  "$MZ" list resnet18
step "Download: fetched from the mirror, SHA-256 verified while writing, published atomically" \
  "$MZ" download ResNet18_Weights.DEMO_V1
step "Run it: the builder asks the hub for a verified local file, loads it, runs eval forward" \
  "$MZ" forward resnet18 --weights ResNet18_Weights.DEMO_V1 --input "$work/input.safetensors" \
  --output "$work/output.safetensors"
/usr/bin/python3 - "$work/output.safetensors" <<'PY'
import sys
sys.path.insert(0, "tests/oracle")
import st
out = st.load(sys.argv[1])["output"]
print(f"output {list(out.shape)}; top-5 classes per image: {out.topk(5).indices.tolist()}")
PY
step "Re-hash everything in the cache" "$MZ" verify
step "Time loading from the cache and a forward pass" \
  "$MZ" bench resnet18 --weights ResNet18_Weights.DEMO_V1 --repeat 3
step "Predict: decode a PNG, apply the weight's preset (resize 256, crop 224, normalise), top-5 labels
(random weights, so the labels are arbitrary; tests/images/sample.png is generated, no third-party content)" \
  "$MZ" predict ResNet18_Weights.DEMO_V1 tests/images/sample.png --topk 5
step "What the model saw: the preprocessed batch as safetensors (tensor 'input')" \
  "$MZ" preprocess ResNet18_Weights.DEMO_V1 tests/images/sample.png --output "$work/sample_input.safetensors"
echo -e "\ndemo: ok"
