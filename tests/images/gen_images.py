"""Writes the test images for tests/images: varied sizes, aspect ratios, modes and encodings, plus
corrupt files. Deterministic (fixed seeds). Run with Debian's /usr/bin/python3 (PIL, numpy).

    /usr/bin/python3 tests/images/gen_images.py OUT_DIR

OUT_DIR/good/*.{png,jpg}  decodable images (the name says what each one exercises)
OUT_DIR/bad/*             files that must give an mz::ImageError naming the file
OUT_DIR/reference.safetensors  torchvision's ResNet50_Weights.IMAGENET1K_V2 preset on sample.png

    /usr/bin/python3 tests/images/gen_images.py --sample tests/images/sample.png
writes the demo's sample image (a generated scene, no third-party content).
"""
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image


def scene(w, h, seed, noise=25):
    """Smooth gradients, hard edges and noise: enough structure that resampling errors show."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127 + 120 * np.sin(x / max(w, 1) * 7 + seed)
    g = 127 + 120 * np.cos(y / max(h, 1) * 5 + x / max(w, 1) * 3)
    b = ((x // 9 + y // 7) % 2) * 200 + 20
    img = np.stack([r, g, b], -1) + rng.normal(0, noise, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png_raw(path, w, h, depth, color, rows, interlace=0):
    """A PNG written by hand (16-bit RGB, which PIL cannot write). rows: bytes per row, filter 0."""
    raw = b"".join(b"\x00" + r for r in rows)
    data = b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace))
    data += png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b"")
    open(path, "wb").write(data)


def main(out):
    good, bad = os.path.join(out, "good"), os.path.join(out, "bad")
    os.makedirs(good, exist_ok=True)
    os.makedirs(bad, exist_ok=True)
    # Sizes: landscape, portrait, odd, tiny (upscaled), extreme aspect ratios, exactly the crop.
    sizes = [(300, 200), (200, 300), (257, 513), (640, 480), (100, 100), (47, 700), (224, 224),
             (1000, 333), (31, 40), (801, 599), (256, 256), (232, 500)]
    for i, (w, h) in enumerate(sizes):
        Image.fromarray(scene(w, h, i)).save(os.path.join(good, f"rgb_{w}x{h}.png"))
    for i, (w, h) in enumerate([(640, 480), (333, 500), (1024, 768), (97, 211)]):
        Image.fromarray(scene(w, h, 100 + i)).save(os.path.join(good, f"rgb_{w}x{h}_q90.jpg"), quality=90)
    a = scene(400, 300, 7)
    Image.fromarray(a).save(os.path.join(good, "rgb_444_q95.jpg"), quality=95, subsampling=0)
    Image.fromarray(a).save(os.path.join(good, "rgb_progressive.jpg"), quality=85, progressive=True)
    Image.fromarray(a).convert("L").save(os.path.join(good, "gray.jpg"), quality=90)
    Image.fromarray(a).convert("CMYK").save(os.path.join(good, "cmyk_adobe.jpg"), quality=90)  # PIL writes Adobe
    b = scene(350, 260, 8)
    Image.fromarray(b).convert("L").save(os.path.join(good, "gray.png"))
    Image.fromarray(b).convert("LA").save(os.path.join(good, "gray_alpha.png"))
    Image.fromarray(b).convert("1").save(os.path.join(good, "bilevel.png"))
    rgba = Image.fromarray(b).convert("RGBA")
    alpha = np.tile(np.linspace(0, 255, 350, dtype=np.uint8), (260, 1))
    rgba.putalpha(Image.fromarray(alpha))
    rgba.save(os.path.join(good, "rgba.png"))
    pal = Image.fromarray(b).convert("P", palette=Image.ADAPTIVE, colors=64)
    pal.save(os.path.join(good, "palette.png"))
    pal.save(os.path.join(good, "palette_trns.png"), transparency=3)
    Image.fromarray(b).quantize(colors=4).save(os.path.join(good, "palette_2bit.png"), bits=2)
    g16 = (np.arange(260 * 350, dtype=np.uint32).reshape(260, 350) % 400).astype(np.uint16)  # crosses 255
    Image.fromarray(g16.astype(np.int32), mode="I").save(os.path.join(good, "gray16.png"))
    c16 = (b.astype(np.uint16) * 257 + np.random.default_rng(9).integers(0, 256, b.shape, dtype=np.uint16))
    write_png_raw(os.path.join(good, "rgb16.png"), 350, 260, 16, 2, [r.astype(">u2").tobytes() for r in c16])
    # The shipped sample image's recipe, so the C++ reference test has it at hand.
    Image.fromarray(scene(320, 240, 42)).save(os.path.join(good, "sample_like.png"))

    # Bad files.
    jpg = open(os.path.join(good, "rgb_640x480_q90.jpg"), "rb").read()
    png = open(os.path.join(good, "rgb_300x200.png"), "rb").read()
    open(os.path.join(bad, "empty.jpg"), "wb").close()
    open(os.path.join(bad, "text.png"), "w").write("this is not an image\n")
    open(os.path.join(bad, "random.jpg"), "wb").write(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    open(os.path.join(bad, "truncated.jpg"), "wb").write(jpg[: len(jpg) // 2])
    open(os.path.join(bad, "header_only.jpg"), "wb").write(jpg[:200])
    open(os.path.join(bad, "truncated.png"), "wb").write(png[: len(png) // 2])
    broken = bytearray(png)
    broken[20] ^= 0xFF  # inside IHDR: its CRC no longer matches
    open(os.path.join(bad, "bad_crc.png"), "wb").write(bytes(broken))
    broken = bytearray(jpg)
    sof = jpg.find(b"\xff\xc0")
    broken[sof + 5:sof + 9] = b"\x00\x00\x00\x00"  # zero height and width in the frame header
    open(os.path.join(bad, "zero_size.jpg"), "wb").write(bytes(broken))
    # A 1x1 PNG whose next chunk claims 1 GiB of text and ends there (libpng's crashers_huge_tEXt_chunk.png).
    chunk = png[:33] + struct.pack(">I", 0x3FFFFFFF) + b"tEXt" + b"k\0v"
    open(os.path.join(bad, "huge_text_chunk.png"), "wb").write(chunk)
    Image.fromarray(b).save(os.path.join(bad, "image.gif"))
    Image.fromarray(b).save(os.path.join(bad, "image.bmp"))


def reference(out):
    import torch
    import torchvision
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
    import st
    sample = os.path.join(os.path.dirname(__file__), "sample.png")
    preset = torchvision.models.ResNet50_Weights.IMAGENET1K_V2.transforms()
    st.save(os.path.join(out, "reference.safetensors"), {"input": preset(Image.open(sample).convert("RGB"))})


if __name__ == "__main__":
    if sys.argv[1] == "--sample":
        Image.fromarray(scene(320, 240, 42, noise=0)).save(sys.argv[2], optimize=True)
    else:
        main(sys.argv[1])
        reference(sys.argv[1])
