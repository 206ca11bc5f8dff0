#!/usr/bin/python3
"""Stage-by-stage parity of every registered detector with torchvision 0.14.1 (issue 12).

For each model of `mz list --models --json` with task "detection", and each configuration (the plain
build, as `mz forward --checkpoint` makes it, and the configuration of each weight named in the
table, as `--like` makes it: FrozenBatchNorm2d, eps 0 where the weight has it), the oracle builds
torchvision's model with random weights and randomised norm statistics, runs it on two images of
different sizes and records every stage. tests/detection/stages (mz_detection_stages) loads the same
state dict strictly (so the keys are torchvision's) and runs each stage on the oracle's input to that
stage. Required:
  transform output and image sizes       bit for bit
  backbone/FPN maps, RPN logits/deltas, box/mask/keypoint head outputs    relative error <= 1e-4
  RPN proposals, postprocessed detections, masks and keypoints on injected inputs    bit for bit
  the whole model                        boxes 1e-3 px, scores 1e-4, labels exact, but only where
                                         the oracle certifies the result: detections of two copies
                                         with weights perturbed by 1e-6 (relative) agree with it;
                                         otherwise the comparison is reported as not certified.
  the whole model's raw predictions before any selection (`mz forward --dense`: the RPN head's outputs,
  the box/mask/keypoint heads' on fixed boxes)    relative error <= 1e-4, always
Models with "legacy" also load a state dict written with the old key names (FPN, RPN head, mask head).

Usage: parity_detection.py --mz build/mz --stages build/.../mz_detection_stages --work DIR
                           [--extended | --only-extended] [MODEL...]
Per-model special cases live in the SPECIAL table, nowhere else.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
from unittest import mock

import torch
from torch import nn
import torchvision.models as tvm
from torchvision.models import detection  # noqa: F401  (registers the detection builders)
from torchvision.models._api import WeightsEnum
from torchvision.models.detection import roi_heads as rh_mod
from torchvision.models.detection.rpn import concat_box_prediction_layers

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
sys.path.insert(0, os.path.dirname(__file__))
import st  # noqa: E402
from gen_fixtures import randomize  # noqa: E402  (tests/detection)

TOLERANCE = 1e-4
# Small images, few proposals and detections (the default suite stays fast; certification is likelier).
FEW = {"rpn_pre_nms_top_n_test": 200, "rpn_post_nms_top_n_test": 50, "box_score_thresh": 0.02,
       "box_detections_per_img": 8}
SMALL = dict(FEW, min_size=160, max_size=200)

# name -> {"kwargs": builder kwargs (both sides), "like": weights whose configuration is tested besides the
#          plain build, "legacy": also load the first of them with old key names, "images": input shapes,
#          "default": the configurations (like or None, legacy) of the default suite; the others run with
#          --extended / --only-extended}
SPECIAL = {
    "fasterrcnn_resnet50_fpn": {"kwargs": SMALL, "like": ["COCO_V1"], "legacy": True, "default": [("COCO_V1", True)]},
    "fasterrcnn_resnet50_fpn_v2": {"kwargs": SMALL, "like": ["COCO_V1"], "default": [(None, False)]},
    "fasterrcnn_mobilenet_v3_large_fpn": {"kwargs": SMALL, "like": ["COCO_V1"], "default": [("COCO_V1", False)]},
    "fasterrcnn_mobilenet_v3_large_320_fpn": {"kwargs": dict(FEW, rpn_pre_nms_top_n_test=150), "like": ["COCO_V1"],
                                              "default": [(None, False)]},
    "maskrcnn_resnet50_fpn": {"kwargs": SMALL, "like": ["COCO_V1"], "legacy": True, "default": [(None, False)]},
    "maskrcnn_resnet50_fpn_v2": {"kwargs": SMALL, "like": ["COCO_V1"], "default": [(None, False)]},
    "keypointrcnn_resnet50_fpn": {"kwargs": SMALL, "like": ["COCO_LEGACY", "COCO_V1"], "legacy": True,
                                  "default": [("COCO_LEGACY", True)]},
}


def configurations(model):
    """(like, legacy, extended) for every configuration of `model` the table asks for."""
    spec = SPECIAL.get(model, {})
    likes = spec.get("like", [])
    all_ = [(None, False)] + [(like, False) for like in likes]
    if spec.get("legacy"):
        all_.append((likes[0] if likes else None, True))
    default = spec.get("default", all_)
    return [(like, legacy, (like, legacy) not in default) for like, legacy in all_]


# Old names of upstream's pre-version-2 files -> new names (torchvision's _load_from_state_dict renames).
LEGACY = [
    (r"^(backbone\.fpn\.(?:inner|layer)_blocks\.\d+)\.0\.(weight|bias)$", r"\1.\2"),
    (r"^(rpn\.head\.conv)\.0\.0\.(weight|bias)$", r"\1.\2"),
    (r"^(roi_heads\.mask_head)\.(\d+)\.0\.(weight|bias)$", lambda m: f"{m[1]}.mask_fcn{int(m[2]) + 1}.{m[3]}"),
]


def build(name, like, kwargs):
    """torchvision's model: the plain build (no weights at all) or the configuration of weight `like`
    (its builder path with weights, the download and the load itself stubbed out)."""
    if like is None:
        return tvm.get_model(name, weights=None, weights_backbone=None, **kwargs)
    w = tvm.get_model_weights(name)[like]
    with mock.patch.object(WeightsEnum, "get_state_dict", lambda self, *a, **k: None), \
            mock.patch.object(nn.Module, "load_state_dict", lambda self, *a, **k: None):
        return tvm.get_model(name, weights=w, **kwargs)


def stages(model, images):
    """Every stage of an R-CNN on the oracle's own inputs, as mz_detection_stages names them."""
    out = {f"image.{i}": im for i, im in enumerate(images)}
    with torch.no_grad():
        il, _ = model.transform(images)
        out["t.tensors"] = il.tensors
        out["t.sizes"] = torch.tensor([list(s) for s in il.image_sizes], dtype=torch.int64)
        feats = model.backbone(il.tensors)
        if isinstance(feats, torch.Tensor):
            feats = {"0": feats}
        for k, (n, v) in enumerate(feats.items()):
            out[f"feat.{k}.{n}"] = v
        maps = list(feats.values())
        rpn = model.rpn
        logits, deltas = rpn.head(maps)
        for l, (a, b) in enumerate(zip(logits, deltas)):
            out[f"rpn.logits.{l}"], out[f"rpn.deltas.{l}"] = a, b
        anchors = rpn.anchor_generator(il, maps)
        per_level = [o[0].numel() for o in logits]
        obj, pred = concat_box_prediction_layers(logits, deltas)
        props = rpn.box_coder.decode(pred, anchors).view(len(anchors), -1, 4)
        boxes, scores = rpn.filter_proposals(props, obj, il.image_sizes, per_level)
        for i, (b, s) in enumerate(zip(boxes, scores)):
            out[f"rpn.proposals.{i}"], out[f"rpn.scores.{i}"] = b, s
        rh = model.roi_heads
        x = rh.box_head(rh.box_roi_pool(feats, boxes, il.image_sizes))
        cl, br = rh.box_predictor(x)
        out["box.class_logits"], out["box.box_regression"] = cl, br
        dboxes, dscores, dlabels = rh.postprocess_detections(cl, br, boxes, il.image_sizes)
        dets = [{"boxes": b, "labels": l, "scores": s} for b, s, l in zip(dboxes, dscores, dlabels)]
        if rh.has_mask():
            ml = rh.mask_predictor(rh.mask_head(rh.mask_roi_pool(feats, dboxes, il.image_sizes)))
            out["mask.logits"] = ml
            for d, m in zip(dets, rh_mod.maskrcnn_inference(ml, dlabels)):
                d["masks"] = m
        if rh.keypoint_roi_pool is not None:
            kl = rh.keypoint_predictor(rh.keypoint_head(rh.keypoint_roi_pool(feats, dboxes, il.image_sizes)))
            out["kp.logits"] = kl
            for d, kp, ks in zip(dets, *rh_mod.keypointrcnn_inference(kl, dboxes)):
                d["keypoints"], d["keypoints_scores"] = kp, ks
        for i, d in enumerate(dets):
            for k, v in d.items():
                out[f"det.{k}.{i}"] = v
        for i, d in enumerate(model(images)):
            for k, v in d.items():
                out[f"final.{k}.{i}"] = v
    return out


