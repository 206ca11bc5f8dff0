#!/usr/bin/python3
"""The text CLI end to end: mz list/info/bench/forward/embed on text models, with a weight registered by a
manifest (MZ_MANIFEST) whose file, tokenizer assets and vocabulary are local (file:// URLs).

- mz embed: the weight's whole transform (GPT-2 BPE -> vocab.pt -> Truncate -> <s> ... </s>, padded with 1)
  gives the ids torchtext's pipeline would (gpt2_reference.py + the vocabulary), and the encoder's output
  equals torchtext's RobertaModel on those ids (eval, no_grad, 1e-5; fast-path zeros and trimming).
- --options adds a head; mz forward refuses bad token ids (typed error, exit 2, naming the input file).
Usage: test_text_cli.py --mz build/mz --work DIR
"""
import argparse
import hashlib
import json
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "oracle"))
import gpt2_reference  # noqa: E402
import make_vocab  # noqa: E402
import st  # noqa: E402
from cli_checks import check, run, summary  # noqa: E402
import tt_shim  # noqa: E402

CORPUS = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "corpus", "text"))
TINY = {"vocab_size": 100, "embedding_dim": 16, "ffn_dimension": 24, "padding_idx": 1, "max_seq_len": 40,
        "num_attention_heads": 2, "num_encoder_layers": 2, "dropout": 0.1, "scaling": None, "normalize_before": False}
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
    w = lambda f: os.path.join(a.work, f)  # noqa: E731
    tt = tt_shim.import_torchtext().models
    torch.manual_seed(0)
    net = tt.RobertaModel(tt.RobertaEncoderConf(**TINY)).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape) * 0.05)
    torch.save(net.state_dict(), w("tiny.pt"))
    itos = ["<s>", "<pad>", "</s>", "<unk>"] + [str(i) for i in range(96)]  # GPT-2 ids 0..95, then <unk>
    make_vocab.save_vocab(w("tiny.vocab.pt"), itos, default_index=3)
    enc, bpe = os.path.join(CORPUS, "gpt2_bpe_encoder.json"), os.path.join(CORPUS, "gpt2_bpe_vocab.bpe")
    entry = {
        "weight": "RoBERTa_Base_Weights.TINY_TEST", "model": "roberta_base", "task": "text",
        "url": "file://" + w("tiny.pt"), "sha256": hashlib.sha256(open(w("tiny.pt"), "rb").read()).hexdigest(),
        "meta": {"num_params": sum(p.numel() for p in net.parameters()), "config": TINY, "padding_value": 1,
                 "text_transform": [
                     {"op": "GPT2BPETokenizer", "encoder_json_path": "file://" + enc, "vocab_bpe_path": "file://" + bpe},
                     {"op": "VocabTransform", "vocab": "file://" + w("tiny.vocab.pt")},
                     {"op": "Truncate", "max_seq_len": 6},
                     {"op": "AddToken", "token": 0, "begin": True},
                     {"op": "AddToken", "token": 2, "begin": False}]},
        "transforms": {"preset": "TextTransform"},
    }
    with open(w("manifest.json"), "w") as f:
        json.dump({"schema": "modelzoo.weights/1", "weights": [entry]}, f)
    env = dict(os.environ, MZ_MANIFEST=w("manifest.json"), MZ_CACHE_DIR=w("cache"))

    # the registry knows the text models
    r = run(a.mz, ["list", "--task", "text", "--json"], env)
    names = sorted(e["weight"] for e in json.loads(r.stdout))
    check("mz list --task text", "RoBERTa_Base_Weights.ENCODER" in names and "XLMR_Large_Weights.ENCODER" in names
          and "RoBERTa_Base_Weights.TINY_TEST" in names, str(names))
    r = run(a.mz, ["info", "xlmr_base", "--json"], env)
    info = json.loads(r.stdout) if r.returncode == 0 else {}
    check("mz info xlmr_base", info.get("default") == "XLMR_Base_Weights.ENCODER" and "head" in info.get("options", {}),
          r.stdout + r.stderr)
    r = run(a.mz, ["bench", "roberta_base", "--options", json.dumps({k: v for k, v in TINY.items() if k != "scaling"}),
                   "--size", "12", "--batch", "2", "--repeat", "2", "--json"], env)
    check("mz bench roberta_base (tiny options)", r.returncode == 0 and json.loads(r.stdout)["forward_ms"] > 0,
          r.stderr)

    # mz embed: the whole transform, then the encoder
    texts = ["Hello world", "A longer sentence that the transform truncates to six tokens", "ok"]
    ref = gpt2_reference.GPT2BPE(enc, bpe)
    ids = [[0] + make_vocab.lookup(itos, 3, [str(i) for i in ref.encode(t)[0]])[:6] + [2] for t in texts]
    x = torch.full((len(ids), max(map(len, ids))), 1, dtype=torch.long)
    for i, row in enumerate(ids):
        x[i, :len(row)] = torch.tensor(row)
    with torch.no_grad():
        want = net(x)
    r = run(a.mz, ["embed", "RoBERTa_Base_Weights.TINY_TEST", *texts, "--output", w("embed.safetensors")], env)
    got = st.load(w("embed.safetensors")) if r.returncode == 0 else {}
    check("mz embed: the ids of the weight's transform", r.returncode == 0 and torch.equal(got["input"], x),
          r.stderr + (str(got["input"].tolist()) + " != " + str(x.tolist()) if got else ""))
    ok = r.returncode == 0 and got["output"].shape == want.shape and \
        (got["output"] - want).abs().max().item() <= 1e-5 * want.abs().max().item() and \
        torch.equal(got["output"] == 0, want == 0)
    check("mz embed: torchtext's output (trimmed, zeros at padding)", ok,
          f"{tuple(got['output'].shape) if got else None} vs {tuple(want.shape)}")
    r = run(a.mz, ["embed", "RoBERTa_Base_Weights.TINY_TEST", "Hello world", "--json", "--options",
                   json.dumps({"head": {"type": "classification", "num_classes": 3}})], env)
    out = json.loads(r.stdout) if r.returncode == 0 else []
    check("mz embed --options head: classification logits", len(out) == 1 and out[0]["shape"] == [3], r.stdout + r.stderr)
    check("mz embed --options head: says the head is fresh", "4 head tensors are freshly initialised" in r.stderr,
          r.stderr)

    # mz forward: bad token ids are typed errors naming the file
    for name, tensor, message in [
        ("float ids", torch.zeros(1, 4), "must be integers"),
        ("an id outside the vocabulary", torch.tensor([[0, 100, 2]]), "outside the vocabulary"),
        ("longer than the position table", torch.full((1, 39), 5), "longer than the position table"),
    ]:
        st.save(w("bad.safetensors"), {"input": tensor})
        r = run(a.mz, ["forward", "roberta_base", "--checkpoint", w("tiny.pt"), "--input", w("bad.safetensors"),
                       "--output", w("o.safetensors"), "--options",
                       json.dumps({k: v for k, v in TINY.items() if k != "scaling"})], env)
        check(f"mz forward refuses {name}", r.returncode == 2 and message in r.stderr and "bad.safetensors" in r.stderr,
              f"exit {r.returncode}: {r.stderr.strip()}")
    r = run(a.mz, ["tokenize", "ResNet50_Weights.IMAGENET1K_V2", "hi"], env)
    check("mz tokenize on an image weight is a usage error", r.returncode == 2 and "not a text weight" in r.stderr,
          r.stderr)
    return summary("text cli")


if __name__ == "__main__":
    sys.exit(main())
