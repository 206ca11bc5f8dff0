#!/usr/bin/python3
"""Every image of the shared real-world corpus (../shared/corpus/images) against PIL + torchvision 0.14.1.

    test_corpus.py --tool build/tests/images/mz_images_tool [--corpus DIR] [--work DIR]

- A file PIL reads (Image.open + convert("RGB")) is well formed: mz decodes it to PIL's pixels exactly, and
  its ImageNet preset (ResNet50_Weights.IMAGENET1K_V1: resize 256, crop 224) is within 2/255 of
  torchvision's on the PIL image, before normalisation.
- A file PIL refuses is corrupt: mz refuses it with mz::ImageError.
- The files PIL reads and mz refuses on purpose are listed in REFUSED, each with the reason (the README's
  image policy); nothing else may be refused, and each listed file must be refused.

Exits 77 (ctest: skipped) with a message when the corpus folder does not exist, as in a user's clone.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy
import torch
from PIL import Image
from torchvision.transforms._presets import ImageClassification

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
import corpus  # noqa: E402
import st  # noqa: E402

DEFAULT_CORPUS = corpus.folder("images")
WEIGHT = "ResNet50_Weights.IMAGENET1K_V1"
PRESET = ImageClassification(crop_size=224, resize_size=256)
STD = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
CHUNK = 64  # images per tool process (bounds the output file's size)

# Files PIL reads that mz refuses on purpose, by the reason (README, "Images"). A pattern matches a
# file's path relative to the corpus by suffix or, ending in "*", by prefix.
REFUSED = {
    "not JPEG or PNG: modelzoo decodes JPEG and PNG only": [".bmp", ".gif", ".ppm", ".tif", ".webp"],
    "JPEG data ends before the image does (libjpeg's premature end): PIL pads with grey, mz refuses truncation": [
        "jpeg-decoder/afl_000182_src-000000-op-flip1-pos-503-cov.jpg",
        "jpeg-decoder/afl_000223_src-000000-op-flip2-pos-503-cov.jpg",
        "jpeg-decoder/afl_000227_src-000000-op-flip2-pos-503-cov.jpg",
        "jpeg-decoder/afl_000393_src-000000-op-int32-pos-500-val-32768-cov.jpg",
        "jpeg-decoder/afl_000831_sync-jpeg9-src-000903.jpg",
        "jpeg-decoder/afl_000903_src-000177-op-havoc-rep-2.jpg",
        "jpeg-decoder/afl_001427_src-000319-op-havoc-rep-1.jpg",
        "jpeg-decoder/afl_001655_src-001333-op-flip2-pos-455.jpg",
        "jpeg-decoder/crash_imagetestsuite_5482a54657765056f1a94116a8dbffe7.jpg",
        "jpeg-decoder/crash_imagetestsuite_8a9cc8eeed66aeb423a91c44111d9450.jpg",
    ],
    "a PNG image-data chunk with a bad CRC: libpng refuses it, PIL does not check": [
        "libpng-testpngs/crashers_badcrc.png", "pngsuite/xcsn0g01.png"],
    "a PNG image-data chunk longer than the file (truncated)": ["libpng-testpngs/crashers_huge_IDAT.png"],
}

# Files PIL refuses that mz still reads: known disagreements, open in issue #18. Each must still be read (so that a
# fix shows up here), and nothing else may be.
ACCEPTED = {
    "empty ancillary chunks; PIL cannot identify the file": ["libpng-testpngs/crashers_empty_ancillary_chunks.png"],
    "a compressed text chunk PIL limits (decompression bomb); mz does not read text chunks' text":
        ["pillow/png_decompression_dos.png"],
    "an IHDR compression method other than 0, which PIL refuses": ["pillow/unknown_compression_method.png"],
}


def reason_in(table, rel):
    for reason, patterns in table.items():
        for p in patterns:
            if (p.endswith("*") and rel.startswith(p[:-1])) or (not p.endswith("*") and rel.endswith(p)):
                return reason
    return None


def pil_rgb(path):
    try:
        with Image.open(path) as im:
            im.load()
            return im.convert("RGB")
    except Exception as e:  # noqa: BLE001 (PIL raises many types for corrupt files)
        return e


def run_tool(tool, paths, work):
    out = os.path.join(work, "chunk.safetensors")
    p = subprocess.run([tool, "corpus", WEIGHT, out, *paths], capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"mz_images_tool corpus failed (exit {p.returncode}): {p.stderr.strip()}")
    errors = {}
    for e in map(json.loads, p.stdout.splitlines()):
        errors.setdefault(e["index"], {})[e["stage"]] = e
    return st.load(out), errors


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tool", required=True)
    ap.add_argument("--corpus", default=DEFAULT_CORPUS)
    ap.add_argument("--work", default=None)
    a = ap.parse_args()
    if corpus.missing(a.corpus, "images_corpus"):
        return corpus.SKIP
    work = a.work or tempfile.mkdtemp(prefix="mz-corpus-")
    os.makedirs(work, exist_ok=True)
    files = sorted(os.path.relpath(os.path.join(d, f), a.corpus) for d, _, fs in os.walk(a.corpus) for f in fs
                   if not f.endswith((".txt", ".tsv")))
    problems, counts = [], {"well-formed": 0, "corrupt": 0, "refused by policy": 0, "known disagreements": 0}
    for start in range(0, len(files), CHUNK):
        chunk = files[start:start + CHUNK]
        tensors, errors = run_tool(a.tool, [os.path.join(a.corpus, f) for f in chunk], work)
        for i, rel in enumerate(chunk):
            ref = pil_rgb(os.path.join(a.corpus, rel))
            errs = errors.get(i, {})
            reason = reason_in(REFUSED, rel)
            accepted = reason_in(ACCEPTED, rel)
            if accepted:
                counts["known disagreements"] += 1
                if errs or not isinstance(ref, Exception):
                    problems.append(f"{rel}: listed in ACCEPTED ({accepted}) but no longer behaves so: update the table")
                continue
            if isinstance(ref, Exception) or reason:
                counts["corrupt" if isinstance(ref, Exception) else "refused by policy"] += 1
                why = f"PIL refuses it ({type(ref).__name__}: {ref})" if reason is None else reason
                for stage in ("decode", "preset"):  # the preset decodes only the rows it needs: refuse there too
                    if stage not in errs:
                        problems.append(f"{rel}: mz's {stage} accepts it, but {why}")
                    elif errs[stage]["type"] != "ImageError":
                        problems.append(f"{rel}: {stage} refuses it with an untyped error: {errs[stage]['error']}")
                continue
            counts["well-formed"] += 1
            if errs:
                problems.append(f"{rel}: PIL reads it, mz refuses it: {next(iter(errs.values()))['error']}")
                continue
            want = torch.from_numpy(numpy.asarray(ref).copy()).permute(2, 0, 1)
            got = tensors[f"{i}.decode"]
            if got.shape != want.shape or not torch.equal(got, want):
                diff = (got.int() - want.int()).abs().max().item() if got.shape == want.shape else "shape"
                problems.append(f"{rel}: decode differs from PIL's (max |diff| {diff}, {tuple(got.shape)})")
                continue
            dev = ((tensors[f"{i}.preset"] - PRESET(ref)) * STD).abs().max().item()
            if dev > 2 / 255:
                problems.append(f"{rel}: ImageNet preset off by {dev * 255:.2f}/255")
    return corpus.summary("images_corpus", len(files), counts, problems)


if __name__ == "__main__":
    sys.exit(main())
