#!/usr/bin/python3
"""Stage-by-stage fixtures of torchvision 0.14.1's single-stage detectors (RetinaNet, FCOS, SSD, SSDLite).

For each case of the CASES table, over every single-stage detector `mz list --models --json --task detection`
registers, build torchvision's model with random weights (norm statistics randomised, head weights rescaled so
that scores spread), run it in eval mode on small random images and write OUT/<case>.safetensors with:
  state.<key>                   the state dict (old key names for the "legacy" variant)
  input.<i>                     the images
  transform.tensors, transform.image_sizes [N, 2]
  features.<level>              backbone(transform.tensors)
  head.<name>                   head(features): cls_logits, bbox_regression (and bbox_ctrness)
  anchors.<i>                   anchor_generator(images, features)
  post.{boxes,scores,labels}.<i>  postprocess_detections(head outputs, anchors, image sizes)
  det.{boxes,scores,labels}.<i>   model(images)
and OUT/<case>.json {"model", "weights", "options" (JSON, the builder's kwargs for mz), "certified" ("1" when no score,
IoU or top-k cut lies within MARGIN of a threshold, so the end-to-end list is a stable target)}.
Configurations: BatchNorm (nothing pretrained), FrozenBatchNorm2d (backbone weights named, their loading
patched out), eps 0 (the configuration of weights that overwrite it) and old key names.
Usage: oracle.py --mz build/mz OUT_DIR
"""
import argparse
import json
import os
import re
import subprocess
import sys

import torch
import torchvision.models.detection as tvd
from torchvision.models.detection import fcos as tv_fcos, retinanet as tv_retinanet, ssd as tv_ssd, ssdlite as tv_ssdlite
from torchvision.models.detection._utils import overwrite_eps
from torchvision.ops import boxes as box_ops

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
import st  # noqa: E402

MARGIN = 1e-4
SEEDS = 8  # tried per case, from its first seed, until one is certified
R50 = "ResNet50_Weights.IMAGENET1K_V1"
# One table of per-model cases: name suffix -> (seed to start from (the first that the oracle certifies, found by
# trying the following ones), builder kwargs for both sides, weights whose configuration mz builds (eps 0), image
# sizes, variant: "legacy" for old key names, or the logits' spread (default 2)).
# Options beyond the builder's defaults keep the runs small; score_thresh is chosen per seed (pick_score_thresh)
# so that the detections are few.
SMALL = {"min_size": [160], "max_size": 200}
CASES = {
    "retinanet_resnet50_fpn": {
        "bn": (2, {**SMALL, "num_classes": 7, "weights_backbone": None}, None, [(3, 150, 180), (3, 120, 100)], None),
        "frozen": (0, {**SMALL, "num_classes": 7, "weights_backbone": R50}, None, [(3, 160, 160)], None),
        # 91 classes (forced by the weights): logits spread less, so that about as few scores pass.
        "eps0": (2, {**SMALL}, "RetinaNet_ResNet50_FPN_Weights.COCO_V1", [(3, 140, 170)], 1.6),
        "legacy": (2, {**SMALL, "num_classes": 7, "weights_backbone": None}, None, [(3, 128, 128)], "legacy"),
    },
    "retinanet_resnet50_fpn_v2": {
        "bn": (0, {**SMALL, "num_classes": 5}, None, [(3, 130, 190)], None),
    },
    "fcos_resnet50_fpn": {
        "bn": (0, {**SMALL, "num_classes": 6, "weights_backbone": None}, None, [(3, 150, 180), (3, 100, 120)], None),
        "frozen": (0, {**SMALL, "num_classes": 6, "weights_backbone": R50}, None, [(3, 160, 140)], None),
    },
    "ssd300_vgg16": {
        "plain": (7, {"num_classes": 6, "weights_backbone": None}, None, [(3, 200, 240), (3, 150, 120)], None),
    },
    "ssdlite320_mobilenet_v3_large": {
        "reduced": (1, {"num_classes": 6, "weights_backbone": None}, None, [(3, 200, 240), (3, 150, 120)], None),
        "full": (0, {"num_classes": 6, "weights_backbone": "MobileNet_V3_Large_Weights.IMAGENET1K_V1"},
                 None, [(3, 240, 200)], None),
    },
}
# Where each builder gets its backbone, so that naming backbone weights builds their configuration
# without downloading them.
BACKBONE_BUILDERS = {tv_retinanet: "resnet50", tv_fcos: "resnet50", tv_ssd: "vgg16", tv_ssdlite: "mobilenet_v3_large"}


