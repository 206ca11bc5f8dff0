#!/usr/bin/python3
"""Writes small seed inputs for the fuzz targets that have no fixture generator of their own (tests/fuzz).
   make_seeds.py TARGET OUT_DIR [MZ]     TARGET: weights_json | spec | tokenizers | audio
weights_json takes its entries from `MZ list --json` (a built mz); spec uses examples/specs/."""
import io
import json
import os
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
SEP = b"\xff\xff"


def write(out, name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def weights_json(out, mz):
    entries = json.loads(subprocess.run([mz, "list", "--json"], check=True, capture_output=True, text=True).stdout)
    # one entry per task, with their categories cut short (the fuzzer's inputs are kept under 16 KiB)
    seen = {}
    for e in entries:
        seen.setdefault(e["task"], e)
    for task, e in seen.items():
        if isinstance(e["meta"].get("categories"), list):
            e["meta"]["categories"] = e["meta"]["categories"][:3]
        write(out, f"entry_{task}.json", json.dumps(e))
    file = {"url": "https://example.invalid/w.pth", "sha256": "ab" * 32, "size": 1234, "trust": "record"}
    lock = {"modelzoo_lock": 1, "defaults": {"ResNet50_Weights": "IMAGENET1K_V2"},
            "weights": [{"weight": "ResNet50_Weights.IMAGENET1K_V2", "file": file},
                        {"weight": "XLMR_Base_Weights.ENCODER", "file": dict(file, trust="first-use"),
                         "assets": [dict(file, url="https://example.invalid/spm.model")]}]}
    write(out, "lock.json", json.dumps(lock))


def spec(out, _):
    d = os.path.join(ROOT, "examples", "specs")
    for name in sorted(os.listdir(d)):
        write(out, name, open(os.path.join(d, name), "rb").read())
    write(out, "base_overrides.json", '{"_base_": "nested/child.json", "y": "${head.dim}"}\n%%\nnum_classes=7\nhead.dim=4')
    write(out, "registered.json", '"registered"')
    write(out, "select.json", '{"_target_": "x", "a": {"_select_": "b", "b": {"k": 1}}, "c": "${a.k}"}')


def tokenizers(out, _):
    # GPT-2: a byte-level encoder with a few merges
    symbols = [chr(c) for c in range(0x21, 0x7F)] + ["Ġ", "Ġt", "he", "Ġthe", "ll", "llo"]
    encoder = json.dumps({s: i for i, s in enumerate(symbols)}).encode()
    merges = "#version: 0.2\nĠ t\nh e\nĠt he\nl l\nll o\n".encode()
    write(out, "gpt2", b"\x00" + encoder + SEP + merges + SEP + "hello the world's 42 cafés\n".encode())
    # SentencePiece: a tiny BPE and unigram model trained here (identity normalisation keeps them small)
    import sentencepiece as spm
    text = "the quick brown fox jumps over the lazy dog\nhello world, hello tokenizers\n" * 20
    for kind in ("bpe", "unigram"):
        model = io.BytesIO()
        spm.SentencePieceTrainer.train(sentence_iterator=iter(text.splitlines()), model_writer=model, vocab_size=40,
                                       model_type=kind, normalization_rule_name="identity", minloglevel=2,
                                       hard_vocab_limit=False)
        write(out, f"spm_{kind}", b"\x01" + model.getvalue() + SEP + "hello quick dogs ünï".encode())
    # torchtext vocab.pt, with and without a default index
    sys.path.insert(0, os.path.join(ROOT, "tests", "text"))
    import make_vocab
    for default in (None, 0):
        path = os.path.join(out, "vocab.pt")
        make_vocab.save_vocab(path, ["<unk>", "a", "b"], default)
        data = open(path, "rb").read()
        os.remove(path)
        write(out, f"vocab_{default}", b"\x02" + data)


def audio(out, _):
    import numpy as np
    import soundfile as sf
    t = np.arange(400) / 8000.0
    wave = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    cases = [("wav", "PCM_16", 8000, 1), ("wav", "FLOAT", 16000, 2), ("wav", "PCM_U8", 22050, 1),
             ("flac", "PCM_16", 44100, 1), ("ogg", "VORBIS", 16000, 1), ("aiff", "PCM_24", 11025, 2),
             ("au", "ULAW", 8000, 1), ("wav", "IMA_ADPCM", 8000, 1)]
    for fmt, subtype, rate, channels in cases:
        data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
        buf = io.BytesIO()
        sf.write(buf, data, rate, format=fmt.upper(), subtype=subtype)
        write(out, f"{fmt}_{subtype.lower()}_{rate}_{channels}", buf.getvalue())


if __name__ == "__main__":
    target, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    {"weights_json": weights_json, "spec": spec, "tokenizers": tokenizers, "audio": audio}[target](
        out, sys.argv[3] if len(sys.argv) > 3 else None)
