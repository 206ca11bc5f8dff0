#!/usr/bin/python3
"""T5 through the CLI end to end, with a weight registered by a manifest (MZ_MANIFEST) whose file and
SentencePiece model (the real t5_tokenizer_base.model) are local (file:// URLs) and whose model is a tiny
random T5 with the language-model head.

- mz tokenize: T5Transform's ids (python3-sentencepiece's EncodeAsIds -> Truncate -> </s> -> pad 0).
- mz generate: the ids of torchtext's T5Wrapper.generate with beam_size 1 and of a plain Python greedy loop
  over T5Model (they agree), and the text of SentencePiece's DecodeIds; rows that end early, a batch that
  stops before --max-length, the weight's file through the hub and --checkpoint.
- mz embed: the encoder output of torchtext's T5Model (full and encoder-only weights), a head over the encoder;
  mz list/info/download/bench know T5.
- bad input: typed errors (exit 2) naming the problem.
Usage: t5_cli.py --mz build/mz --work DIR
"""
import argparse
import hashlib
import json
import os
import shutil
import sys

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "oracle"))
import st  # noqa: E402
from cli_checks import check, run, summary  # noqa: E402
import tt_shim  # noqa: E402

CORPUS = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "corpus", "text"))
TINY = {"encoder_only": False, "linear_head": True, "embedding_dim": 16, "qkv_dim": 4, "num_attention_heads": 2,
        "num_encoder_layers": 2, "num_decoder_layers": 2, "ffn_dimension": 24, "dropout": 0.1, "activation": "relu",
        "layer_norm_eps": 1e-6, "relative_attention_num_buckets": 32, "relative_attention_max_distance": 128,
        "padding_idx": 0, "max_seq_len": 512, "vocab_size": 32000, "training": False}
TEXTS = ["translate English to German: The house is wonderful.", "Hello world",
         "summarize: studies have shown that owning a dog is good for you"]