def no_download():
    for module, name in BACKBONE_BUILDERS.items():
        original = getattr(module, name)
        setattr(module, name, lambda *a, _f=original, **k: _f(*a, **{**k, "weights": None}))


def weights_of(name):
    if name is None:
        return None
    enum, value = name.split(".")
    return getattr(getattr(tvd, enum, None) or getattr(__import__("torchvision.models", fromlist=[enum]), enum), value)


def randomize(model, gen):
    """Norm statistics and scales away from their init; head convolutions N(0, 1 / fan_in), so that scores
    spread instead of sitting at the prior, and classification biases of -2."""
    with torch.no_grad():
        for name, p in list(model.state_dict().items()):
            if not p.is_floating_point():
                continue
            if name.endswith("running_var"):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
            elif name.endswith("running_mean"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
            elif name.endswith(".weight") and p.dim() == 1 and not name.startswith("backbone.scale"):
                p.copy_(torch.rand(p.shape, generator=gen) + 0.5)
            elif name.startswith("head.") and p.dim() == 4:
                p.copy_(torch.randn(p.shape, generator=gen) / p[0].numel() ** 0.5)
            elif name.startswith("head.") and name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1 - (2 if "cls_logits" in name else 0))


def spread_scores(model, images, target=2.0):
    """Scales the classification head's last convolutions so that its logits vary by about `target` on these
    images: random backbones give features of any scale, and saturated or tied scores test nothing."""
    il, _ = model.transform(images)
    features = model.backbone(il.tensors)
    features = list(features.values()) if isinstance(features, dict) else [features]
    logits = model.head(features)["cls_logits"]
    factor = target / logits.std().item()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("head.classification_head.") and p.dim() == 4 and (
                    name.endswith("cls_logits.weight") or re.search(r"module_list\.\d+\.(1\.)?weight$", name)):
                p.mul_(factor)


def legacy_state(model):
    """The state dict as RetinaNet checkpoints before the heads' version 2 name it: conv.{i}.0 -> conv.{2i}."""
    out = {}
    for k, v in model.state_dict().items():
        for head in ("classification_head", "regression_head"):
            p = f"head.{head}.conv."
            if k.startswith(p):
                i, rest = k[len(p):].split(".", 1)
                assert rest.startswith("0.")
                k = f"{p}{2 * int(i)}.{rest[2:]}"
        out[k] = v
    return out


def stages(model, images):
    """Every stage's output as torchvision computes it in eval mode."""
    out = {}
    il, _ = model.transform(images)
    out["transform.tensors"] = il.tensors
    out["transform.image_sizes"] = torch.tensor(il.image_sizes, dtype=torch.int64)
    features = model.backbone(il.tensors)
    features = list(features.values()) if isinstance(features, dict) else [features]
    for i, f in enumerate(features):
        out[f"features.{i}"] = f
    head = model.head(features)
    for k, v in head.items():
        out[f"head.{k}"] = v
    anchors = model.anchor_generator(il, features)
    for i, a in enumerate(anchors):
        out[f"anchors.{i}"] = a
    if isinstance(model, tv_ssd.SSD):
        post = model.postprocess_detections(head, anchors, il.image_sizes)
        split = None
    else:
        per_level = [f.size(2) * f.size(3) for f in features]
        a = head["cls_logits"].size(1) // sum(per_level)
        per_level = [n * a for n in per_level]
        split = ({k: list(v.split(per_level, dim=1)) for k, v in head.items()}, [list(x.split(per_level)) for x in anchors])
        post = model.postprocess_detections(split[0], split[1], il.image_sizes)
    for i, d in enumerate(post):
        for k in ("boxes", "scores", "labels"):
            out[f"post.{k}.{i}"] = d[k]
    for i, d in enumerate(model(images)):
        for k in ("boxes", "scores", "labels"):
            out[f"det.{k}.{i}"] = d[k]
    return out, head, anchors, split, il.image_sizes


