#!/usr/bin/python3
"""Numerical parity of every registered builder with torchvision 0.14.1.

For each model in the registry (`mz list --models --json`), build torchvision's model with random
weights and randomised BatchNorm statistics, save it as a checkpoint (torch.save zip, legacy
torch.save or safetensors, rotating; some models in all three), run `mz forward --checkpoint` on a
random input, and require relative error <= 1e-4. `mz forward` loads strictly, so state-dict names
and shapes (buffers included) must equal torchvision's too. Once per model the same run with
`--optimize` (mz::optimize_for_inference) must meet the same tolerance.

The fourth format, "old", writes a checkpoint the way upstream's 2017-2018 files look: legacy
torch.save, no num_batches_tracked buffers (before PyTorch 0.4.1), and the family's old layout
where it had one (DenseNet's "norm.1" keys, MNASNet's v1 stem), which mz must adapt on load.

Usage: parity.py --mz build/mz --work DIR [--shard I/N] [--extended|--only-extended] [MODEL...]
Per-model special cases live in the SPECIAL table, nowhere else.
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import time

import torch
import torchvision.models as tvm
from torchvision.models import segmentation  # noqa: F401  (registers segmentation builders)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
import st  # noqa: E402

FORMATS = ("zip", "legacy", "safetensors", "old")
TOLERANCE = 1e-4


def densenet_v1_key(key):
    """torchvision's DenseNet loader maps "denselayer1.norm.1.weight" to "...norm1.weight"; this undoes it."""
    return re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", key)


def mnasnet_v1(net):
    """The model as a version-1 checkpoint has it: torchvision's own loader patches the stem when it
    sees version 1 (and then fails on the version-2 shapes it was given, which is fine here)."""
    sd = net.state_dict()
    sd._metadata[""]["version"] = 1
    try:
        net.load_state_dict(sd)
    except RuntimeError:
        pass
    assert net._version == 1
    return net


# name -> {"size": input side, "kwargs": builder kwargs (both sides), "extended": only in --extended,
#          "formats": formats to test (default: one, rotating),
#          "old_key": checkpoint key -> its name in old files, "old_net": model -> the old model}
# The tasks this script covers (torchvision's single-tensor models); each other domain has its own parity test.
TASKS = ("classification", "segmentation")