def probe_boxes(image_sizes, count):
    """GeneralizedRCNN::dense's fixed boxes, `count` per image: at 1, 1/2, ..., 1/16 of its size in turn, sliding
    from the top right corner to the bottom left one."""
    out = []
    for h, w in image_sizes:
        boxes = []
        for i in range(count):
            s, t = 1 / 2 ** (i % 5), i / max(1, count - 1)
            left, top = w * (1 - s) * (1 - t), h * (1 - s) * t
            boxes.append([left, top, left + w * s, top + h * s])
        out.append(torch.tensor(boxes, dtype=torch.float64).float().reshape(-1, 4))
    return out


def dense(model, images):
    """What `mz forward --dense` gives (Model::dense): the RPN head's outputs, and the RoI heads' on fixed boxes."""
    out = {}
    with torch.no_grad():
        il, _ = model.transform(images)
        feats = model.backbone(il.tensors)
        if isinstance(feats, torch.Tensor):
            feats = {"0": feats}
        logits, deltas = model.rpn.head(list(feats.values()))
        for l, (a, b) in enumerate(zip(logits, deltas)):
            out[f"rpn.objectness.{l}"], out[f"rpn.pred_bbox_deltas.{l}"] = a, b
        # The box head on as many boxes as the RPN passes on; the mask and keypoint heads on the first five.
        rh, boxes = model.roi_heads, probe_boxes(il.image_sizes, model.rpn.post_nms_top_n())
        cl, br = rh.box_predictor(rh.box_head(rh.box_roi_pool(feats, boxes, il.image_sizes)))
        out["roi_heads.class_logits"], out["roi_heads.box_regression"] = cl, br
        few = [b[:5] for b in boxes]
        if rh.has_mask():
            out["roi_heads.mask_logits"] = rh.mask_predictor(rh.mask_head(rh.mask_roi_pool(feats, few,
                                                                                           il.image_sizes)))
        if rh.keypoint_roi_pool is not None:
            out["roi_heads.keypoint_logits"] = rh.keypoint_predictor(
                rh.keypoint_head(rh.keypoint_roi_pool(feats, few, il.image_sizes)))
    return out