def candidates(model, head, anchors, split, image_sizes):
    """Per image: every score before the threshold, and the candidates that reach NMS (boxes, scores, labels),
    with the scores around each top-k cut."""
    result = []
    for i, size in enumerate(image_sizes):
        all_scores, boxes, scores, labels, cuts = [], [], [], [], []
        if isinstance(model, tv_ssd.SSD):
            probs = torch.softmax(head["cls_logits"][i], -1)
            decoded = box_ops.clip_boxes_to_image(model.box_coder.decode_single(head["bbox_regression"][i], anchors[i]), size)
            levels = [(probs[:, c], decoded, c) for c in range(1, probs.size(-1))]
        else:
            levels = []
            for lvl in range(len(split[1][i])):
                logits = split[0]["cls_logits"][lvl][i]
                s = torch.sigmoid(logits)
                if "bbox_ctrness" in split[0]:
                    s = torch.sqrt(s * torch.sigmoid(split[0]["bbox_ctrness"][lvl][i]))
                reg, anc = split[0]["bbox_regression"][lvl][i], split[1][i][lvl]
                if isinstance(model, tv_fcos.FCOS):
                    dec = model.box_coder.decode(reg, anc)
                else:
                    dec = model.box_coder.decode_single(reg, anc)
                dec = box_ops.clip_boxes_to_image(dec, size)
                c = s.size(-1)
                levels.append((s.flatten(), dec.repeat_interleave(c, 0), torch.arange(c).repeat(s.size(0))))
        for s, b, lab in levels:
            all_scores.append(s)
            keep = s > model.score_thresh
            ks = s[keep]
            order = ks.sort(descending=True).values
            k = min(model.topk_candidates, ks.numel())
            if k < ks.numel():
                cuts.append((order[k - 1] - order[k]).item())
            top, idx = ks.topk(k)
            kb = b[keep][idx]
            boxes.append(kb)
            scores.append(top)
            labels.append(torch.full_like(top, lab, dtype=torch.int64) if isinstance(lab, int) else lab[keep][idx])
        result.append((torch.cat(all_scores), torch.cat(boxes), torch.cat(scores), torch.cat(labels), cuts))
    return result


def pick_score_thresh(model, head, anchors, split, image_sizes):
    """A score_thresh that lets about 8 to 40 candidates through, in the widest gap between two scores there."""
    scores = torch.cat([c[0] for c in candidates(model, head, anchors, split, image_sizes)]).sort(descending=True).values
    gaps = scores[7:40] - scores[8:41]
    k = 7 + int(gaps.argmax())
    return (scores[k].item() + scores[k + 1].item()) / 2


