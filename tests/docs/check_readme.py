#!/usr/bin/python3
"""README stays true: the supported-models table equals `mz list --markdown`, the C++ examples it shows
are the files under examples/ that the build compiles and ctest runs (NAME_example), and the specs it shows are files of
examples/specs/ (built and run by tests/spec).
Usage: check_readme.py --mz build/mz --readme README.md --examples examples
"""
import argparse
import os
import re
import subprocess
import sys

ap = argparse.ArgumentParser()
ap.add_argument("--mz", required=True)
ap.add_argument("--readme", required=True)
ap.add_argument("--examples", required=True)
a = ap.parse_args()
readme = open(a.readme).read()
failures = []
table = re.search(r"<!-- models:begin -->\n(.*?)<!-- models:end -->", readme, re.S)
want = subprocess.check_output([a.mz, "list", "--markdown"], text=True)
if not table or table.group(1) != want:
    failures.append("README's supported-models table differs from `mz list --markdown` (run scripts/update_readme.sh)")
blocks = re.findall(r"```cpp\n(.*?)```", readme, re.S)
EXAMPLES = ("compose.cpp", "finetune.cpp", "adapter.cpp", "detection.cpp", "spec.cpp", "pretrained.cpp", "lora.cpp")
for name in EXAMPLES:
    body = open(os.path.join(a.examples, name)).read().split("\n", 1)[1]  # minus the first comment line
    if body not in blocks:
        failures.append(f"examples/{name} is not shown verbatim in README.md")
# The specs it shows are files of examples/specs/, which the spec tests build and run.
json_blocks = re.findall(r"```json\n(.*?)```", readme, re.S)
SPECS = ("faster_rcnn_mobilenet_v2.json", "faster_rcnn_mobilenet_v2_small.json")
for name in SPECS:
    if open(os.path.join(a.examples, "specs", name)).read() not in json_blocks:
        failures.append(f"examples/specs/{name} is not shown verbatim in README.md")
for f in failures:
    print("FAIL", f)
print(f"readme: {1 + len(EXAMPLES) + len(SPECS) - len(failures)} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
