#!/usr/bin/python3
"""mz tokenize against the oracles, on AG News's real text and on edge cases.

- GPT-2 BPE (--gpt2 encoder.json vocab.bpe): ids and pieces identical to gpt2_reference.py (python3-regex
  emulating torchtext's RE2 pattern) on every line, and to torchtext's own test expectations.
- SentencePiece (--sentencepiece): ids and pieces identical to python3-sentencepiece for the shipped
  models and for a BPE model trained here with spm_train --model_type=bpe.
- Vocab (--vocab, a torchtext vocab.pt written by make_vocab.py): ids equal the vocabulary's lookup.
- A weight's whole transform (XLM-R's and RoBERTa's records), its assets served from a local mirror
  (MZ_MIRROR=file://...) into a fresh cache: BOS + vocab(tokens)[:max_seq_len] + EOS.
- Bad input: invalid UTF-8, assets that do not parse, a missing file: typed errors, no crash.
The assets come from ../shared/corpus/text; without it the test skips (exit 0 with a message).
Usage: test_tokenizers.py --mz build/mz --work DIR
"""
import argparse
import base64
import json
import os
import shutil
import subprocess
import sys

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gpt2_reference  # noqa: E402
import make_vocab  # noqa: E402

CORPUS = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "corpus", "text"))

EDGE_CASES = [
    "", " ", "  ", "\t", "\n", "a\v b", "trailing  ", "  leading", "a \u00a0b", "\u2003em\u2003space\u3000",
    "multi      space", "tabs\t\tand\nnew\r\nlines", "emoji 👍🏽 and 🤖!", "Hélló  WoŕlḊ¿", "naïve café résumé",
    "Avdija Vršajević în", "don't we'll they've I'm she'd it's", "'s's's", "12345 67.89 1,000", "٣٤٥ digits",
    "日本語のテキスト", "Ελληνικά κείμενο", "x" * 2000, "supercalifragilisticexpialidocious" * 20,
    "!!!???...,,,", "mixed123abc456", "\u200bzero\u200bwidth", "a\u0301 combining",
]
# torchtext's own expectations (test/torchtext_unittest/test_transforms.py, TestGPT2BPETokenizer)
TORCHTEXT_GPT2 = {
    "Hello World!, how are you?": ([15496, 2159, 28265, 703, 389, 345, 30],
                                   ["Hello", "ĠWorld", "!,", "Ġhow", "Ġare", "Ġyou", "?"]),
    "Hélló  WoŕlḊ¿": ([39, 2634, 297, 10205, 220, 22173, 129, 243, 75, 41585, 232, 126, 123],
                     ["H", "Ã©", "ll", "Ã³", "Ġ", "ĠWo", "Å", "ķ", "l", "á¸", "Ĭ", "Â", "¿"]),
    "Respublica superiorem": ([4965, 11377, 64, 2208, 72, 29625], ["Res", "public", "a", "Ġsuper", "i", "orem"]),
    "Avdija Vršajević în": ([7355, 67, 34655, 569, 81, 32790, 1228, 1990, 72, 38325, 6184, 106, 77],
                           ["Av", "d", "ija", "ĠV", "r", "Å¡", "aj", "ev", "i", "Äĩ", "ĠÃ", "®", "n"]),
    "multi      space": ([41684, 220, 220, 220, 220, 220, 2272], ["multi", "Ġ", "Ġ", "Ġ", "Ġ", "Ġ", "Ġspace"]),
}

failures = []
checks = [0]


def check(name, ok, detail=""):
    checks[0] += 1
    print(f"{'ok  ' if ok else 'FAIL'} {name}" + ("" if ok else f": {detail}"), flush=True)
    if not ok:
        failures.append(name)


def mz_json(mz, args, env=None):
    r = subprocess.run([mz, "tokenize", "--json", *args], capture_output=True, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"mz tokenize {args[:3]} failed ({r.returncode}): {r.stderr.decode(errors='replace')}")
    return json.loads(r.stdout)


def lines_of(path):
    with open(path, encoding="utf-8") as f:
        return f.read().split("\n")[:-1]


def compare(name, got, texts, expect):
    """got: mz's entries; expect(text) -> (ids, pieces)."""
    if len(got) != len(texts):
        return check(name, False, f"{len(got)} results for {len(texts)} texts")
    bad = []
    for text, entry in zip(texts, got):
        ids, pieces = expect(text)
        if entry["text"] != text or entry["ids"] != ids or entry["pieces"] != pieces:
            bad.append(f"{text[:60]!r}: mz {entry['ids'][:12]} {entry['pieces'][:6]} != {ids[:12]} {pieces[:6]}")
    check(f"{name} ({len(texts)} texts)", not bad, "; ".join(bad[:3]))