def dense_problems(ours, ref):
    """`mz forward --dense` against the oracle's: the same names and shapes, each within TOLERANCE."""
    if ours.keys() != ref.keys():
        return [f"dense outputs: names {sorted(ours)} vs {sorted(ref)}"]
    problems = []
    for k, want in ref.items():
        if ours[k].shape != want.shape:
            problems.append(f"dense {k}: shape {list(ours[k].shape)} vs {list(want.shape)}")
        elif rel_error(ours[k], want) > TOLERANCE:
            problems.append(f"dense {k}: relative error {rel_error(ours[k], want):.3g}")
    return problems


def finals(d):
    return {k: v for k, v in d.items() if k.startswith("final.")}


def same_detections(a, b):
    """Same detections: the same keys, labels and counts, boxes and keypoints (pixel positions derived from the
    boxes) within 1e-3 px, the rest within 1e-4."""
    if a.keys() != b.keys():
        return False
    for k in a:
        if a[k].shape != b[k].shape:
            return False
        if k.startswith("final.labels."):
            if not torch.equal(a[k], b[k]):
                return False
        elif a[k].numel() and (a[k] - b[k]).abs().max() > (1e-3 if k.startswith(("final.boxes.", "final.keypoints."))
                                                             else 1e-4):
            return False
    return True


def certified(model, images, reference, gen):
    """The oracle's final detections are stable: two copies of the model with every weight perturbed by
    a relative 1e-6 give the same detections (so no score, IoU or top-k cut lies that close to a threshold)."""
    sd = {k: v.clone() for k, v in model.state_dict().items()}
    for _ in range(2):
        with torch.no_grad():
            for p in list(model.parameters()) + list(model.buffers()):
                if p.is_floating_point():
                    p.mul_(1 + 1e-6 * (2 * torch.rand(p.shape, generator=gen) - 1))
            got = {f"final.{k}.{i}": v for i, d in enumerate(model(images)) for k, v in d.items()}
        model.load_state_dict(sd)
        if not same_detections(got, reference):
            return False
    return True


def rel_error(a, b):
    return float((a.double() - b.double()).abs().max() / b.double().abs().max().clamp(min=1e-12)) if b.numel() else 0.0


def compare(ours, ref, cert):
    problems = []
    for k, want in ref.items():
        if k.startswith("image."):
            continue
        if k.startswith("final.") and not cert:
            continue
        got = ours.get(k)
        if got is None:
            problems.append(f"{k}: missing")
            continue
        if got.shape != want.shape:
            problems.append(f"{k}: shape {list(got.shape)} vs {list(want.shape)}")
            continue
        exact = k.startswith(("t.", "rpn.proposals.", "rpn.scores.", "det."))
        if k.startswith("final."):
            continue
        if exact:
            if not torch.equal(got, want):
                problems.append(f"{k}: not bit-exact (max diff {(got.double() - want.double()).abs().max():.3g})")
        elif rel_error(got, want) > TOLERANCE:
            problems.append(f"{k}: relative error {rel_error(got, want):.3g}")
    extra = sorted(set(ours) - set(ref))
    if extra:
        problems.append(f"outputs the oracle does not have: {extra[:5]}")
    if cert:
        fo, fr = finals(ours), finals(ref)
        if not same_detections(fo, fr):
            problems.append("final detections differ: " + ", ".join(
                f"{k} {list(fo[k].shape) if k in fo else None} vs {list(v.shape)}" for k, v in fr.items()
                if k not in fo or fo[k].shape != v.shape or not torch.allclose(fo[k].double(), v.double(), atol=1e-3))[:300])
    return problems


