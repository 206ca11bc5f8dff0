"""Image decoding, presets and `mz predict` against torchvision 0.14 + PIL (Debian's /usr/bin/python3).

    test_images.py --mz build/mz --tool build/tests/images/mz_images_tool --data DIR --work DIR PART

PART:
  decode    every good image decoded (uint8) equals PIL's Image.open(p).convert("RGB") exactly (PNG and
            JPEG alike: Debian's PIL uses the same libjpeg-turbo with the same IDCT), and so does the
            ObjectDetection preset (/255 only)
  presets   ImageClassification (bilinear, bicubic, padding) through `mz preprocess` batches and
            SemanticSegmentation (one image per tensor, via the tool) on varied sizes: within 2/255
            of torchvision's preset on PIL images before normalisation (in practice: bit-exact)
  predict   top-5 of `mz predict --checkpoint` equals torchvision's on one random-weight resnet18;
            JSON schema, labels from the weight's categories, --topk, --batch, text output
  errors    corrupt, truncated, empty, non-image files: exit 7, one line naming the file, no crash
"""
import argparse
import json
import os
import subprocess
import sys

import torch
import torchvision
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms._presets import ImageClassification, ObjectDetection, SemanticSegmentation

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
import st  # noqa: E402

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
# name -> (transforms entry, torchvision preset)
PRESETS = {
    "BILINEAR_256_224": ({"preset": "ImageClassification", "crop_size": 224, "resize_size": 256,
                          "interpolation": "bilinear"},
                         ImageClassification(crop_size=224, resize_size=256)),
    "BICUBIC_232_224": ({"preset": "ImageClassification", "crop_size": 224, "resize_size": 232,
                         "interpolation": "bicubic"},
                        ImageClassification(crop_size=224, resize_size=232, interpolation=InterpolationMode.BICUBIC)),
    "BICUBIC_342_299": ({"preset": "ImageClassification", "crop_size": 299, "resize_size": 342,
                         "interpolation": "bicubic"},
                        ImageClassification(crop_size=299, resize_size=342, interpolation=InterpolationMode.BICUBIC)),
    "BILINEAR_PAD_200_224": ({"preset": "ImageClassification", "crop_size": 224, "resize_size": 200,
                              "interpolation": "bilinear"},
                             ImageClassification(crop_size=224, resize_size=200)),
    "SEG_520": ({"preset": "SemanticSegmentation", "resize_size": 520, "interpolation": "bilinear"},
                SemanticSegmentation(resize_size=520)),
    "DETECTION": ({"preset": "ObjectDetection"}, ObjectDetection()),
}
failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what)
    if not cond:
        failures.append(what)