def test_gpt2(mz, agnews):
    enc, bpe = os.path.join(CORPUS, "gpt2_bpe_encoder.json"), os.path.join(CORPUS, "gpt2_bpe_vocab.bpe")
    ref = gpt2_reference.GPT2BPE(enc, bpe)
    compare("gpt2: AG News lines", mz_json(mz, ["--gpt2", enc, bpe, "--file", agnews]), lines_of(agnews), ref.encode)
    compare("gpt2: edge cases", mz_json(mz, ["--gpt2", enc, bpe, "--", *EDGE_CASES]), EDGE_CASES, ref.encode)
    texts = list(TORCHTEXT_GPT2)
    compare("gpt2: torchtext's expectations", mz_json(mz, ["--gpt2", enc, bpe, "--", *texts]), texts,
            lambda t: TORCHTEXT_GPT2[t])
    # the reference agrees with torchtext's expectations too (it is a fair oracle)
    check("gpt2 reference: torchtext's expectations", all(ref.encode(t) == TORCHTEXT_GPT2[t] for t in texts))


def spm_expect(model):
    sp = spm.SentencePieceProcessor(model_file=model)
    return lambda t: (sp.encode(t), sp.encode(t, out_type=str))


def test_sentencepiece(mz, agnews, work):
    trained = os.path.join(work, "bpe_agnews")
    subprocess.run(["spm_train", f"--input={agnews}", f"--model_prefix={trained}", "--model_type=bpe",
                    "--vocab_size=800", "--character_coverage=1.0", "--minloglevel=2"], check=True,
                   capture_output=True)
    models = {"spm_example": os.path.join(CORPUS, "spm_example.model"),
              "t5_tokenizer_base": os.path.join(CORPUS, "t5_tokenizer_base.model"),
              "spm_train bpe": trained + ".model"}
    for name, model in models.items():
        compare(f"sentencepiece {name}: AG News lines", mz_json(mz, ["--sentencepiece", model, "--file", agnews]),
                lines_of(agnews), spm_expect(model))
        compare(f"sentencepiece {name}: edge cases", mz_json(mz, ["--sentencepiece", model, "--", *EDGE_CASES]),
                EDGE_CASES, spm_expect(model))
    return trained + ".model"


def test_vocab(mz, spm_model, work):
    sp = spm.SentencePieceProcessor(model_file=spm_model)
    itos = ["<s>", "<pad>", "</s>", "<unk>"] + [sp.id_to_piece(i) for i in range(3, sp.get_piece_size())][::2]
    path = os.path.join(work, "vocab.pt")
    make_vocab.save_vocab(path, itos, default_index=3)
    texts = ["Hello world, how are you?", "Oil prices rise again", ""]
    got = mz_json(mz, ["--sentencepiece", spm_model, "--vocab", path, "--", *texts])
    expect = [make_vocab.lookup(itos, 3, sp.encode(t, out_type=str)) for t in texts]
    check("vocab.pt lookup (default index)", [g["ids"] for g in got] == expect, f"{[g['ids'] for g in got]} != {expect}")
    nodefault = os.path.join(work, "vocab_nodefault.pt")
    make_vocab.save_vocab(nodefault, itos[:10])
    r = subprocess.run([mz, "tokenize", "--sentencepiece", spm_model, "--vocab", nodefault, "zebra quantum"],
                       capture_output=True, text=True)
    check("vocab.pt without default index: unknown token is a usage error", r.returncode == 2 and
          "not in the vocabulary" in r.stderr, r.stderr)
    return itos


def test_weight_transforms(mz, spm_model, itos, work):
    """The records' whole transforms, their assets from a local mirror into a fresh cache."""
    mirror = os.path.join(work, "mirror")
    os.makedirs(mirror, exist_ok=True)
    shutil.copy(spm_model, os.path.join(mirror, "xlmr.sentencepiece.bpe.model"))
    make_vocab.save_vocab(os.path.join(mirror, "xlmr.vocab.pt"), itos, default_index=3)
    for f in ("gpt2_bpe_encoder.json", "gpt2_bpe_vocab.bpe"):
        shutil.copy(os.path.join(CORPUS, f), mirror)
    gpt2_itos = ["<s>", "<pad>", "</s>", "<unk>"] + [str(i) for i in range(50257)]
    make_vocab.save_vocab(os.path.join(mirror, "roberta.vocab.pt"), gpt2_itos, default_index=3)
    env = dict(os.environ, MZ_MIRROR="file://" + mirror + "/", MZ_CACHE_DIR=os.path.join(work, "cache"))
    sp = spm.SentencePieceProcessor(model_file=spm_model)
    ref = gpt2_reference.GPT2BPE(os.path.join(CORPUS, "gpt2_bpe_encoder.json"), os.path.join(CORPUS, "gpt2_bpe_vocab.bpe"))
    texts = ["Hello world", "How are you!", "word " * 300]
    cases = {
        "XLMR_Base_Weights.ENCODER": (254, lambda t: make_vocab.lookup(itos, 3, sp.encode(t, out_type=str))),
        "XLMR_Large_Weights.ENCODER": (510, lambda t: make_vocab.lookup(itos, 3, sp.encode(t, out_type=str))),
        "RoBERTa_Base_Weights.ENCODER": (254, lambda t: make_vocab.lookup(gpt2_itos, 3, map(str, ref.encode(t)[0]))),
    }
    for weight, (max_len, tokens) in cases.items():
        got = [g["ids"] for g in mz_json(mz, [weight, *texts], env=env)]
        expect = [[0] + tokens(t)[:max_len] + [2] for t in texts]
        check(f"{weight}: the bundle's whole transform", got == expect,
              f"{[g[:8] for g in got]} != {[e[:8] for e in expect]}")
    r = subprocess.run([mz, "tokenize", "RoBERTa_Base_Weights.ENCODER", "Hello"], capture_output=True, text=True,
                       env=env)
    check("plain output: one line of space-separated ids", r.stdout == "0 " + " ".join(
        str(i + 4) for i in ref.encode("Hello")[0]) + " 2\n", r.stdout + r.stderr)


