#!/usr/bin/python3
"""mz predict for segmentation and detection weights against torchvision 0.14.1 (+ PIL 9.4).
Usage: test_predict.py --mz build/mz --work DIR [segmentation|detection]
  segmentation  a random lraspp_mobilenet_v3_large checkpoint through the weight's preset: each class's share
                of the image equals torchvision's (model, resize to the image, argmax), and --draw writes
                torchvision's draw_segmentation_masks of those classes, pixel for pixel
  detection     for Mask R-CNN, Keypoint R-CNN, RetinaNet v2 and SSDLite: --json and --draw against `mz forward`
                on the same image: the detections kept by --score-thresh, labels, COCO RLE masks and keypoints,
                and the picture torchvision.utils draws from them
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
import torch
import torchvision
from PIL import Image
from torchvision.utils import _generate_color_palette, draw_bounding_boxes, draw_keypoints, draw_segmentation_masks

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "oracle"))
import st  # noqa: E402

SAMPLE = os.path.join(HERE, "..", "images", "sample.png")
failures = []


def check(cond, what):
    print(("ok    " if cond else "FAIL  ") + what)
    if not cond:
        failures.append(what)


def run(mz, args):
    p = subprocess.run([mz] + args, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"mz {' '.join(args)} failed ({p.returncode}): {p.stderr}")
    return p.stdout


def image_tensor(path):
    return torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)


def segmentation(a):
    weights = torchvision.models.segmentation.LRASPP_MobileNet_V3_Large_Weights.COCO_WITH_VOC_LABELS_V1
    torch.manual_seed(0)
    model = torchvision.models.segmentation.lraspp_mobilenet_v3_large(weights=None, weights_backbone=None).eval()
    # Contrast, so that several classes share the image: BatchNorm statistics of this image, a stronger head.
    x = weights.transforms()(Image.open(SAMPLE).convert("RGB")).unsqueeze(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.momentum = 1.0
        model.train()(torch.cat([x, x.flip(-1)]))
        model.eval()
        for p in model.classifier.parameters():
            p.normal_(0, 1)
    ckpt = os.path.join(a.work, "lraspp.pth")
    torch.save(model.state_dict(), ckpt)
    draw_dir = os.path.join(a.work, "seg_draw")
    got = json.loads(run(a.mz, ["predict", str(weights), SAMPLE, "--checkpoint", ckpt, "--json", "--draw", draw_dir]))

    image = image_tensor(SAMPLE)
    with torch.inference_mode():
        out = model(weights.transforms()(Image.open(SAMPLE).convert("RGB")).unsqueeze(0))["out"]
        logits = torch.nn.functional.interpolate(out, size=image.shape[-2:], mode="bilinear", align_corners=False)
    classes = logits[0].argmax(0)
    present = classes.unique()
    want = [{"label": weights.meta["categories"][k], "index": int(k), "fraction": (classes == k).double().mean().item()}
            for k in present]
    segs = got[0]["segments"]
    check(len(want) >= 3, f"segmentation: the oracle's map has several classes ({len(want)})")
    check(got[0]["image"] == SAMPLE and [s["index"] for s in segs] == [w["index"] for w in want] and
          [s["label"] for s in segs] == [w["label"] for w in want],
          f"segmentation: classes present {[s['label'] for s in segs]}")
    worst = max(abs(s["fraction"] - w["fraction"]) for s, w in zip(segs, want)) if segs else 1
    # Logits agree to ~1e-6, so only pixels at exact near-ties of two classes may flip.
    check(worst <= 1e-3, f"segmentation: shares of the image within 1e-3 of torchvision's (worst {worst:.2g})")
    palette = _generate_color_palette(len(weights.meta["categories"]))
    ref = draw_segmentation_masks(image, classes[None] == present[:, None, None], 0.6,
                                  [tuple(int(c) for c in palette[k]) for k in present])
    drawn = image_tensor(os.path.join(draw_dir, "sample.png"))
    differ = (drawn != ref).any(0).double().mean().item()
    check(differ <= 1e-3, f"segmentation: --draw is torchvision's draw_segmentation_masks ({differ:.2%} pixels differ)")
    p = subprocess.run([a.mz, "predict", "ResNet18_Weights.IMAGENET1K_V1", SAMPLE, "--draw", draw_dir],
                       capture_output=True, text=True)
    check(p.returncode == 2 and "--draw" in p.stderr, f"classification refuses --draw (exit {p.returncode})")


def rle(mask):
    """COCO's uncompressed RLE: run lengths in column-major order, starting with a run of zeros."""
    flat, counts, current, run = mask.t().reshape(-1).tolist(), [], False, 0
    for v in flat:
        if v != current:
            counts.append(run)
            run, current = 0, v
        run += 1
    counts.append(run)
    return {"size": list(mask.shape), "counts": counts}