def greedy(model, x, max_length, eos=1):
    """The plain greedy loop: the whole model each step, argmax of the last position, start token 0,
    a finished row's new tokens zeroed, stop when every row has produced eos."""
    out = torch.zeros((x.size(0), 1), dtype=torch.long)
    incomplete = torch.ones(x.size(0), dtype=torch.long)
    for _ in range(max_length):
        logits = model(x, out)["decoder_output"]
        nxt = F.log_softmax(logits[:, -1], dim=-1).argmax(-1)
        out = torch.cat([out, (nxt * incomplete).unsqueeze(1)], dim=1)
        incomplete = incomplete - (out[:, -1] == eos).long()
        if (incomplete == 0).all():
            break
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mz", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    spm_path = os.path.join(CORPUS, "t5_tokenizer_base.model")
    if not os.path.isfile(spm_path):
        print(f"skipped: no {spm_path} (shared/ is not part of a user's clone)")
        return 0
    shutil.rmtree(a.work, ignore_errors=True)
    os.makedirs(a.work)
    w = lambda f: os.path.join(a.work, f)  # noqa: E731
    tt_shim.import_torchtext()
    import sentencepiece
    import torch.nn as nn
    from torchtext.prototype.models import T5Conf, T5Model
    from torchtext.prototype.models.t5.wrapper import T5Wrapper
    sp = sentencepiece.SentencePieceProcessor(model_file=spm_path)

    torch.manual_seed(0)
    net = T5Model(T5Conf(**TINY)).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in net.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(noise if ("token_emb" in n or "relative" in n) else
                    (1 + 0.2 * noise if p.dim() == 1 else noise / p.shape[1] ** 0.5))
        net.lm_head.weight[1] = 4 * net.lm_head.weight[3]  # </s> likely enough that some rows end early
    torch.save(net.state_dict(), w("tiny.pt"))
    max_seq_len = 9  # T5Transform's Truncate, small enough to cut the first and last texts
    entry = {
        "weight": "T5_Small_Weights.TINY_TEST", "model": "t5_small", "task": "text",
        "url": "file://" + w("tiny.pt"), "sha256": hashlib.sha256(open(w("tiny.pt"), "rb").read()).hexdigest(),
        "meta": {"num_params": sum(p.numel() for p in net.parameters()), "config": TINY, "padding_value": 0,
                 "text_transform": [{"op": "T5Transform", "sp_model_path": "file://" + spm_path,
                                     "max_seq_len": max_seq_len, "eos_idx": 1, "padding_idx": 0}]},
        "transforms": {"preset": "TextTransform"},
    }
    torch.save({k: v for k, v in net.state_dict().items() if k.startswith(("token_", "encoder.", "norm1"))}, w("enc.pt"))
    encoder_entry = dict(entry, weight="T5_Small_Weights.TINY_ENCODER_TEST", url="file://" + w("enc.pt"),
                         sha256=hashlib.sha256(open(w("enc.pt"), "rb").read()).hexdigest(),
                         meta=dict(entry["meta"], config=dict(TINY, encoder_only=True, linear_head=False)))
    with open(w("manifest.json"), "w") as f:
        json.dump({"schema": "modelzoo.weights/1", "weights": [entry, encoder_entry]}, f)
    env = dict(os.environ, MZ_MANIFEST=w("manifest.json"), MZ_CACHE_DIR=w("cache"), MZ_OFFLINE="1")

    # the registry
    r = run(a.mz, ["list", "t5*", "--json"], env)
    names = sorted(e["weight"] for e in json.loads(r.stdout)) if r.returncode == 0 else []
    want = {f"T5_{s}_Weights.{v}" for s in ("Small", "Base", "Large", "3B", "11B")
            for v in ("ENCODER", "FULL", "GENERATION")}
    check("mz list t5*: 15 bundles (+ the manifest's)",
          want | {"T5_Small_Weights.TINY_TEST", "T5_Small_Weights.TINY_ENCODER_TEST"} == set(names), str(names))
    r = run(a.mz, ["info", "t5_11b", "--json"], env)
    info = json.loads(r.stdout) if r.returncode == 0 else {}
    check("mz info t5_11b", info.get("default") == "T5_11B_Weights.FULL" and "encoder_only" in info.get("options", {}),
          r.stdout + r.stderr)
    r = run(a.mz, ["download", "T5_Small_Weights.TINY_TEST"], env)
    check("mz download (file:// through the hub)", r.returncode == 0 and os.path.isfile(r.stdout.strip().splitlines()[-1]),
          r.stderr)
    bench_options = {k: v for k, v in TINY.items() if k != "vocab_size"}
    r = run(a.mz, ["bench", "t5_small", "--options", json.dumps(bench_options), "--size", "8", "--batch", "2",
                   "--repeat", "2", "--json"], env)
    check("mz bench t5_small (tiny options)", r.returncode == 0 and json.loads(r.stdout)["forward_ms"] > 0, r.stderr)

    # mz tokenize: T5Transform
    rows = [sp.EncodeAsIds(t)[:max_seq_len] + [1] for t in TEXTS]
    r = run(a.mz, ["tokenize", "T5_Small_Weights.TINY_TEST", *TEXTS], env)
    got = [[int(i) for i in line.split()] for line in r.stdout.splitlines()]
    check("mz tokenize: T5Transform's ids", r.returncode == 0 and got == rows, r.stderr + f"{got} != {rows}")
    x = torch.zeros((len(rows), max(map(len, rows))), dtype=torch.long)
    for i, row in enumerate(rows):
        x[i, :len(row)] = torch.tensor(row)

    # mz embed: the encoder
    with torch.no_grad():
        want_enc = net(x)["encoder_output"]
    r = run(a.mz, ["embed", "T5_Small_Weights.TINY_TEST", *TEXTS, "--output", w("embed.safetensors")], env)
    got = st.load(w("embed.safetensors")) if r.returncode == 0 else {}
    check("mz embed: padded ids and torchtext's encoder output",
          r.returncode == 0 and torch.equal(got["input"], x) and got["encoder_output"].shape == want_enc.shape and
          (got["encoder_output"] - want_enc).abs().max().item() <= 1e-5 * want_enc.abs().max().item(), r.stderr)

    r = run(a.mz, ["embed", "T5_Small_Weights.TINY_ENCODER_TEST", *TEXTS, "--output", w("embed2.safetensors")], env)
    got = st.load(w("embed2.safetensors")) if r.returncode == 0 else {}
    check("mz embed: an encoder-only weight gives the same encoder output",
          r.returncode == 0 and (got["output"] - want_enc).abs().max().item() <= 1e-5 * want_enc.abs().max().item(),
          r.stderr)
    r = run(a.mz, ["embed", "T5_Small_Weights.TINY_ENCODER_TEST", "Hello world", "--json", "--options",
                   json.dumps({"head": {"type": "classification", "num_classes": 3}})], env)
    out = json.loads(r.stdout) if r.returncode == 0 else []
    check("mz embed --options head over T5's encoder: classification logits", len(out) == 1 and out[0]["shape"] == [3],
          r.stdout + r.stderr)
    check("mz embed --options head: says the head is fresh", "4 head tensors are freshly initialised" in r.stderr,
          r.stderr)
    r = run(a.mz, ["embed", "T5_Small_Weights.TINY_TEST", "Hello world", "--options",
                   json.dumps({"head": {"type": "classification", "num_classes": 3}})], env)
    check("a head over a full T5: a usage error (it needs encoder_only)", r.returncode == 2 and "encoder_only" in r.stderr,
          r.stderr)

    # mz generate: greedy decoding
    max_length = 12
    wrapper = T5Wrapper.__new__(T5Wrapper)
    nn.Module.__init__(wrapper)
    wrapper.model = net
    with torch.no_grad():
        by_wrapper = wrapper.generate(x, beam_size=1, eos_idx=1, max_seq_len=max_length)
        by_loop = greedy(net, x, max_length)
    check("oracles agree: T5Wrapper.generate(beam_size=1) == the greedy loop", torch.equal(by_wrapper, by_loop),
          f"{by_wrapper.tolist()} != {by_loop.tolist()}")
    ended = [(row == 1).any().item() for row in by_loop]
    check("the case has rows that end early and rows that do not", any(ended) and not all(ended), str(by_loop.tolist()))
    texts_out = [sp.DecodeIds(row) for row in by_loop.tolist()]
    for label, extra in (("the weight's file", []), ("--checkpoint", ["--checkpoint", w("tiny.pt")])):
        r = run(a.mz, ["generate", "T5_Small_Weights.TINY_TEST", *TEXTS, "--max-length", str(max_length), "--json",
                       *extra], env)
        got = json.loads(r.stdout) if r.returncode == 0 else []
        check(f"mz generate ({label}): the greedy loop's ids", [g["ids"] for g in got] == by_loop.tolist(),
              r.stderr + str([g["ids"] for g in got]) + " != " + str(by_loop.tolist()))
        check(f"mz generate ({label}): DecodeIds of them", [g["output"] for g in got] == texts_out,
              f"{[g['output'] for g in got]} != {texts_out}")
    r = run(a.mz, ["generate", "T5_Small_Weights.TINY_TEST", *TEXTS, "--max-length", str(max_length)], env)
    check("mz generate: one line of text per input", r.returncode == 0 and r.stdout.split("\n")[:-1] == texts_out,
          repr(r.stdout) + r.stderr)
    early = [0, 2]  # both end before max_length: the loop stops there
    with torch.no_grad():
        want = greedy(net, x[early][:, :int((x[early] != 0).sum(1).max())], max_length)
    r = run(a.mz, ["generate", "T5_Small_Weights.TINY_TEST", *[TEXTS[i] for i in early], "--max-length",
                   str(max_length), "--json"], env)
    got = [g["ids"] for g in json.loads(r.stdout)] if r.returncode == 0 else []
    check("mz generate stops when every row has ended", got == want.tolist() and want.size(1) < max_length + 1,
          r.stderr + f"{got} != {want.tolist()}")

    # bad input
    tiny_full = dict(TINY, linear_head=False)
    torch.save({k: v for k, v in net.state_dict().items() if k != "lm_head.weight"}, w("full.pt"))
    bad_forward = [
        ("an id outside the vocabulary", {"input": torch.tensor([[5, 32000, 1]])}, "outside the vocabulary"),
        ("a negative id", {"input": torch.tensor([[5, -1, 1]])}, "outside the vocabulary"),
        ("float ids", {"input": torch.zeros(1, 4)}, "must be integers"),
        ("1-D ids", {"input": torch.tensor([5, 6, 1])}, "must be [B, T]"),
        ("a decoder id outside the vocabulary", {"input": torch.tensor([[5, 1]]), "decoder_input": torch.tensor([[0, 40000]])},
         "outside the vocabulary"),
        ("decoder_input of another batch", {"input": torch.tensor([[5, 1]]), "decoder_input": torch.tensor([[0], [0]])},
         "batch of 2 rows"),
        ("no 'input'", {"decoder_input": torch.tensor([[0]])}, "no tensor named 'input'"),
    ]
    for name, tensors, message in bad_forward:
        st.save(w("bad.safetensors"), tensors)
        r = run(a.mz, ["forward", "t5_small", "--checkpoint", w("full.pt"), "--input", w("bad.safetensors"),
                       "--output", w("o.safetensors"), "--options", json.dumps(tiny_full)], env)
        check(f"mz forward refuses {name}", r.returncode == 2 and message in r.stderr, f"exit {r.returncode}: {r.stderr.strip()}")
    st.save(w("bad.safetensors"), {"input": torch.tensor([[5, 1]]), "decoder_input": torch.tensor([[0]])})
    r = run(a.mz, ["forward", "t5_small", "--checkpoint", w("enc.pt"), "--input", w("bad.safetensors"), "--output",
                   w("o.safetensors"), "--options", json.dumps(dict(tiny_full, encoder_only=True))], env)
    check("mz forward: an encoder-only model refuses decoder_input", r.returncode == 2 and "encoder-only" in r.stderr,
          r.stderr)
    r = run(a.mz, ["generate", "T5_Small_Weights.TINY_TEST", "hi", "--checkpoint", w("full.pt"), "--options",
                   json.dumps({"linear_head": False})], env)
    check("mz generate without the LM head: a usage error", r.returncode == 2 and "linear_head" in r.stderr, r.stderr)
    r = run(a.mz, ["generate", "T5_Small_Weights.FULL", "hi"], env)
    # offline: a download first would fail with the hub's error instead
    check("mz generate on FULL weights: a usage error before any download",
          r.returncode == 2 and "linear_head" in r.stderr, r.stderr)
    r = run(a.mz, ["generate", "t5_small", "hi"], env)  # offline: the hub names what it was asked for
    check("mz generate t5_small: the model's GENERATION weight", r.returncode != 0 and
          "T5_Small_Weights.GENERATION" in r.stderr and "offline" in r.stderr.lower(), r.stderr)
    r = run(a.mz, ["generate", "RoBERTa_Base_Weights.ENCODER", "hi"], env)
    check("mz generate on RoBERTa: not a T5 weight", r.returncode == 2 and "not a T5 weight" in r.stderr, r.stderr)
    r = run(a.mz, ["generate", "T5_Small_Weights.TINY_TEST", "\xff".encode("latin-1").decode("utf-8", "surrogateescape")],
            env)
    check("mz generate: invalid UTF-8 is a usage error", r.returncode == 2 and "UTF-8" in r.stderr, r.stderr)
    r = run(a.mz, ["generate", "T5_Small_Weights.TINY_TEST", "hi", "--max-length", "-1"], env)
    check("mz generate --max-length -1: a usage error", r.returncode == 2 and "--max-length" in r.stderr, r.stderr)
    r = run(a.mz, ["forward", "t5_small", "--checkpoint", w("full.pt"), "--input", w("bad.safetensors"),
                   "--output", w("o.safetensors"), "--options", json.dumps(dict(tiny_full, num_attention_heads=3))], env)
    check("mz forward: heads that do not divide embedding_dim", r.returncode == 2 and "divisible" in r.stderr, r.stderr)
    return summary("t5 cli")


if __name__ == "__main__":
    sys.exit(main())