def certified(model, head, anchors, split, image_sizes, detections):
    """No score within MARGIN of score_thresh or of a top-k cut, no same-class IoU within MARGIN of nms_thresh,
    suppressions decided by a score gap above MARGIN, and the detections_per_img cut clear. Returns "" or
    the first problem found."""
    for (all_scores, boxes, scores, labels, cuts), det in zip(candidates(model, head, anchors, split, image_sizes),
                                                              detections):
        if (all_scores - model.score_thresh).abs().min() <= MARGIN:
            return "a score at score_thresh"
        if any(c <= MARGIN for c in cuts):
            return "a top-k cut"
        same = labels[:, None] == labels[None, :]
        iou = box_ops.box_iou(boxes, boxes)
        off_diagonal = ~torch.eye(len(boxes), dtype=torch.bool)
        if ((iou - model.nms_thresh).abs()[same & off_diagonal] <= MARGIN).any():
            return "an IoU at nms_thresh"
        overlapping = same & off_diagonal & (iou > model.nms_thresh)
        if ((scores[:, None] - scores[None, :]).abs()[overlapping] <= MARGIN).any():
            return "a suppression between near-equal scores"
        kept = torchvision_kept = box_ops.batched_nms(boxes, scores, labels, model.nms_thresh)
        if len(kept) > model.detections_per_img:
            s = scores[torchvision_kept]
            if (s[model.detections_per_img - 1] - s[model.detections_per_img]).abs() <= MARGIN:
                return "the detections_per_img cut"
        if len(det["scores"]) == 0:
            return "no detections"  # nothing to compare end to end
    return ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mz", required=True)
    ap.add_argument("out")
    ap.add_argument("cases", nargs="*", help="only these cases (model.case)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    registered = (set(CASES) if a.mz == "-" else
                  {m["model"] for m in json.loads(subprocess.check_output([a.mz, "list", "--models", "--json", "--task", "detection"]))})
    no_download()
    torch.set_grad_enabled(False)
    written = 0
    for model_name, cases in CASES.items():
        if model_name not in registered:
            print(f"{model_name}: not registered in mz", file=sys.stderr)
            return 1
        for case, (first_seed, kwargs, weights, sizes, variant) in cases.items():
            if a.cases and f"{model_name}.{case}" not in a.cases:
                continue
            tv_kwargs = {k: (weights_of(v) if k == "weights_backbone" else v) for k, v in kwargs.items()}
            for seed in range(first_seed, first_seed + SEEDS):
                torch.manual_seed(seed)
                if weights:
                    # The weights' configuration without them: FrozenBatchNorm2d (as for any trained build), eps 0.
                    model = tvd.__dict__[model_name](**tv_kwargs, weights_backbone=weights_of(R50))
                    overwrite_eps(model, 0.0)
                else:
                    model = tvd.__dict__[model_name](**tv_kwargs)
                gen = torch.Generator().manual_seed(seed)
                randomize(model, gen)
                model.eval()
                images = [torch.rand(s, generator=gen) for s in sizes]
                spread_scores(model, images, variant if isinstance(variant, float) else 2.0)
                out, head, anchors, split, image_sizes = stages(model, images)
                model.score_thresh = pick_score_thresh(model, head, anchors, split, image_sizes)
                out, head, anchors, split, image_sizes = stages(model, images)
                dets = [{k: out[f"det.{k}.{i}"] for k in ("scores",)} for i in range(len(images))]
                problem = certified(model, head, anchors, split, image_sizes, dets)
                ok = not problem
                print(f"{model_name}.{case}: seed {seed}: {problem or 'certified'}, "
                      f"{[len(d['scores']) for d in dets]} detections", file=sys.stderr, flush=True)
                if ok:
                    break
            state = legacy_state(model) if variant == "legacy" else model.state_dict()
            tensors = {f"state.{k}": v for k, v in state.items()}
            tensors.update({f"input.{i}": im for i, im in enumerate(images)})
            tensors.update(out)
            meta = {"model": model_name, "weights": weights or "",
                    "options": json.dumps({**kwargs, "score_thresh": model.score_thresh}),
                    "certified": "1" if ok else "0", "seed": str(seed)}
            st.save(os.path.join(a.out, f"{model_name}.{case}.safetensors"), tensors)
            with open(os.path.join(a.out, f"{model_name}.{case}.json"), "w") as f:
                json.dump(meta, f)
            written += 1
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