# One row per kind of detector: (model, its weights for the preset and categories, mz options). Each runs with a
# random torchvision init (weights=None, weights_backbone=None) and a small input side.
DETECTORS = [
    ("maskrcnn_resnet50_fpn", "MaskRCNN_ResNet50_FPN_Weights", {"min_size": 256, "max_size": 320, "box_score_thresh": 0.0}),
    ("keypointrcnn_resnet50_fpn", "KeypointRCNN_ResNet50_FPN_Weights",
     {"min_size": 256, "max_size": 320, "box_score_thresh": 0.0}),
    ("retinanet_resnet50_fpn_v2", "RetinaNet_ResNet50_FPN_V2_Weights", {"min_size": 256, "max_size": 320, "score_thresh": 0.0}),
    ("ssdlite320_mobilenet_v3_large", "SSDLite320_MobileNet_V3_Large_Weights", {"score_thresh": 0.0}),
]
# SSDLite's initial head gives every class the same softmax score: spread them, so that a threshold keeps a part.
CONTRAST = {"ssdlite320_mobilenet_v3_large": lambda m: [p.normal_(0, 0.05) for p in m.head.classification_head.parameters()]}
COCO_SKELETON = [(0, 1), (0, 2), (1, 3), (2, 4), (0, 5), (0, 6), (5, 7), (6, 8), (7, 9), (8, 10), (5, 11), (6, 12),
                 (11, 13), (12, 14), (13, 15), (14, 16)]


def detection(a):
    """Every kind of detector (masks, keypoints, dense single-stage, SSD): mz predict against mz forward's outputs."""
    for name, weights_enum, opts in DETECTORS:
        detector(a, name, getattr(torchvision.models.detection, weights_enum).DEFAULT, opts)


def detector(a, name, weights, opts):
    categories = weights.meta["categories"]
    torch.manual_seed(0)
    model = getattr(torchvision.models.detection, name)(weights=None, weights_backbone=None)
    with torch.no_grad():
        CONTRAST.get(name, lambda m: None)(model)
    ckpt = os.path.join(a.work, name + ".pth")
    torch.save(model.state_dict(), ckpt)
    options = json.dumps(opts)
    inp, out = os.path.join(a.work, "det_in.safetensors"), os.path.join(a.work, "det_out.safetensors")
    st.save(inp, {"input.0": weights.transforms()(Image.open(SAMPLE).convert("RGB"))})
    run(a.mz, ["forward", name, "--checkpoint", ckpt, "--input", inp, "--output", out, "--options", options])
    ref = st.load(out)
    ranked = ref["scores.0"].sort(descending=True)[0]
    thresh = float(ranked[min(9, len(ranked) - 1)])  # keeps about ten, drops the rest
    draw_dir = os.path.join(a.work, "det_draw_" + name)
    args = ["predict", name, SAMPLE, "--checkpoint", ckpt, "--options", options, "--score-thresh", str(thresh)]
    got = json.loads(run(a.mz, args + ["--json", "--draw", draw_dir]))[0]["detections"]
    text = run(a.mz, args).splitlines()

    keep = ref["scores.0"] >= thresh
    boxes, scores, labels = ref["boxes.0"][keep], ref["scores.0"][keep], ref["labels.0"][keep]
    check(0 < len(got) < len(ref["scores.0"]), f"{name}: --score-thresh keeps {len(got)} of {len(ref['scores.0'])}")
    check(len(got) == len(scores) and all(
        d["index"] == int(l) and d["label"] == categories[int(l)] and d["score"] == float(s) and
        d["box"] == [float(v) for v in b] for d, l, s, b in zip(got, labels, scores, boxes)),
        f"{name}: --json labels, indices, scores and boxes are mz forward's")
    masks = ref["masks.0"][keep][:, 0] > 0.5 if "masks.0" in ref else None
    if masks is not None:
        check(all(d["mask"] == rle(m) for d, m in zip(got, masks)), f"{name}: --json masks are COCO RLE of masks > 0.5")
    keypoints = ref["keypoints.0"][keep] if "keypoints.0" in ref else None
    if keypoints is not None:
        kp_scores = ref["keypoints_scores.0"][keep]
        check(all(d["keypoints"] == [[float(p[0]), float(p[1]), float(q)] for p, q in zip(k, ks)]
                  for d, k, ks in zip(got, keypoints, kp_scores)),
              f"{name}: --json keypoints are mz forward's [x, y, score]")
    check(all(("mask" in d) == (masks is not None) and ("keypoints" in d) == (keypoints is not None) for d in got),
          f"{name}: masks and keypoints in --json exactly when the model has them")
    check(len(text) == 1 + len(got) and text[0] == SAMPLE and all(
        line.split()[0] == categories[int(l)].split()[0] for line, l in zip(text[1:], labels)),
        f"{name}: one line per detection (label, score, box)")

    palette = _generate_color_palette(len(categories) + 1)
    colors = [tuple(int(c) for c in palette[int(l)]) for l in labels]
    picture = image_tensor(SAMPLE)
    if masks is not None:
        picture = draw_segmentation_masks(picture, masks, 0.5, colors)
    picture = draw_bounding_boxes(picture, boxes, [f"{categories[int(l)]} {float(s):.2f}" for l, s in zip(labels, scores)],
                                  colors, False, 2)
    if keypoints is not None:
        picture = draw_keypoints(picture, keypoints, COCO_SKELETON, "blue", 3, 2)
    drawn = image_tensor(os.path.join(draw_dir, "sample.png"))
    differ = int((drawn != picture).any(0).sum())
    check(differ == 0, f"{name}: --draw is torchvision.utils' drawing of those detections ({differ} pixels differ)")


ap = argparse.ArgumentParser()
ap.add_argument("--mz", required=True)
ap.add_argument("--work", required=True)
ap.add_argument("part", choices=["segmentation", "detection"])
a = ap.parse_args()
os.makedirs(a.work, exist_ok=True)
{"segmentation": segmentation, "detection": detection}[a.part](a)
print(f"{a.part}: {len(failures)} failed")
sys.exit(1 if failures else 0)
