"""Oracle cases for mz::ops and the box coders: inputs and torchvision 0.14.1's outputs in one
safetensors file (names "<op>.<case>.<tensor>"), read by test_ops.cpp. Usage: make_cases.py OUT."""
import math
import os
import sys

import torch
from torchvision.ops import boxes as B
from torchvision.models.detection._utils import BoxCoder, BoxLinearCoder

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "oracle"))
import st  # noqa: E402

g = torch.Generator().manual_seed(12)
out = {}


def rand_boxes(n, scale=100.0, quant=None, dtype=torch.float32):
    xy = torch.rand(n, 2, generator=g, dtype=torch.float64) * scale
    wh = torch.rand(n, 2, generator=g, dtype=torch.float64) * scale / 3
    b = torch.cat([xy, xy + wh], 1)
    if quant:  # coarse coordinates: equal boxes and exactly tied IoUs
        b = (b / quant).round() * quant
    return b.to(dtype)


def put(op, i, **tensors):
    for k, v in tensors.items():
        out[f"{op}.{i}.{k}"] = v if isinstance(v, torch.Tensor) else torch.tensor(v, dtype=torch.float64)


# batched_nms: boxes.numel() > 4000 (n > 1000) takes the per-class path; tied scores and boxes make the
# two paths' orders differ.
differ = 0
cases = [(0, 3, None, 10), (1, 1, None, 10), (12, 2, 5.0, 4), (300, 5, None, 50), (999, 7, 10.0, 5),
         (1000, 4, 10.0, 5), (1001, 4, 10.0, 5), (1500, 20, None, 0), (3000, 10, 10.0, 8), (2500, 1, 5.0, 10)]
for i, (n, ncls, quant, levels) in enumerate(cases):
    dtype = torch.float64 if i == 3 else torch.float32
    boxes = rand_boxes(n, quant=quant, dtype=dtype)
    scores = torch.rand(n, generator=g, dtype=torch.float64).to(dtype)
    if levels:
        scores = (scores * levels).round() / levels
    idxs = torch.randint(ncls, (n,), generator=g)
    thr = [0.3, 0.5, 0.7, 0.45][i % 4]
    trick = B._batched_nms_coordinate_trick(boxes, scores, idxs, thr)
    vanilla = B._batched_nms_vanilla(boxes, scores, idxs, thr)
    differ += not torch.equal(trick, vanilla)
    put("batched_nms", i, boxes=boxes, scores=scores, idxs=idxs, thr=thr,
        keep=B.batched_nms(boxes, scores, idxs, thr), trick=trick, vanilla=vanilla)
assert differ >= 2, "the cases should tell the two batched_nms paths apart"

# Box ops, in float32, float64 and integer boxes.
for i, dtype in enumerate([torch.float32, torch.float64, torch.int64, torch.float32]):
    b1 = rand_boxes(40, scale=300.0, quant=1.0 if i == 2 else None).to(dtype)
    b2 = rand_boxes(25, scale=300.0, quant=1.0 if i == 2 else None).to(dtype)
    if i == 3:  # degenerate and inverted boxes
        b1[:5, 2:] = b1[:5, :2]
        b1[5:10] = b1[5:10][:, [2, 3, 0, 1]]
    put("box", i, b1=b1, b2=b2, area=B.box_area(b1), iou=B.box_iou(b1, b2),
        small=B.remove_small_boxes(b1, [1e-3, 1e-2, 1.0, 40.0][i]), min_size=[1e-3, 1e-2, 1.0, 40.0][i])
    for a in ["xyxy", "xywh", "cxcywh"]:
        for z in ["xyxy", "xywh", "cxcywh"]:
            out[f"box.{i}.convert_{a}_{z}"] = B.box_convert(b1, a, z)
for i, (shape, size) in enumerate([((30, 4), (120, 90)), ((10, 7, 4), (64, 200)), ((0, 4), (5, 5))]):
    b = (torch.rand(shape, generator=g) * 400 - 100)
    put("clip", i, boxes=b, h=size[0], w=size[1], out=B.clip_boxes_to_image(b, size))

# BoxCoder: two images, C classes, deltas large enough to hit bbox_xform_clip.
for i, (weights, classes) in enumerate([((10.0, 10.0, 5.0, 5.0), 5), ((1.0, 1.0, 1.0, 1.0), 1),
                                        ((10.0, 10.0, 5.0, 5.0), 1)]):
    coder = BoxCoder(weights)
    p0, p1 = rand_boxes(17), rand_boxes(9)
    codes = torch.randn(26, 4 * classes, generator=g) * 3
    targets = rand_boxes(26)
    e0, e1 = coder.encode([targets[:17], targets[17:]], [p0, p1])
    put("coder", i, weights=torch.tensor(weights, dtype=torch.float64), p0=p0, p1=p1, codes=codes,
        decoded=coder.decode(codes, [p0, p1]), single=coder.decode_single(codes, torch.cat([p0, p1])),
        targets=targets, enc0=e0, enc1=e1)
for i, normalize in enumerate([True, False]):
    coder = BoxLinearCoder(normalize)
    ref, prop = rand_boxes(2 * 30).view(2, 30, 4), rand_boxes(2 * 30).view(2, 30, 4)
    codes = torch.rand(2, 30, 4, generator=g) * 2
    put("linear", i, normalize=float(normalize), ref=ref, prop=prop, codes=codes,
        enc=coder.encode(ref, prop), dec=coder.decode(codes, ref))