def legacy_keys(sd):
    out = {}
    for k, v in sd.items():
        for pattern, repl in LEGACY:
            k = re.sub(pattern, repl, k)
        out[k] = v
    return out


def check(a, name, like, legacy, work, seed):
    spec = SPECIAL.get(name, {})
    kwargs = spec.get("kwargs", {})
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = build(name, like, kwargs).eval()
    randomize(model, gen)
    images = [torch.rand(s, generator=gen) for s in spec.get("images", [(3, 70, 90), (3, 80, 64)])]
    ref = stages(model, images)
    cert = certified(model, images, finals(ref), gen)
    tag = f"{name}-{like or 'plain'}{'-legacy' if legacy else ''}"
    ckpt, oracle, out = (os.path.join(work, f"{tag}.{ext}") for ext in ("pth", "oracle.safetensors", "out.safetensors"))
    sd = model.state_dict()
    torch.save(legacy_keys(sd) if legacy else sd, ckpt)
    st.save(oracle, ref)
    r = subprocess.run([a.stages, name, json.dumps(kwargs), like or "-", ckpt, oracle, out], capture_output=True, text=True)
    if r.returncode != 0:
        return [f"mz_detection_stages failed: {r.stderr.strip()[:500]}"], cert
    # `mz forward --like` (or the plain --checkpoint build) runs the whole model from the CLI too.
    inputs = os.path.join(work, f"{tag}.in.safetensors")
    st.save(inputs, {f"input.{i}": im for i, im in enumerate(images)})
    cmd = [a.mz, "forward", name, "--checkpoint", ckpt, "--input", inputs, "--output", out + ".cli",
           "--options", json.dumps(kwargs)] + (["--like", like] if like else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return [f"mz forward failed: {r.stderr.strip()[:500]}"], cert
    ours = st.load(out)
    cli = {"final." + k: v for k, v in st.load(out + ".cli").items()}
    problems = compare(ours, ref, cert)
    # Where the oracle's detections are certified stable, mz forward must give them too; elsewhere a 1e-7
    # difference between two runs may change them, so only the names are compared.
    if cli.keys() != finals(ours).keys() or (cert and not same_detections(cli, finals(ref))):
        problems.append("mz forward's detections differ from the oracle's")
    # The raw predictions before any selection are continuous: always compared (`mz forward --dense`).
    r = subprocess.run(cmd + ["--dense"], capture_output=True, text=True)
    if r.returncode != 0:
        return problems + [f"mz forward --dense failed: {r.stderr.strip()[:500]}"], cert
    problems += dense_problems(st.load(out + ".cli"), dense(model, images))
    return problems, cert


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mz", required=True)
    ap.add_argument("--stages", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--extended", action="store_true", help="every configuration, not only the default ones")
    ap.add_argument("--only-extended", action="store_true", help="only the configurations left out by default")
    ap.add_argument("models", nargs="*")
    a = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(a.work, exist_ok=True)
    listed = json.loads(subprocess.check_output([a.mz, "list", "--models", "--json", "--task", "detection"]))
    # The two-stage detectors (this table); the single-stage ones are tests/detection_single's (its own table).
    models = [m["model"] for m in listed if m["task"] == "detection" and m["model"] in SPECIAL]
    if a.models:
        models = [m for m in models if m in a.models]
    jobs = [(m, like, legacy) for m in models for like, legacy, ext in configurations(m)
            if (ext if a.only_extended else a.extended or not ext)]
    failures = uncertified = 0
    for seed, (m, like, legacy) in enumerate(jobs):
        t0 = time.time()
        try:
            problems, cert = check(a, m, like, legacy, a.work, seed)
        except Exception as e:  # a torchvision-side failure is a test failure too
            problems, cert = [f"{type(e).__name__}: {e}"], False
        uncertified += not cert
        status = "ok" if not problems else "FAIL " + "; ".join(problems)
        conf = (like or "plain") + (" legacy keys" if legacy else "")
        print(f"{m:38s} {conf:24s} {time.time() - t0:6.1f}s  end-to-end {'compared' if cert else 'not certified'}  "
              f"{status}", flush=True)
        failures += bool(problems)
    print(f"detection parity: {len(jobs) - failures} passed, {failures} failed; end to end compared in "
          f"{len(jobs) - uncertified} of {len(jobs)}")
    if not jobs and not a.only_extended:
        print("detection parity: no models selected", file=sys.stderr)
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