SPECIAL = {
    # detection (tests/detection/parity_detection.py checks their numbers): small images, few proposals and
    # detections for the CLI test's bench
    **{m: {"kwargs": {"min_size": 64, "max_size": 96, "rpn_post_nms_top_n_test": 50, "box_detections_per_img": 4}}
       for m in (
        "fasterrcnn_resnet50_fpn", "fasterrcnn_resnet50_fpn_v2", "fasterrcnn_mobilenet_v3_large_fpn",
        "fasterrcnn_mobilenet_v3_large_320_fpn", "maskrcnn_resnet50_fpn", "maskrcnn_resnet50_fpn_v2",
        "keypointrcnn_resnet50_fpn")},
    # segmentation: both outputs ("out" and "aux"); no backbone download (weights_backbone=None)
    "fcn_resnet50": {"kwargs": {"aux_loss": True, "weights_backbone": None}, "formats": FORMATS},
    "fcn_resnet101": {"kwargs": {"aux_loss": True, "weights_backbone": None}, "size": 32},
    "deeplabv3_resnet50": {"kwargs": {"aux_loss": True, "weights_backbone": None}},
    "deeplabv3_resnet101": {"kwargs": {"aux_loss": True, "weights_backbone": None}, "size": 32},
    "deeplabv3_mobilenet_v3_large": {"kwargs": {"aux_loss": True, "weights_backbone": None}, "formats": FORMATS},
    "lraspp_mobilenet_v3_large": {"kwargs": {"weights_backbone": None}, "formats": ("safetensors", "old")},
    "resnet18": {"formats": FORMATS},
    "resnet50": {"formats": FORMATS, "kwargs": {"replace_stride_with_dilation": [False, True, True]}},
    "resnext101_32x8d": {"size": 32},
    "resnext101_64x4d": {"size": 32},
    "resnet152": {"size": 32},
    "wide_resnet101_2": {"size": 32},
    "alexnet": {"formats": FORMATS},
    "vgg11": {"size": 32, "formats": FORMATS},
    "vgg11_bn": {"size": 32, "formats": ("zip", "old")},
    "vgg13": {"size": 32},
    "vgg13_bn": {"size": 32},
    "vgg16": {"size": 32},
    "vgg16_bn": {"size": 32},
    "vgg19": {"size": 32},
    "vgg19_bn": {"size": 32},
    "squeezenet1_0": {"size": 32, "formats": FORMATS},
    "squeezenet1_1": {"size": 32},
    "densenet121": {"size": 32, "formats": FORMATS, "old_key": densenet_v1_key},
    "densenet161": {"size": 32, "old_key": densenet_v1_key},
    "densenet169": {"size": 32, "old_key": densenet_v1_key},
    "densenet201": {"size": 32, "formats": ("safetensors", "old"), "old_key": densenet_v1_key},
    # init_weights given: torchvision warns without it; random weights are overwritten anyway.
    "googlenet": {"size": 32, "formats": FORMATS, "kwargs": {"init_weights": False, "transform_input": True}},
    "inception_v3": {"size": 75, "formats": FORMATS, "kwargs": {"init_weights": False}},
    "mobilenet_v2": {"size": 32, "formats": FORMATS},
    "mobilenet_v3_large": {"size": 32, "formats": FORMATS},
    "mobilenet_v3_small": {"size": 32, "kwargs": {"dilated": True, "reduced_tail": True}},
    "mnasnet0_5": {"size": 32, "formats": ("zip", "old"), "old_net": mnasnet_v1},
    "mnasnet0_75": {"size": 32, "old_net": mnasnet_v1},
    "mnasnet1_0": {"size": 32, "formats": FORMATS},
    "mnasnet1_3": {"size": 32, "formats": ("legacy", "old"), "old_net": mnasnet_v1},
    "shufflenet_v2_x0_5": {"size": 32},
    "shufflenet_v2_x1_0": {"size": 32, "formats": FORMATS},
    "shufflenet_v2_x1_5": {"size": 32},
    "shufflenet_v2_x2_0": {"size": 32},
    "vit_b_16": {"size": 32, "formats": FORMATS, "kwargs": {"image_size": 32}},
    "vit_b_32": {"size": 32, "kwargs": {"image_size": 32, "representation_size": 16}},
    "vit_l_16": {"size": 32, "kwargs": {"image_size": 32}, "extended": True},
    "vit_l_32": {"size": 32, "kwargs": {"image_size": 32}, "extended": True},
    "vit_h_14": {"size": 28, "kwargs": {"image_size": 28}, "extended": True},
    # 64: padding and shifted windows in the first two stages (window 7); 80 for v2's window 8.
    "swin_t": {"formats": FORMATS},
    "swin_v2_t": {"size": 80},
    "maxvit_t": {"size": 224, "formats": ("zip", "old")},
    "efficientnet_b0": {"size": 32, "formats": FORMATS},
    "efficientnet_b1": {"size": 32},
    "efficientnet_b2": {"size": 32},
    "efficientnet_b3": {"size": 32},
    "efficientnet_b4": {"size": 32},
    "efficientnet_b5": {"size": 32},
    "efficientnet_b6": {"size": 32},
    "efficientnet_b7": {"size": 32},
    "efficientnet_v2_s": {"size": 32},
    "efficientnet_v2_m": {"size": 32},
    "efficientnet_v2_l": {"size": 32, "extended": True},
    "regnet_y_400mf": {"size": 32, "formats": FORMATS},
    "regnet_y_800mf": {"size": 32},
    "regnet_y_1_6gf": {"size": 32},
    "regnet_y_3_2gf": {"size": 32},
    "regnet_y_8gf": {"size": 32},
    "regnet_y_16gf": {"size": 32},
    "regnet_y_32gf": {"size": 32},
    "regnet_y_128gf": {"size": 32, "extended": True},
    "regnet_x_400mf": {"size": 32, "kwargs": {"stem_width": 24}},
    "regnet_x_800mf": {"size": 32},
    "regnet_x_1_6gf": {"size": 32},
    "regnet_x_3_2gf": {"size": 32},
    "regnet_x_8gf": {"size": 32},
    "regnet_x_16gf": {"size": 32},
    "regnet_x_32gf": {"size": 32},
    "convnext_tiny": {"size": 32, "formats": FORMATS},
    "convnext_small": {"size": 32, "kwargs": {"layer_scale": 0.5, "stochastic_depth_prob": 0.2}},
    "convnext_base": {"size": 32, "extended": True},
    "convnext_large": {"size": 32, "extended": True},
}
DEFAULT_SIZE = 64