def test_bad_input(mz, work):
    spm_model = os.path.join(CORPUS, "spm_example.model")
    enc, bpe = os.path.join(CORPUS, "gpt2_bpe_encoder.json"), os.path.join(CORPUS, "gpt2_bpe_vocab.bpe")
    garbage = os.path.join(work, "garbage.bin")
    with open(garbage, "wb") as f:
        f.write(b"\x00\x01not a model at all" * 10)
    negative = os.path.join(work, "negative_encoder.json")
    with open(negative, "w") as f:
        f.write('{"a": 0, "b": -3}')
    not_utf8_bpe = os.path.join(work, "not_utf8_vocab.bpe")
    with open(not_utf8_bpe, "wb") as f:
        f.write(b"#version: 0.2\na \xff\n")
    throwing = os.path.join(work, "throwing.model")  # found by tests/fuzz: libsentencepiece throws on it
    with open(throwing, "wb") as f:
        f.write(base64.b64decode("Cg4KBTx1bms+FQAAAAAYAgoMCgoAAAAAAAAAAmhlFQAAAK8="))
    bad_vocab = os.path.join(work, "bad_vocab.pt")
    import torch
    torch.save({"weight": torch.zeros(2)}, bad_vocab)
    cases = [
        ("invalid UTF-8 (gpt2)", ["--gpt2", enc, bpe, b"abc\xff\xfe"], 2, "invalid UTF-8"),
        ("invalid UTF-8 (sentencepiece)", ["--sentencepiece", spm_model, b"\xc3("], 2, "invalid UTF-8"),
        ("truncated UTF-8", ["--sentencepiece", spm_model, b"ok \xe2\x82"], 2, "invalid UTF-8"),
        ("sentencepiece model that does not parse", ["--sentencepiece", garbage, "hi"], 3, "not a SentencePiece model"),
        ("sentencepiece model that makes the library throw", ["--sentencepiece", throwing, "hi"], 3,
         f"{throwing}: not a SentencePiece model"),
        ("encoder.json that does not parse", ["--gpt2", garbage, bpe, "hi"], 3, "not a GPT-2 encoder.json"),
        ("vocab.bpe without its header", ["--gpt2", enc, garbage, "hi"], 3, "not a GPT-2 vocab.bpe"),
        ("encoder.json with a negative id", ["--gpt2", negative, bpe, "hi"], 3,
         f'{negative}: not a GPT-2 encoder.json: the id of "b" is not a non-negative integer'),
        ("vocab.bpe that is not UTF-8", ["--gpt2", enc, not_utf8_bpe, "hi"], 3,
         f"{not_utf8_bpe}: not a GPT-2 vocab.bpe: invalid UTF-8"),
        ("missing asset", ["--sentencepiece", os.path.join(work, "nope.model"), "hi"], 3, "cannot open"),
        ("vocab.pt that is a state dict", ["--sentencepiece", spm_model, "--vocab", bad_vocab, "hi"], 3,
         "not a torchtext Vocab"),
        ("vocab.pt that is not a checkpoint", ["--sentencepiece", spm_model, "--vocab", garbage, "hi"], 3, ""),
    ]
    for name, args, code, message in cases:
        r = subprocess.run([mz.encode(), b"tokenize", *[a if isinstance(a, bytes) else a.encode() for a in args]],
                           capture_output=True)
        err = r.stderr.decode(errors="replace")
        check(f"bad input: {name}", r.returncode == code and message in err, f"exit {r.returncode}: {err.strip()}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mz", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    if not os.path.isdir(CORPUS):
        print(f"skipped: no corpus at {CORPUS} (shared/ is not part of a user's clone)")
        return 0
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    agnews = os.path.join(CORPUS, "text_normalization_ag_news_test.csv")
    test_gpt2(a.mz, agnews)
    spm_model = test_sentencepiece(a.mz, agnews, a.work)
    itos = test_vocab(a.mz, spm_model, a.work)
    test_weight_transforms(a.mz, spm_model, itos, a.work)
    test_bad_input(a.mz, a.work)
    print(f"tokenizer checks: {checks[0] - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
