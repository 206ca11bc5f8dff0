#!/usr/bin/python3
"""Every builtin weight's record matches its Python library field for field.

Compares `mz list --json` with fresh dumps of Debian's Python libraries, one script per library
(*_dump.py here: tv_dump.py for torchvision; each writes weight entries in the same schema): url, DEFAULT
flag, hash_prefix, num_params, min_size, categories, metrics, recipe, docs (whitespace-normalised),
extra meta keys (and their values where a dump gives them as "extra") and transforms. Also: every weight of a registered model exists, and with
--require-task T, every torchvision weight of task T is registered.
Usage: check_metadata.py --mz build/mz [--require-task classification]
"""
import argparse
import glob
import json
import math
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def close(a, b):
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is b
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    return a == b


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mz", required=True)
    ap.add_argument("--require-task", action="append", default=[])
    a = ap.parse_args()
    tv = {}
    for dump in sorted(glob.glob(os.path.join(HERE, "*_dump.py"))):  # one reference dump per Python library
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            subprocess.check_call([sys.executable, dump, f.name])
            tv.update({e["weight"]: e for e in json.load(open(f.name))})
    ours = {e["weight"]: e for e in json.loads(subprocess.check_output([a.mz, "list", "--json"]))
            if e["source"] == "builtin"}
    models = {e["model"] for e in ours.values()}
    problems = []
    for name, e in sorted(ours.items()):
        ref = tv.get(name)
        if ref is None:
            problems.append(f"{name}: not a weight of the Python libraries (torchvision 0.14.1, torchtext 0.14.1, torchaudio 0.13.1)")
            continue
        checks = {
            "model": (e["model"], ref["model"]),
            "task": (e["task"], ref["task"]),
            "default": (e["default"], ref["default"]),
            "url": (e["url"], ref["url"]),
            "hash_prefix": (e["hash_prefix"], ref["hash_prefix"]),
            "transforms": (e["transforms"], ref["transforms"]),
        }
        for k in ("num_params", "min_size", "categories", "metrics", "recipe", "docs"):
            checks["meta." + k] = (e["meta"].get(k), ref["meta"][k])
        for k, v in ref.get("extra_meta", {}).items():  # dumps that give the extra keys' values too
            checks["meta." + k] = (e["meta"].get(k), v)
        extra = sorted(k for k in e["meta"] if k not in ref["meta"])
        checks["meta extra keys"] = (extra, ref["extra_meta_keys"])
        for k, want in ref.get("extra", {}).items():  # a dump that reads extra values compares them too
            checks["meta." + k] = (e["meta"].get(k), want)
        for field, (got, want) in checks.items():
            if not close(got, want):
                problems.append(f"{name}: {field} is {json.dumps(got)[:200]}, upstream has {json.dumps(want)[:200]}")
        if e["hash_prefix"] and not re.search(r"-" + re.escape(e["hash_prefix"]) + r"[0-9a-f]*\.[A-Za-z]+$", e["url"]):
            problems.append(f"{name}: hash_prefix {e['hash_prefix']} is not the suffix of the URL's file name")
    for name, ref in sorted(tv.items()):
        if name in ours:
            continue
        if ref["model"] in models:
            problems.append(f"{name}: upstream weight of registered model {ref['model']} is missing")
        elif ref["task"] in a.require_task:
            problems.append(f"{name}: upstream {ref['task']} weight missing (model {ref['model']} not registered)")
    for p in problems:
        print(p)
    print(f"metadata: {len(ours) - len({p.split(':')[0] for p in problems if p.split(':')[0] in ours})} passed, "
          f"{len(problems)} failed")
    return 1 if problems or not ours else 0


if __name__ == "__main__":
    sys.exit(main())
