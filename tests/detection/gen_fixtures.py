#!/usr/bin/python3
"""Reference tensors of torchvision 0.14.1's shared detection parts, for tests/detection/test_parts.cpp.

Writes DIR/<case>.safetensors, each holding the inputs, the state dict ("sd.<key>") where the part has
one, and the outputs of one part: GeneralizedRCNNTransform (resize with the float32 scale, batching,
postprocess with mask pasting and keypoints), FPN backbones over ResNet-50 and MobileNetV3-Large
(BatchNorm, FrozenBatchNorm with eps 0, LastLevelP6P7 from P5 and from C5, no FPN), AnchorGenerator.
Weights are random and norm statistics randomised, so a lost buffer shows. Usage: gen_fixtures.py DIR
"""
import os
import sys

import torch
from torch import nn
from torchvision.models import resnet50
from torchvision.models.detection import backbone_utils as bu
from torchvision.models.detection._utils import overwrite_eps
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops import misc as misc_nn_ops
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
import st  # noqa: E402


def randomize(model, gen):
    """Random weights, and norm statistics away from (0, 1), so that a lost buffer shows."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.BatchNorm2d, misc_nn_ops.FrozenBatchNorm2d)):
                m.running_mean.normal_(0, 0.1, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0, 0.1, generator=gen)
            elif isinstance(m, nn.GroupNorm):
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0, 0.1, generator=gen)
            elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                fan_in = m.weight[0].numel() if not isinstance(m, nn.ConvTranspose2d) else m.weight[:, 0].numel()
                m.weight.normal_(0, fan_in ** -0.5, generator=gen)
                if m.bias is not None:
                    m.bias.normal_(0, 0.1, generator=gen)


def transform_cases(out, gen):
    cases = {
        # name: (min_size, max_size, size_divisible, fixed_size, image shapes)
        "transform_800": ((800,), 1333, 32, None, [(3, 224, 224), (3, 300, 400)]),
        "transform_320": ((320,), 640, 32, None, [(3, 37, 53), (3, 60, 41), (3, 91, 90)]),
        "transform_kp": ((640, 672, 704, 736, 768, 800), 1333, 32, None, [(3, 123, 77)]),
        "transform_fixed": ((300,), 300, 1, (300, 300), [(3, 50, 70), (3, 64, 64)]),
    }
    for name, (mins, maxs, div, fixed, shapes) in cases.items():
        t = GeneralizedRCNNTransform(mins, maxs, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], size_divisible=div,
                                     fixed_size=fixed).eval()
        imgs = [torch.rand(s, generator=gen) for s in shapes]
        il, _ = t(imgs)
        d = {f"in.{i}": im for i, im in enumerate(imgs)}
        d["out"] = il.tensors
        d["sizes"] = torch.tensor([list(s) for s in il.image_sizes], dtype=torch.int64)
        d["min_size"] = torch.tensor(list(mins))
        d["max_size"] = torch.tensor(maxs)
        d["size_divisible"] = torch.tensor(div)
        d["fixed_size"] = torch.tensor(list(fixed) if fixed else [])
        # postprocess: boxes, masks and keypoints from the resized image back to the original
        n = 5
        h, w = il.image_sizes[0]
        boxes = torch.rand(n, 4, generator=gen) * torch.tensor([w / 2, h / 2, w / 2, h / 2])
        boxes[:, 2:] += boxes[:, :2] + 1
        boxes[0] = torch.tensor([-3.0, -2.0, w + 4.0, h + 5.0])  # beyond the image
        masks = torch.rand(n, 1, 28, 28, generator=gen)
        kps = torch.rand(n, 17, 3, generator=gen) * torch.tensor([w, h, 1.0])
        res = t.postprocess([{"boxes": boxes, "labels": torch.arange(n), "scores": torch.rand(n, generator=gen),
                              "masks": masks, "keypoints": kps}], [il.image_sizes[0]], [tuple(shapes[0][1:])])[0]
        d.update({"post.boxes": boxes, "post.masks": masks, "post.keypoints": kps, "post.out.boxes": res["boxes"],
                  "post.out.masks": res["masks"], "post.out.keypoints": res["keypoints"]})
        st.save(os.path.join(out, name + ".safetensors"), d)


def backbone_cases(out, gen):
    x = torch.rand(2, 3, 96, 128, generator=gen)
    cases = {
        "fpn_resnet50_bn": lambda: bu._resnet_fpn_extractor(resnet50(norm_layer=nn.BatchNorm2d), 5),
        "fpn_resnet50_frozen_eps0": lambda: bu._resnet_fpn_extractor(
            resnet50(norm_layer=misc_nn_ops.FrozenBatchNorm2d), 3),
        "fpn_resnet50_v2": lambda: bu._resnet_fpn_extractor(resnet50(), 5, norm_layer=nn.BatchNorm2d),
        "fpn_resnet50_p6p7_frozen": lambda: bu._resnet_fpn_extractor(
            resnet50(norm_layer=misc_nn_ops.FrozenBatchNorm2d), 3, returned_layers=[2, 3, 4],
            extra_blocks=LastLevelP6P7(256, 256)),
        "fpn_resnet50_p6p7_c5": lambda: bu._resnet_fpn_extractor(
            resnet50(), 5, returned_layers=[2, 3, 4], extra_blocks=LastLevelP6P7(2048, 256)),
        "fpn_mobilenet_frozen": lambda: bu.mobilenet_backbone(
            backbone_name="mobilenet_v3_large", weights=None, fpn=True, trainable_layers=3),
        "mobilenet_nofpn_bn": lambda: bu.mobilenet_backbone(
            backbone_name="mobilenet_v3_large", weights=None, fpn=False, norm_layer=nn.BatchNorm2d,
            trainable_layers=6),
    }
    for name, make in cases.items():
        torch.manual_seed(0)
        m = make().eval()
        randomize(m, gen)
        if name.endswith("_eps0"):
            overwrite_eps(m, 0.0)
        with torch.no_grad():
            y = m(x)
        if isinstance(y, torch.Tensor):
            y = {"0": y}
        d = {"input": x}
        d.update({"sd." + k: v for k, v in m.state_dict().items()})
        d.update({"out." + k: v for k, v in y.items()})
        d["trainable"] = torch.tensor(sum(1 for p in m.parameters() if p.requires_grad))
        st.save(os.path.join(out, name + ".safetensors"), d, {"outputs": ",".join(y.keys())})


def anchor_cases(out, gen):
    cases = {
        "anchors_rcnn": (((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5, [(24, 32), (12, 16), (6, 8), (3, 4), (2, 2)]),
        "anchors_retina": (tuple((x, int(x * 2 ** (1.0 / 3)), int(x * 2 ** (2.0 / 3))) for x in [32, 64, 128]),
                           ((0.5, 1.0, 2.0),) * 3, [(13, 17), (7, 9), (4, 5)]),
        "anchors_mobilenet": (((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3, [(7, 10), (7, 10), (4, 5)]),
    }
    for name, (sizes, ratios, grids) in cases.items():
        ag = AnchorGenerator(sizes, ratios)
        images = ImageList(torch.zeros(2, 3, 96, 128), [(90, 128), (96, 100)])
        feats = [torch.zeros(2, 8, h, w) for h, w in grids]
        anchors = ag(images, feats)
        d = {"anchors.0": anchors[0], "anchors.1": anchors[1]}
        for i, (s, r) in enumerate(zip(sizes, ratios)):
            d[f"sizes.{i}"] = torch.tensor(s, dtype=torch.float64)
            d[f"ratios.{i}"] = torch.tensor(r, dtype=torch.float64)
        for i, (h, w) in enumerate(grids):
            d[f"grid.{i}"] = torch.tensor([h, w])
        st.save(os.path.join(out, name + ".safetensors"), d)


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    gen = torch.Generator().manual_seed(1234)
    transform_cases(out, gen)
    backbone_cases(out, gen)
    anchor_cases(out, gen)


if __name__ == "__main__":
    main()
