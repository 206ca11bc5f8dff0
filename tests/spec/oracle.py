#!/usr/bin/python3
"""The state dict (names and shapes, in order) of torchvision's composition that
examples/specs/faster_rcnn_mobilenet_v2.json describes: FasterRCNN(mobilenet_v2().features, ...), as in
torchvision's docs. Usage: oracle.py OUT.json (run by Debian's /usr/bin/python3: torchvision 0.14.1)."""
import json
import sys

import torchvision
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.rpn import AnchorGenerator
from torchvision.ops import MultiScaleRoIAlign

backbone = torchvision.models.mobilenet_v2().features
backbone.out_channels = 1280
model = FasterRCNN(backbone, num_classes=2,
                   rpn_anchor_generator=AnchorGenerator(sizes=((32, 64, 128, 256, 512),), aspect_ratios=((0.5, 1.0, 2.0),)),
                   box_roi_pool=MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=2))
state = [[k, list(v.shape)] for k, v in model.state_dict().items()]
with open(sys.argv[1], "w") as f:
    json.dump({"faster_rcnn_mobilenet_v2": state}, f)
print(f"oracle: {len(state)} tensors")
