#!/usr/bin/python3
"""Dump torchvision's weights registry as modelzoo weight-entry JSON (the schema of `mz list --json`).

Run with Debian's /usr/bin/python3 (torchvision 0.14.1). Usage: tv_dump.py OUT.json
"""
import json
import math
import os
import re
import sys

import torchvision.models as tvm
from torchvision.models import segmentation, detection, video, optical_flow, quantization  # noqa: F401


def task_of(module_name):
    for task in ("segmentation", "detection", "video", "optical_flow", "quantization"):
        if f".{task}." in module_name + ".":
            return task
    return "classification"


def norm_docs(s):
    return re.sub(r"\s+", " ", s or "").strip()


def metric(v):
    return None if isinstance(v, float) and math.isnan(v) else v


def transforms_of(w):
    t = w.transforms
    kw = dict(getattr(t, "keywords", {}))
    preset = getattr(t, "func", t).__name__
    out = {"preset": preset}
    obj = t()  # presets are cheap to construct; read their effective parameters
    if preset == "ImageClassification":
        out.update(crop_size=obj.crop_size[0], resize_size=obj.resize_size[0], mean=list(obj.mean),
                   std=list(obj.std), interpolation=obj.interpolation.value)
    elif preset == "SemanticSegmentation":
        out.update(resize_size=obj.resize_size[0] if obj.resize_size else None, mean=list(obj.mean),
                   std=list(obj.std), interpolation=obj.interpolation.value)
    elif kw:
        out["params"] = {k: str(v) for k, v in kw.items()}
    return out


def entry(model, enum, w):
    m = dict(w.meta)
    url = w.url
    match = re.search(r"-([a-f0-9]*)\.", os.path.basename(url))  # torch.hub's HASH_REGEX
    return {
        "weight": f"{enum.__name__}.{w.name}",
        "model": model,
        "task": task_of(enum.__module__),
        "default": enum.DEFAULT is w,
        "url": url,
        "hash_prefix": match.group(1) if match else "",
        "meta": {
            "num_params": m.get("num_params"),
            "min_size": list(m["min_size"]) if "min_size" in m else None,
            "categories": m.get("categories"),
            "metrics": {ds: {k: metric(v) for k, v in vals.items()} for ds, vals in m.get("_metrics", {}).items()},
            "recipe": m.get("recipe", ""),
            "docs": norm_docs(m.get("_docs")),
        },
        "extra_meta_keys": sorted(k for k in m if k not in
                                  ("num_params", "min_size", "categories", "_metrics", "recipe", "_docs")),
        "transforms": transforms_of(w),
    }


def main():
    out = []
    for model in tvm.list_models():
        if model.startswith("quantized_"):
            continue
        enum = tvm.get_model_weights(model)
        for w in enum:
            out.append(entry(model, enum, w))
    with open(sys.argv[1], "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
