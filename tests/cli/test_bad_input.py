#!/usr/bin/python3
"""Wrong arguments for every mz subcommand, as one table: each row must end with an exit code in 1..127, exactly
one stderr line ("mz: ...", containing the row's words), and nothing written anywhere under the work directory
(no output file, no partial file, no cache entry).

Usage: test_bad_input.py --mz build/mz --work DIR
"""
import argparse
import os
import re
import shutil
import subprocess
import sys

import torch
import torchvision.models as tvm
from PIL import Image

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "oracle"))
import st  # noqa: E402


SANITIZER_ALLOCATION_WARNING = re.compile(r"==\d+==WARNING: AddressSanitizer failed to allocate 0x[0-9a-f]+ bytes$")


def snapshot(root):
    """Every path under root with its size and modification time."""
    seen = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            s = os.lstat(p)
            seen[p] = (s.st_size, s.st_mtime_ns)
    return seen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mz", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    work = os.path.abspath(a.work)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    f = lambda name: os.path.join(work, name)  # noqa: E731

    # Well-formed inputs, so that each row is wrong in one way only.
    torch.manual_seed(0)
    ckpt = f("r18_10.pth")
    torch.save(tvm.resnet18(num_classes=10).state_dict(), ckpt)
    st.save(f("in.safetensors"), {"input": torch.randn(1, 3, 32, 32)})
    st.save(f("int.safetensors"), {"input": torch.zeros(1, 3, 32, 32, dtype=torch.int64)})
    st.save(f("rank2.safetensors"), {"input": torch.randn(3, 32)})
    st.save(f("nan.safetensors"), {"input": torch.full((1, 3, 32, 32), float("nan"))})
    Image.new("RGB", (40, 30), (200, 10, 10)).save(f("red.png"))
    with open(f("not_an_image.jpg"), "w") as out:
        out.write("plain text, not a JPEG\n")
    with open(f("garbage.bin"), "wb") as out:
        out.write(os.urandom(4096))
    with open(f("bad.json"), "w") as out:
        out.write('{"_target_": "resnet18", ')
    with open(f("spec.json"), "w") as out:
        out.write('{"_target_": "resnet18", "num_classes": 10}')
    with open(f("text.txt"), "w") as out:
        out.write("a line\n")
    os.makedirs(f("a_dir"))
    os.makedirs(f("out"))
    missing = f("missing.pth")
    blocked = f("text.txt") + "/out.safetensors"  # its parent is a regular file: unwritable, even for root
    R18 = ["resnet18", "--checkpoint", ckpt, "--options", '{"num_classes": 10}']
    FWD = ["forward", *R18, "--input", f("in.safetensors")]
    OUT = ["--output", f("out/o.safetensors")]

    # (what, argv, words the one stderr line must contain)
    rows = [
        # forward
        ("forward: missing checkpoint", ["forward", "resnet18", "--checkpoint", missing, "--input", f("in.safetensors"),
                                         *OUT], "missing.pth"),
        ("forward: checkpoint is a directory", ["forward", "resnet18", "--checkpoint", f("a_dir"), "--input",
                                                f("in.safetensors"), *OUT], "a_dir"),
        ("forward: checkpoint is not one", ["forward", "resnet18", "--checkpoint", f("garbage.bin"), "--input",
                                            f("in.safetensors"), *OUT], "garbage.bin"),
        ("forward: missing input", ["forward", *R18, "--input", missing, *OUT], "missing.pth"),
        ("forward: input is a directory", ["forward", *R18, "--input", f("a_dir"), *OUT], "a_dir"),
        ("forward: input is not safetensors", ["forward", *R18, "--input", f("text.txt"), *OUT], "text.txt"),
        ("forward: int64 input", ["forward", *R18, "--input", f("int.safetensors"), *OUT], "floating point"),
        ("forward: rank-2 input", ["forward", *R18, "--input", f("rank2.safetensors"), *OUT], "input"),
        ("forward: unwritable output", [*FWD, "--output", blocked], "text.txt"),
        ("forward: output is a directory", [*FWD, "--output", f("a_dir")], "a_dir"),
        ("forward: fractional class count", ["forward", "resnet18", "--checkpoint", ckpt, "--input",
                                             f("in.safetensors"), *OUT, "--options", '{"num_classes": 1000.5}'],
         "num_classes"),
        ("forward: class count as a string", ["forward", "resnet18", "--checkpoint", ckpt, "--input",
                                              f("in.safetensors"), *OUT, "--options", '{"num_classes": "ten"}'],
         "num_classes"),
        ("forward: negative class count", ["forward", "resnet18", "--checkpoint", ckpt, "--input",
                                           f("in.safetensors"), *OUT, "--options", '{"num_classes": -5}'],
         "num_classes"),
        ("forward: absurd class count", ["forward", "resnet18", "--checkpoint", ckpt, "--input", f("in.safetensors"),
                                         *OUT, "--options", '{"num_classes": 100000000000}'], "allocate"),
        ("forward: options not an object", [*FWD, *OUT, "--options", "[1, 2]"], "--options"),
        ("forward: zero threads", [*FWD, *OUT, "--threads", "0"], "--threads"),
        ("forward: absurd threads", [*FWD, *OUT, "--threads", "100000"], "--threads"),
        ("forward: missing adapter", [*FWD, *OUT, "--adapter", f("a_dir")], "a_dir"),
        ("forward: unknown model", ["forward", "resnet19", "--input", f("in.safetensors"), *OUT], "resnet19"),
        ("forward: --like without --checkpoint", ["forward", "resnet18", "--like", "ResNet18_Weights.IMAGENET1K_V1",
                                                  "--input", f("in.safetensors"), *OUT], "--like"),
        # bench
        ("bench: zero batch", ["bench", *R18, "--batch", "0"], "--batch"),
        ("bench: negative batch", ["bench", *R18, "--batch", "-2"], "--batch"),
        ("bench: zero size", ["bench", *R18, "--size", "0"], "--size"),
        ("bench: absurd size", ["bench", *R18, "--size", "1000000"], "--size"),
        ("bench: zero repeats", ["bench", *R18, "--repeat", "0"], "--repeat"),
        ("bench: missing checkpoint", ["bench", "resnet18", "--checkpoint", missing], "missing.pth"),
        ("bench: checkpoint is a directory", ["bench", "resnet18", "--checkpoint", f("a_dir")], "a_dir"),
        ("bench: missing input", ["bench", *R18, "--input", missing], "missing.pth"),
        ("bench: wrong option type", ["bench", "resnet18", "--options", '{"zero_init_residual": "yes"}'],
         "zero_init_residual"),
        # predict
        ("predict: missing image", ["predict", *R18, missing], "missing.pth"),
        ("predict: image is a directory", ["predict", *R18, f("a_dir")], "a_dir"),
        ("predict: not an image", ["predict", *R18, f("not_an_image.jpg")], "not_an_image.jpg"),
        ("predict: zero topk", ["predict", *R18, f("red.png"), "--topk", "0"], "--topk"),
        ("predict: negative topk", ["predict", *R18, f("red.png"), "--topk", "-3"], "--topk"),
        ("predict: zero batch", ["predict", *R18, f("red.png"), "--batch", "0"], "--batch"),
        ("predict: score threshold above 1", ["predict", "fasterrcnn_mobilenet_v3_large_320_fpn", "--checkpoint",
                                              missing, f("red.png"), "--score-thresh", "1.5"], "--score-thresh"),
        ("predict: draw into a file", ["predict", "fcn_resnet50", "--checkpoint", missing, f("red.png"), "--draw",
                                       f("text.txt")], "text.txt"),
        ("predict: wrong option type", ["predict", "resnet18", "--checkpoint", ckpt, f("red.png"), "--options",
                                        '{"num_classes": [10]}'], "num_classes"),
        # preprocess
        ("preprocess: missing image", ["preprocess", "ResNet18_Weights.IMAGENET1K_V1", missing, *OUT], "missing.pth"),
        ("preprocess: image is a directory", ["preprocess", "ResNet18_Weights.IMAGENET1K_V1", f("a_dir"), *OUT],
         "a_dir"),
        ("preprocess: not an image", ["preprocess", "ResNet18_Weights.IMAGENET1K_V1", f("not_an_image.jpg"), *OUT],
         "not_an_image.jpg"),
        ("preprocess: unwritable output", ["preprocess", "ResNet18_Weights.IMAGENET1K_V1", f("red.png"), "--output",
                                           blocked], "text.txt"),
        ("preprocess: output is a directory", ["preprocess", "ResNet18_Weights.IMAGENET1K_V1", f("red.png"),
                                               "--output", f("a_dir")], "a_dir"),
        ("preprocess: unknown weight", ["preprocess", "ResNet18_Weights.V7", f("red.png"), *OUT], "ResNet18_Weights"),
        # convert
        ("convert: missing input", ["convert", missing, f("out/c.safetensors")], "missing.pth"),
        ("convert: input is a directory", ["convert", f("a_dir"), f("out/c.safetensors")], "a_dir"),
        ("convert: input is not a checkpoint", ["convert", f("garbage.bin"), f("out/c.safetensors")], "garbage.bin"),
        ("convert: unwritable output", ["convert", ckpt, blocked], "text.txt"),
        ("convert: output is a directory", ["convert", ckpt, f("a_dir")], "a_dir"),
        # info, list
        ("info: unknown name", ["info", "resnet19"], "resnet19"),
        ("info: a directory that is no saved model", ["info", f("a_dir")], "a_dir"),
        ("list: unknown task", ["list", "--task", "astrology"], "astrology"),
        # hub commands (offline, empty cache)
        ("download: unknown weight", ["download", "ResNet18_Weights.V7"], "ResNet18_Weights"),
        ("download: offline and not cached", ["download", "ResNet18_Weights.IMAGENET1K_V1"], "offline"),
        ("verify: unknown weight", ["verify", "ResNet18_Weights.V7"], "ResNet18_Weights"),
        ("cache rm: unknown target", ["cache", "rm", "ResNet18_Weights.V7"], "ResNet18_Weights"),
        ("lock: unknown weight", ["lock", "ResNet18_Weights.V7", "--output", f("out/mz.lock")], "ResNet18_Weights"),
        ("lock: unwritable output", ["lock", "resnet18", "--output", blocked], "text.txt"),
        ("lock: output is a directory", ["lock", "resnet18", "--output", f("a_dir")], "a_dir"),
        ("lock --check: missing lock", ["lock", "--check", missing], "missing.pth"),
        ("lock --check: a directory", ["lock", "--check", f("a_dir")], "a_dir"),
        ("lock --check: not JSON", ["lock", "--check", f("bad.json")], "bad.json"),
        ("mirror: unknown weight", ["mirror", "ResNet18_Weights.V7", "--to", f("out/mirror")], "ResNet18_Weights"),
        ("mirror: target is a file", ["mirror", "ResNet18_Weights.IMAGENET1K_V1", "--to", f("text.txt")], "text.txt"),
        # build
        ("build: missing spec", ["build", f("missing.json")], "missing.json"),
        ("build: spec is a directory", ["build", f("a_dir")], "a_dir"),
        ("build: spec is not JSON", ["build", f("bad.json")], "bad.json"),
        ("build: override without '='", ["build", f("spec.json"), "num_classes"], "num_classes"),
        ("build: override of the wrong type", ["build", f("spec.json"), "num_classes=ten"], "num_classes"),
        ("build: unknown kwarg", ["build", f("spec.json"), "num_clases=3"], "num_clases"),
        ("build: unwritable output", ["build", f("spec.json"), "--output", blocked], "text.txt"),
        ("build: output is a file", ["build", f("spec.json"), "--output", f("text.txt")], "text.txt"),
        # text
        ("tokenize: missing SentencePiece model", ["tokenize", "--sentencepiece", missing, "hello"], "missing.pth"),
        ("tokenize: SentencePiece model is a directory", ["tokenize", "--sentencepiece", f("a_dir"), "hello"],
         "a_dir"),
        ("tokenize: SentencePiece model is garbage", ["tokenize", "--sentencepiece", f("garbage.bin"), "hello"],
         "garbage.bin"),
        ("tokenize: missing GPT-2 files", ["tokenize", "--gpt2", missing, missing, "hello"], "missing.pth"),
        ("tokenize: GPT-2 encoder is not JSON", ["tokenize", "--gpt2", f("bad.json"), f("text.txt"), "hello"],
         "bad.json"),
        ("tokenize: missing --file", ["tokenize", "--gpt2", f("bad.json"), f("text.txt"), "--file", missing],
         "bad.json"),
        ("tokenize: not a text weight", ["tokenize", "ResNet18_Weights.IMAGENET1K_V1", "hello"], "not a text weight"),
        ("embed: not a text weight", ["embed", "ResNet18_Weights.IMAGENET1K_V1", "hello"], "not a text weight"),
        ("embed: unknown weight", ["embed", "RoBERTa_Base_Weights.V7", "hello"], "RoBERTa_Base_Weights"),
        ("embed: unwritable output", ["embed", "RoBERTa_Base_Weights.ENCODER", "hello", "--output", blocked],
         "text.txt"),
        ("generate: not a T5 weight", ["generate", "RoBERTa_Base_Weights.ENCODER", "hello"], "RoBERTa"),
        ("generate: zero max length", ["generate", "T5_Small_Weights.GENERATION", "hello", "--max-length", "0"],
         "--max-length"),
        # audio
        ("transcribe: missing audio", ["transcribe", "Wav2Vec2Base_Weights.WAV2VEC2_ASR_BASE_960H", missing],
         "missing.pth"),
        ("transcribe: audio is a directory", ["transcribe", "Wav2Vec2Base_Weights.WAV2VEC2_ASR_BASE_960H", f("a_dir")],
         "a_dir"),
        ("transcribe: not a speech weight", ["transcribe", "ResNet18_Weights.IMAGENET1K_V1", f("red.png")],
         "ResNet18_Weights"),
        # any command
        ("doctor: unknown flag", ["doctor", "--frobnicate"], "frobnicate"),
    ]

    cache = f("cache")
    os.makedirs(cache)
    env = dict(os.environ, MZ_CACHE_DIR=cache, MZ_OFFLINE="1", MZ_NUM_THREADS="1")
    env.pop("MZ_LOCKFILE", None)
    env.pop("MZ_MIRROR", None)
    failed, passed = [], 0
    for what, argv, words in rows:
        before = snapshot(work)
        r = subprocess.run([a.mz, *argv], capture_output=True, text=True, env=env, cwd=f("out"), timeout=300)
        after = snapshot(work)
        # Under scripts/test.sh --sanitize, ASan announces each allocation it fails (then mz reports the failure).
        lines = [ln for ln in r.stderr.strip().splitlines() if not SANITIZER_ALLOCATION_WARNING.match(ln)]
        problems = []
        if not 0 < r.returncode < 128:
            problems.append(f"exit {r.returncode}")
        if len(lines) != 1 or not lines[0].startswith("mz: "):
            problems.append(f"stderr is not one 'mz: ' line: {r.stderr.strip()[:300]!r}")
        elif words not in lines[0]:
            problems.append(f"stderr does not name {words!r}: {lines[0]!r}")
        if after != before:
            changed = sorted(set(after) ^ set(before) | {p for p in after if p in before and after[p] != before[p]})
            problems.append(f"wrote {changed}")
            for p in set(after) - set(before):
                if os.path.isdir(p):
                    shutil.rmtree(p, ignore_errors=True)
                elif os.path.exists(p):
                    os.remove(p)
        if problems:
            failed.append(what)
            print(f"FAIL {what}: mz {' '.join(argv)}\n     " + "\n     ".join(problems), flush=True)
        else:
            passed += 1
    print(f"{passed} passed, {len(failed)} failed of {len(rows)} rows")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