# nms and roi_align straight through the kernels, as well (test_ops.cpp also sweeps them against _C).
boxes = rand_boxes(500, quant=4.0)
scores = (torch.rand(500, generator=g) * 10).round() / 10
put("nms", 0, boxes=boxes, scores=scores, thr=0.5, keep=B.nms(boxes, scores, 0.5))
from torchvision.ops import roi_align  # noqa: E402
x = torch.randn(2, 3, 20, 30, generator=g)
rois = [rand_boxes(6, scale=160.0) - 20, rand_boxes(4, scale=160.0)]
for i, (scale, sr, aligned) in enumerate([(0.25, 2, False), (0.125, -1, True), (1.0, 0, False)]):
    put("roi_align", i, x=x, r0=rois[0], r1=rois[1], scale=scale, sr=float(sr), aligned=float(aligned),
        out=roi_align(x, rois, (7, 5), scale, sr, aligned))

# torchvision.utils drawing (PIL 9.4). Labels are LABELS[i % len(LABELS)], as in test_ops.cpp.
from torchvision.utils import _generate_color_palette, draw_bounding_boxes, draw_keypoints, draw_segmentation_masks  # noqa: E402,E501
LABELS = ["person", "traffic light", "N/A", "Zebra 12!", "a", "{~`|}", "dining table"]
for i, (channels, n, width, colors, fill, with_labels) in enumerate([
        (3, 6, 1, None, False, False), (3, 7, 3, "red", False, True), (3, 5, 2, None, True, True),
        (1, 4, 1, "#0f8", False, True), (3, 9, 5, "rgb(10, 20, 250)", True, False)]):
    image = torch.randint(0, 256, (channels, 70, 90), generator=g, dtype=torch.uint8)
    boxes = torch.rand(n, 2, generator=g) * 110 - 15
    boxes = torch.cat([boxes, boxes + torch.rand(n, 2, generator=g) * 50], 1)
    boxes[0, 2:] = boxes[0, :2]  # a degenerate box
    labels = [LABELS[j % len(LABELS)] for j in range(n)] if with_labels else None
    put("draw_boxes", i, image=image, boxes=boxes, width=width, fill=float(fill),
        out=draw_bounding_boxes(image, boxes, labels, colors, fill, width))
for i, (n, alpha, colors) in enumerate([(3, 0.8, None), (1, 0.3, "blue"), (4, 0.55, None)]):
    image = torch.randint(0, 256, (3, 40, 50), generator=g, dtype=torch.uint8)
    masks = torch.rand(n, 40, 50, generator=g) > 0.6
    put("draw_masks", i, image=image, masks=masks, alpha=alpha,
        out=draw_segmentation_masks(image, masks, alpha, colors))
# Keypoints: discs alone (radius 1, 2, 5), then discs and lines of width 3, 1, 2 and 6 (connectivity as in
# test_draw.cpp).
for i, (radius, width, links) in enumerate([(1, 3, False), (2, 3, False), (5, 3, False), (3, 3, True),
                                            (2, 1, True), (3, 2, True), (5, 6, True)]):
    image = torch.randint(0, 256, (3, 50, 60), generator=g, dtype=torch.uint8)
    kps = torch.rand(3, 5, 2, generator=g) * torch.tensor([70.0, 60.0]) - 5
    put("draw_keypoints", i, image=image, keypoints=kps, radius=radius, width=width, links=float(links),
        out=draw_keypoints(image, kps, [(0, 1), (1, 2), (3, 4), (4, 0)] if links else None, (200, 30, 90),
                           radius, width))

# A detection drawn as mz::draw_detection (mz predict --draw) composes torchvision.utils' functions.
from torchvision.models._meta import _COCO_CATEGORIES  # noqa: E402
SKELETON = [(0, 1), (0, 2), (1, 3), (2, 4), (0, 5), (0, 6), (5, 7), (6, 8), (7, 9), (8, 10), (5, 11), (6, 12),
            (11, 13), (12, 14), (13, 15), (14, 16)]
image = torch.randint(0, 256, (3, 80, 100), generator=g, dtype=torch.uint8)
n = 4
xy = torch.rand(n, 2, generator=g) * 70
boxes = torch.cat([xy, xy + 5 + torch.rand(n, 2, generator=g) * 30], 1)
labels = torch.tensor([1, 3, 90, 1])
scores = torch.rand(n, generator=g)
masks = torch.rand(n, 1, 80, 100, generator=g)
keypoints = torch.cat([torch.rand(n, 17, 2, generator=g) * torch.tensor([100.0, 80.0]), torch.ones(n, 17, 1)], 2)
palette = _generate_color_palette(len(_COCO_CATEGORIES) + 1)
colors = [tuple(int(c) for c in palette[int(k)]) for k in labels]
picture = draw_segmentation_masks(image, masks[:, 0] > 0.5, 0.5, colors)
picture = draw_bounding_boxes(picture, boxes, [f"{_COCO_CATEGORIES[int(k)]} {float(v):.2f}" for k, v in zip(labels, scores)],
                              colors, False, 2)
picture = draw_keypoints(picture, keypoints, SKELETON, "blue", 3, 2)
put("draw_detection", 0, image=image, boxes=boxes, labels=labels, scores=scores, masks=masks, keypoints=keypoints,
    out=picture)

st.save(sys.argv[1], out)
print(f"{len(out)} tensors, {differ} batched_nms cases where the two paths differ")
