#!/usr/bin/python3
"""Saved models in the CLI: mz build --output DIR creates one; mz forward, predict and info take DIR in place of
a model name (through the front end `mz`); errors exit with their type's code naming the file.
Usage: test_cli.py --mz build/mz"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image

ap = argparse.ArgumentParser()
ap.add_argument("--mz", required=True)
a = ap.parse_args()
failures = []
checks = 0


def mz(*args):
    return subprocess.run([a.mz, *args], capture_output=True, text=True)


def check(name, ok, detail=""):
    global checks
    checks += 1
    print("PASS" if ok else "FAIL", name, "" if ok else detail)
    if not ok:
        failures.append(name)


def write_safetensors(path, name, array):
    data = array.astype(np.float32).tobytes()
    header = json.dumps({name: {"dtype": "F32", "shape": list(array.shape), "data_offsets": [0, len(data)]}}).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + data)


def tensor_bytes(path, name):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    entry = json.loads(raw[8:8 + n])[name]
    begin, end = entry["data_offsets"]
    return entry["shape"], raw[8 + n + begin:8 + n + end]


tmp = tempfile.mkdtemp(prefix="mz-pretrained-cli-")
spec = f"{tmp}/spec.json"
with open(spec, "w") as f:
    json.dump({"_target_": "resnet18", "weights": None, "num_classes": 3}, f)
saved = f"{tmp}/saved"

r = mz("build", spec, "--output", saved, "--preset-of", "ResNet18_Weights.IMAGENET1K_V1")
check("build --output: the directory, last line", r.returncode == 0 and r.stdout.splitlines()[-1:] == [saved]
      and os.path.isfile(f"{saved}/config.json") and os.path.isfile(f"{saved}/model.safetensors"), r.stderr + r.stdout)
with open(f"{saved}/config.json") as f:
    config = json.load(f)
check("build --output: config.json", config.get("schema") == "modelzoo.pretrained/1" and config.get("model") == "resnet18"
      and config["spec"] == {"_target_": "resnet18", "weights": None, "num_classes": 3}
      and config["preset"]["weight"] == "ResNet18_Weights.IMAGENET1K_V1", json.dumps(config)[:400])

r = mz("info", saved)
lines = r.stdout.splitlines()
check("info DIR (through the front end)", r.returncode == 0 and "model              resnet18" in lines
      and "schema             modelzoo.pretrained/1" in lines
      and any(l.startswith("model.safetensors  sha256 " + config["files"]["model.safetensors"]["sha256"]) for l in lines),
      r.stderr + r.stdout)
r = mz("info", saved, "--json")
check("info DIR --json: config.json", r.returncode == 0 and json.loads(r.stdout or "null") == config, r.stderr)

rng = np.random.default_rng(0)
write_safetensors(f"{tmp}/in.safetensors", "input", rng.standard_normal((2, 3, 64, 64)))
r = mz("forward", saved, "--input", f"{tmp}/in.safetensors", "--output", f"{tmp}/dir.safetensors")
r2 = mz("forward", "resnet18", "--checkpoint", f"{saved}/model.safetensors", "--num-classes", "3",
        "--input", f"{tmp}/in.safetensors", "--output", f"{tmp}/name.safetensors")
ok = r.returncode == 0 and r2.returncode == 0
check("forward DIR: the bits of forward MODEL --checkpoint DIR/model.safetensors",
      ok and tensor_bytes(f"{tmp}/dir.safetensors", "output") == tensor_bytes(f"{tmp}/name.safetensors", "output")
      and tensor_bytes(f"{tmp}/dir.safetensors", "output")[0] == [2, 3], r.stderr + r2.stderr)

Image.fromarray(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8)).save(f"{tmp}/image.png")
r = mz("predict", saved, f"{tmp}/image.png", "--json")
try:
    top = json.loads(r.stdout)[0]["top"]
except (ValueError, LookupError):
    top = []
check("predict DIR: its preset; 3 classes, so indices, not the preset's 1000 categories",
      r.returncode == 0 and sorted(t["label"] for t in top) == ["0", "1", "2"], r.stderr + r.stdout)

r = mz("forward", saved, "--weights", "ResNet18_Weights.IMAGENET1K_V1", "--input", f"{tmp}/in.safetensors",
       "--output", f"{tmp}/x.safetensors")
check("forward DIR --weights: exit 2", r.returncode == 2 and "saved model directory takes no" in r.stderr, r.stderr)

bare = f"{tmp}/bare"
r = mz("build", spec, "--output", bare)
r = mz("predict", bare, f"{tmp}/image.png")
check("predict DIR without a preset: exit 2, how to save one", r.returncode == 2 and "--preset-of" in r.stderr, r.stderr)

with open(f"{saved}/model.safetensors", "r+b") as f:
    f.seek(-5, os.SEEK_END)
    byte = f.read(1)
    f.seek(-5, os.SEEK_END)
    f.write(bytes([byte[0] ^ 1]))
r = mz("forward", saved, "--input", f"{tmp}/in.safetensors", "--output", f"{tmp}/x.safetensors")
check("forward DIR, tampered: exit 3 naming the file", r.returncode == 3
      and r.stderr.startswith(f"mz: {saved}/model.safetensors: sha256 mismatch"), r.stderr)

config["schema"] = "modelzoo.pretrained/2"
with open(f"{bare}/config.json", "w") as f:
    json.dump(config, f)
r = mz("info", bare)
check("info DIR of a newer schema: exit 3", r.returncode == 3 and f"{bare}/config.json: schema modelzoo.pretrained/2 is newer"
      in r.stderr, r.stderr)

mine = f"{tmp}/mine"
os.makedirs(mine)
with open(f"{mine}/notes.txt", "w") as f:
    f.write("mine")
r = mz("build", spec, "--output", mine)
check("build --output into a non-empty directory: exit 2", r.returncode == 2 and "not empty and not a saved model" in r.stderr
      and not os.path.exists(f"{mine}/config.json"), r.stderr)
r = mz("build", spec, "--output", mine, "--force")
check("build --output --force: written, other files kept", r.returncode == 0 and os.path.isfile(f"{mine}/config.json")
      and open(f"{mine}/notes.txt").read() == "mine", r.stderr)

subprocess.run(["rm", "-rf", tmp])
print(f"pretrained_cli: {checks - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