def randomize(model, gen):
    with torch.no_grad():
        for name, p in model.state_dict().items():
            if not p.is_floating_point():
                continue
            if name.endswith("running_var"):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
            elif name.endswith("running_mean"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            elif name.endswith(".weight") and p.dim() == 1:  # norm scales: away from 1
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
            elif name.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


def save_checkpoint(sd, path, fmt, old_key):
    if fmt == "zip":
        torch.save(sd, path)
    elif fmt == "legacy":
        torch.save(sd, path, _use_new_zipfile_serialization=False)
    elif fmt == "old":
        old = collections.OrderedDict((old_key(k), v) for k, v in sd.items() if not k.endswith("num_batches_tracked"))
        torch.save(old, path, _use_new_zipfile_serialization=False)
    else:
        st.save(path, dict(sd))


def outputs_of(out):
    if isinstance(out, torch.Tensor):
        return {"output": out}
    if isinstance(out, dict):
        return dict(out)
    if hasattr(out, "_asdict"):  # GoogLeNetOutputs / InceptionOutputs in train mode
        return {"output": out[0]}
    raise TypeError(type(out))


def check(mz, model, fmt, work, index, optimize):
    spec = SPECIAL.get(model, {})
    kwargs = spec.get("kwargs", {})
    size = spec.get("size", DEFAULT_SIZE)
    gen = torch.Generator().manual_seed(1000 + index)
    torch.manual_seed(index)
    net = tvm.get_model(model, weights=None, **kwargs).eval()
    if fmt == "old":
        net = spec.get("old_net", lambda n: n)(net)
    randomize(net, gen)
    x = torch.randn(1, 3, size, size, generator=gen)
    with torch.no_grad():
        ref = outputs_of(net(x))
    ckpt = os.path.join(work, f"{model}.{fmt}")
    save_checkpoint(net.state_dict(), ckpt, fmt, spec.get("old_key", lambda k: k))
    inp, out = os.path.join(work, f"{model}.in.safetensors"), os.path.join(work, f"{model}.out.safetensors")
    st.save(inp, {"input": x})
    # The unoptimised model, and once per model the optimised one (mz forward --optimize: norms folded,
    # weights channels-last), each against torchvision.
    for extra in ([], ["--optimize"]) if optimize else ([],):
        cmd = [mz, "forward", model, "--checkpoint", ckpt, "--input", inp, "--output", out,
               "--options", json.dumps(kwargs), *extra]
        r = subprocess.run(cmd, capture_output=True, text=True)
        what = "mz forward " + " ".join(extra)
        if r.returncode != 0:
            return f"{what} failed ({r.returncode}): {r.stderr.strip()}"
        got = st.load(out)
        if set(got) != set(ref):
            return f"{what}: output keys {sorted(got)} != torchvision's {sorted(ref)}"
        for k in ref:
            if got[k].shape != ref[k].shape:
                return f"{what}: output '{k}' shape {list(got[k].shape)} != torchvision's {list(ref[k].shape)}"
            err = ((got[k].double() - ref[k].double()).abs().max() /
                   ref[k].double().abs().max().clamp_min(1e-12)).item()
            if err > TOLERANCE:
                return f"{what}: relative error {err:.3g} > {TOLERANCE}"
    for p in (ckpt, inp, out):
        os.remove(p)
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mz", required=True)
    ap.add_argument("--work", default=None)
    ap.add_argument("--shard", default="0/1")
    ap.add_argument("--extended", action="store_true", help="include the models marked extended")
    ap.add_argument("--only-extended", action="store_true")
    ap.add_argument("models", nargs="*")
    a = ap.parse_args()
    torch.set_num_threads(1)
    listed = json.loads(subprocess.check_output([a.mz, "list", "--models", "--json"]))
    models = [m["model"] for m in listed if m["task"] in TASKS]
    if a.models:
        models = [m for m in models if m in a.models]
    ext = lambda m: SPECIAL.get(m, {}).get("extended", False)  # noqa: E731
    if a.only_extended:
        models = [m for m in models if ext(m)]
    elif not a.extended:
        models = [m for m in models if not ext(m)]
    i, n = map(int, a.shard.split("/"))
    jobs = []
    for idx, m in enumerate(models):
        for k, fmt in enumerate(SPECIAL.get(m, {}).get("formats", (FORMATS[idx % len(FORMATS)],))):
            jobs.append((idx, m, fmt, k == 0))
    jobs = jobs[i::n]
    work = a.work or tempfile.mkdtemp(prefix="mz-parity-")
    os.makedirs(work, exist_ok=True)
    failures = 0
    for idx, m, fmt, optimize in jobs:
        t0 = time.time()
        try:
            err = check(a.mz, m, fmt, work, idx, optimize)
        except Exception as e:  # a torchvision-side failure is a test failure too
            err = f"{type(e).__name__}: {e}"
        status = "ok" if err is None else "FAIL " + err
        print(f"{m:28s} {fmt:12s} {time.time() - t0:6.1f}s  {status}", flush=True)
        failures += err is not None
    print(f"parity: {len(jobs) - failures} passed, {failures} failed")
    if not jobs and not a.only_extended:
        print("parity: no models selected", file=sys.stderr)
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
