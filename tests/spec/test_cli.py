#!/usr/bin/python3
"""mz build: prints the parameter count, or with --print the resolved spec and the module tree; overrides;
errors exit 2 naming the JSON path. Usage: test_cli.py --mz build/mz --specs examples/specs"""
import argparse
import json
import subprocess
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--mz", required=True)
ap.add_argument("--specs", required=True)
a = ap.parse_args()
failures = []
seed = f"{a.specs}/faster_rcnn_mobilenet_v2.json"


def mz(*args):
    return subprocess.run([a.mz, "build", *args], capture_output=True, text=True)


def check(name, ok, detail=""):
    print("PASS" if ok else "FAIL", name, "" if ok else detail)
    if not ok:
        failures.append(name)


r = mz(seed, "backbone.weights=null")
check("summary", r.returncode == 0 and r.stdout.startswith("FasterRCNN: ") and "parameters" in r.stdout, r.stderr + r.stdout)

r = mz(seed, "backbone.weights=null", "num_classes=3", "--print", "--depth", "1")
text = r.stdout
spec_end = text.find("\n}\n") + 3
try:
    resolved = json.loads(text[:spec_end])
except ValueError:
    resolved = {}
check("--print: the resolved spec, overrides applied", r.returncode == 0 and resolved.get("num_classes") == 3
      and resolved.get("backbone", {}).get("weights", "x") is None, r.stderr + text[:400])
tree = text[spec_end:].splitlines()
check("--print: the module tree with parameter counts", tree[:1] and tree[0].startswith("FasterRCNN (mz::FasterRCNN): ")
      and "  backbone (torch::nn::Sequential): 2223872" in tree and all(not l.startswith("    ") for l in tree), "\n".join(tree))

r = mz(seed, "backbone.weights=null", "num_clases=3")
check("unknown kwarg: exit 2, the path and the valid kwargs", r.returncode == 2
      and r.stderr.startswith("mz: model.num_clases: unknown kwarg of FasterRCNN (valid: ") and "num_classes" in r.stderr,
      r.stderr)
r = mz(seed, "backbone.weights=null", "rpn_anchor_generator._target_=AnchorGenerater")
check("unknown target: close names", r.returncode == 2 and "did you mean: AnchorGenerator" in r.stderr, r.stderr)
r = mz(f"{a.specs}/missing.json")
check("missing spec file", r.returncode == 2 and "no spec file" in r.stderr, r.stderr)

print(f"spec_cli: {6 - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