def run(args, mz, env, ok=True):
    p = subprocess.run([mz] + args, capture_output=True, text=True, env=env)
    if ok and p.returncode != 0:
        raise SystemExit(f"mz {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p


def manifest(work):
    """Test weights whose records carry each preset (never downloaded: preprocess needs no file)."""
    entries = []
    for name, (t, _) in PRESETS.items():
        t = dict(t)
        if t["preset"] != "ObjectDetection":
            t.update(mean=MEAN, std=STD)
        entries.append({"weight": f"ResNet18_Weights.IMAGESTEST_{name}", "model": "resnet18",
                        "url": f"https://models.example.invalid/{name.lower()}-00000000.pth", "sha256": "0" * 64,
                        "meta": {"num_params": 0, "categories": []}, "transforms": t})
    path = os.path.join(work, "presets_manifest.json")
    json.dump({"schema": "modelzoo.weights/1", "weights": entries}, open(path, "w"))
    env = dict(os.environ, MZ_MANIFEST=path, MZ_OFFLINE="1", MZ_CACHE_DIR=os.path.join(work, "cache"))
    return env


def good_images(data):
    d = os.path.join(data, "good")
    return [os.path.join(d, n) for n in sorted(os.listdir(d))]


def preprocess(mz, env, work, weight, paths):
    out = os.path.join(work, "pre.safetensors")
    run(["preprocess", f"ResNet18_Weights.IMAGESTEST_{weight}", *paths, "--output", out], mz, env)
    return st.load(out)["input"]


def dump(a, env, weight, paths):
    """The tool's per-image outputs (decode, or a preset), one process for all images."""
    out = os.path.join(a.work, "dump.safetensors")
    name = weight if weight == "decode" else f"ResNet18_Weights.IMAGESTEST_{weight}"
    p = subprocess.run([a.tool, "dump", name, out, *paths], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"mz_images_tool dump {name} failed: {p.stderr}")
    tensors = st.load(out)
    return [tensors[str(i)] for i in range(len(paths))]


def part_decode(a, env):
    paths = good_images(a.data)
    for p, ours in zip(paths, dump(a, env, "decode", paths)):
        ref = torchvision.transforms.functional.pil_to_tensor(Image.open(p).convert("RGB"))
        same = ours.dtype == torch.uint8 and ours.shape == ref.shape and torch.equal(ours, ref)
        diff = (ours.int() - ref.int()).abs().max().item() if ours.shape == ref.shape else "shape"
        check(same, f"decode {os.path.basename(p)} ({Image.open(p).mode}) {list(ref.shape)}: equal to PIL (max |diff| {diff})")
    for p, ours in zip(paths, dump(a, env, "DETECTION", paths)):
        ref = PRESETS["DETECTION"][1](Image.open(p).convert("RGB"))
        diff = (ours - ref).abs().max().item() if ours.shape == ref.shape else float("inf")
        check(diff < 1e-6, f"ObjectDetection preset {os.path.basename(p)}: max |diff| {diff:.2g}")


def part_presets(a, env):
    paths = good_images(a.data)
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    for weight, (_, tv) in PRESETS.items():
        if weight == "DETECTION":
            continue
        # Segmentation keeps the aspect ratio, so its outputs differ in size: the tool, one tensor each.
        ours_all = preprocess(a.mz, env, a.work, weight, paths) if weight != "SEG_520" else dump(a, env, weight, paths)
        worst = 0.0
        for i, p in enumerate(paths):
            ours = ours_all[i]
            ref = tv(Image.open(p).convert("RGB"))
            if ours.shape != ref.shape:
                check(False, f"{weight} {os.path.basename(p)}: shape {list(ours.shape)} vs {list(ref.shape)}")
                continue
            # Compare before normalisation, in units of 1/255.
            diff = ((ours * std + mean) - (ref * std + mean)).abs().max().item() * 255
            worst = max(worst, diff)
            check(diff <= 2.0, f"{weight} {os.path.basename(p)} {Image.open(p).size} -> {list(ref.shape)}: "
                               f"max |diff| {diff:.4f}/255 before normalisation")
        print(f"      {weight}: worst {worst:.4f}/255 over {len(paths)} images")
    # The sample shipped with the demo, through the real ResNet50 IMAGENET1K_V2 record (bilinear 232/224).
    sample = os.path.join(os.path.dirname(__file__), "sample.png")
    out = os.path.join(a.work, "sample.safetensors")
    run(["preprocess", "ResNet50_Weights.IMAGENET1K_V2", sample, "--output", out], a.mz, env)
    ours = st.load(out)["input"]
    ref = torchvision.models.ResNet50_Weights.IMAGENET1K_V2.transforms()(Image.open(sample).convert("RGB"))
    diff = (ours[0] - ref).abs().max().item()
    check(list(ours.shape) == [1, 3, 224, 224] and diff < 1e-5,
          f"ResNet50_Weights.IMAGENET1K_V2 preset on sample.png: {list(ours.shape)}, max |diff| {diff:.2g} (normalised)")


def part_predict(a, env):
    paths = [p for p in good_images(a.data) if "rgb_" in p or p.endswith(".jpg")][:11]
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    categories = weights.meta["categories"]
    # Random weights, but made input-sensitive: no fc bias, BatchNorm statistics of these images
    # (a fresh network's outputs hardly depend on the input, and would make equal top-5 trivial).
    torch.manual_seed(0)
    model = torchvision.models.resnet18()
    torch.nn.init.zeros_(model.fc.bias)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    with torch.no_grad():
        batch = torch.stack([weights.transforms()(Image.open(p).convert("RGB")) for p in paths])
        model.train()(batch)
        probs = model.eval()(batch).softmax(1)
    ckpt = os.path.join(a.work, "resnet18_random.pth")
    torch.save(model.state_dict(), ckpt)
    ref_p, ref_i = probs.topk(5, 1)
    distinct = len({tuple(r) for r in ref_i.tolist()})
    check(distinct >= 5, f"the random model's top-5 depend on the input ({distinct} distinct lists over {len(paths)} images)")
    for name in ("resnet18", "ResNet18_Weights.IMAGENET1K_V1"):
        p = run(["predict", name, *paths, "--checkpoint", ckpt, "--batch", "4", "--json"], a.mz, env)
        out = json.loads(p.stdout)
        schema = isinstance(out, list) and len(out) == len(paths) and all(
            set(e) == {"image", "top"} and isinstance(e["image"], str) and len(e["top"]) == 5 and all(
                set(t) == {"index", "label", "prob"} and isinstance(t["index"], int) and isinstance(t["label"], str)
                and isinstance(t["prob"], float) and 0.0 <= t["prob"] <= 1.0 for t in e["top"])
            for e in out)
        check(schema, f"predict {name} --json: schema [{{image, top: [{{index, label, prob}} x5]}}] x{len(paths)}")
        if not schema:
            continue
        for k, (e, path) in enumerate(zip(out, paths)):
            idx = [t["index"] for t in e["top"]]
            ref = ref_i[k].tolist()
            # Equal order, except where torchvision's own probabilities tie (within 1e-6).
            same = idx == ref or (sorted(idx) == sorted(ref) and all(
                idx[j] == ref[j] or abs(ref_p[k][j] - ref_p[k][ref.index(idx[j])]) < 1e-6 for j in range(5)))
            check(e["image"] == path and same, f"predict top-5 {os.path.basename(path)}: {idx} vs torchvision {ref}")
            probs_ok = all(abs(t["prob"] - ref_p[k][j].item()) < 1e-4 for j, t in enumerate(e["top"]))
            labels_ok = all(t["label"] == categories[t["index"]] for t in e["top"])
            desc = all(e["top"][j]["prob"] >= e["top"][j + 1]["prob"] for j in range(4))
            check(probs_ok and labels_ok and desc, f"predict {os.path.basename(path)}: probabilities, labels, order")
    p = run(["predict", "resnet18", paths[0], paths[1], "--checkpoint", ckpt, "--topk", "3"], a.mz, env)
    lines = p.stdout.splitlines()
    check(len(lines) == 8 and lines[0] == paths[0] and categories[ref_i[0][0]] in lines[1],
          f"predict text output: image line + 3 label lines per image ({len(lines)} lines)")
    p = run(["predict", "resnet18", paths[0], "--checkpoint", ckpt, "--topk", "0"], a.mz, env, ok=False)
    check(p.returncode == 2 and "--topk" in p.stderr, f"predict --topk 0: exit {p.returncode}, {p.stderr.strip()}")
    p = run(["predict", "ResNet18_Weights.IMAGESTEST_SEG_520", paths[0], "--checkpoint", ckpt], a.mz, env, ok=False)
    check(p.returncode == 2 and "no 'out' tensor" in p.stderr,  # the preset says segmentation; resnet18 is not
          f"predict with a segmentation preset refused: exit {p.returncode}, {p.stderr.strip()}")


def part_errors(a, env):
    d = os.path.join(a.data, "bad")
    good = good_images(a.data)[0]
    ckpt = os.path.join(a.work, "resnet18_random.pth")
    torch.save(torchvision.models.resnet18().state_dict(), ckpt)
    for n in sorted(os.listdir(d)) + ["does_not_exist.png", ".."]:  # "..": a directory
        path = os.path.join(d, n)
        cmds = [["preprocess", "ResNet18_Weights.IMAGESTEST_BILINEAR_256_224", good, path, "--output",
                 os.path.join(a.work, "bad.safetensors")]]
        if n in ("truncated.jpg", "text.png", "bad_crc.png", "does_not_exist.png"):  # predict loads a model: a few
            cmds.append(["predict", "resnet18", good, path, "--checkpoint", ckpt])
        for cmd in cmds:
            p = run(cmd, a.mz, env, ok=False)
            err = p.stderr.strip()
            check(p.returncode == 7 and path in err and len(err.splitlines()) == 1,
                  f"{cmd[0]} {n}: exit {p.returncode}, stderr {err!r}")
    # A 44-byte PNG claiming a 1 GiB text chunk is refused without that chunk being read into memory (libpng alone
    # reserved and touched the whole gigabyte): its peak memory is within 256 MB of a run on a small valid image
    # (relative, since LibTorch's own footprint depends on the build: a sanitizer build's is larger).
    def peak(image):
        proc = subprocess.Popen([a.mz, "preprocess", "ResNet18_Weights.IMAGESTEST_DETECTION", image, "--output",
                                 os.path.join(a.work, "x.safetensors")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        return os.waitstatus_to_exitcode(status), usage.ru_maxrss // 1024

    (_, baseline), (code, huge) = peak(good), peak(os.path.join(d, "huge_text_chunk.png"))
    check(code == 7 and huge < baseline + 256,
          f"huge_text_chunk.png: exit {code}, peak memory {huge} MB (a valid image: {baseline} MB)")
    # A directory and a file that PIL also refuses (truncated JPEG) say why.
    p = run(["preprocess", "ResNet18_Weights.IMAGESTEST_DETECTION", os.path.join(d, "truncated.jpg"), "--output",
             os.path.join(a.work, "x.safetensors")], a.mz, env, ok=False)
    check("truncated" in p.stderr, f"truncated JPEG says so: {p.stderr.strip()}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mz", required=True)
    ap.add_argument("--tool", required=True, help="mz_images_tool")
    ap.add_argument("--data", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("part", choices=["decode", "presets", "predict", "errors"])
    a = ap.parse_args()
    a.work = os.path.join(a.work, a.part)
    os.makedirs(a.work, exist_ok=True)
    env = manifest(a.work)
    torch.set_num_threads(1)
    globals()["part_" + a.part](a, env)
    if failures:
        print(f"{len(failures)} failure(s)")
        sys.exit(1)
    print("all ok")


if __name__ == "__main__":
    main()
