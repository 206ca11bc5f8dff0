#!/usr/bin/python3
"""Numerical parity of every registered text encoder with torchtext 0.14.1's RobertaModel.

For each RoBERTa-family text model in the registry (`mz list --models --json`, task "text", a
RobertaEncoderConf config; T5 is t5_parity.py's) and each case below,
build torchtext's RobertaModel (with the case's head, if any) from the case's RobertaEncoderConf,
perturb every parameter, save it (torch.save zip, legacy torch.save with torchtext's *old* layer names,
or safetensors), run `mz forward --checkpoint` on token ids, and compare with torchtext's output in
eval mode under no_grad: relative error <= 1e-5, the same shape (the fast path trims the time
dimension when every row ends in padding) and exact zeros where torchtext has them (padded positions).
`mz forward` loads strictly, so state-dict names and shapes must equal torchtext's.
Usage: text_parity.py --mz build/mz --work DIR [--extended|--only-extended] [MODEL...]
Per-model special cases live in the SPECIAL table.
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
import st  # noqa: E402
import tt_shim  # noqa: E402

TOLERANCE = 1e-5


TT = tt_shim.import_torchtext().models

TINY = {"vocab_size": 97, "embedding_dim": 16, "ffn_dimension": 24, "num_attention_heads": 2,
        "num_encoder_layers": 2, "max_seq_len": 40}
PAD = 1


def old_key(key):
    """torchtext's old layer names (what its _load_from_state_dict renames)."""
    key = re.sub(r"\.layers\.layers\.(\d+)\.", r".layers.\1.", key)
    for new, old in (("self_attn.in_proj_", "attention.input_projection."),
                     ("self_attn.out_proj.", "attention.output_projection."),
                     ("linear1.", "residual_mlp.mlp.0."), ("linear2.", "residual_mlp.mlp.3."),
                     ("norm1.", "attention_layer_norm."), ("norm2.", "final_layer_norm.")):
        key = re.sub(r"(\.layers\.\d+\.)" + re.escape(new), r"\1" + old, key)
    return key


def tokens(gen, vocab, lengths, width):
    """Rows of random ids (never the padding id), each padded with 1 after its length."""
    t = torch.full((len(lengths), width), PAD, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids = torch.randint(3, vocab, (n,), generator=gen)
        t[i, :n] = ids
    return t


def classification_head(conf):
    return TT.RobertaClassificationHead(num_classes=3, input_dim=conf.embedding_dim)


# Cases run for every text model: (name, conf overrides, token lengths, width, head JSON, head factory, format).
CASES = [
    ("no padding", {}, [7, 7], 7, None, None, "zip"),
    ("padding, trimmed", {}, [5, 3], 8, None, None, "legacy-old"),
    ("padding, one full row", {}, [6, 2, 4], 6, None, None, "safetensors"),
    ("odd heads: the plain path", {"num_attention_heads": 1}, [5, 3], 6, None, None, "zip"),
    ("normalize_before", {"normalize_before": True}, [4, 6], 6, None, None, "zip"),
    ("classification head", {}, [5, 2], 5, {"type": "classification", "num_classes": 3}, classification_head,
     "safetensors"),
]

# model -> {"conf": the tiny config's overrides, "full": also run the model's own configuration,
#           "extended": the full-size case only with --extended}
SPECIAL = {
    "roberta_base": {"full": True},
    "xlmr_base": {"conf": {"vocab_size": 250}, "full": True, "extended": True},
    "roberta_large": {"full": True, "extended": True},
    "xlmr_large": {"full": True, "extended": True},
}


def perturb(net, gen):
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)


def save(sd, path, fmt):
    if fmt == "zip":
        torch.save(sd, path)
    elif fmt == "legacy-old":
        torch.save(collections.OrderedDict((old_key(k), v) for k, v in sd.items()), path,
                   _use_new_zipfile_serialization=False)
    else:
        st.save(path, dict(sd))


def check(mz, work, model, case, conf_kwargs, index):
    name, overrides, lengths, width, head_json, head_factory, fmt = case
    kwargs = dict(conf_kwargs, **overrides)
    conf = TT.RobertaEncoderConf(**kwargs)
    gen = torch.Generator().manual_seed(100 + index)
    torch.manual_seed(index)
    net = TT.RobertaModel(conf, head_factory(conf) if head_factory else None).eval()
    perturb(net, gen)
    x = tokens(gen, conf.vocab_size, lengths, width)
    with torch.no_grad():
        ref = net(x)
    ckpt, inp, out = (os.path.join(work, f"{model}.{index}.{s}") for s in ("ckpt", "in.safetensors", "out.safetensors"))
    save(net.state_dict(), ckpt, fmt)
    st.save(inp, {"input": x})
    options = dict(kwargs)
    if head_json:
        options["head"] = head_json
    r = subprocess.run([mz, "forward", model, "--checkpoint", ckpt, "--input", inp, "--output", out,
                        "--options", json.dumps(options)], capture_output=True, text=True)
    if r.returncode != 0:
        return f"mz forward failed ({r.returncode}): {r.stderr.strip()}"
    got = st.load(out)["output"]
    for p in (ckpt, inp, out):
        os.remove(p)
    if got.shape != ref.shape:
        return f"shape {list(got.shape)} != torchtext's {list(ref.shape)}"
    if not torch.equal(got == 0, ref == 0):
        return "exact zeros (padded positions) differ from torchtext's"
    err = ((got.double() - ref.double()).abs().max() / ref.double().abs().max().clamp_min(1e-12)).item()
    return None if err <= TOLERANCE else f"relative error {err:.3g} > {TOLERANCE}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mz", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--extended", action="store_true")
    ap.add_argument("--only-extended", action="store_true")
    ap.add_argument("models", nargs="*")
    a = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(a.work, exist_ok=True)
    listed = json.loads(subprocess.check_output([a.mz, "list", "--models", "--json"]))
    weights = {e["model"]: e for e in json.loads(subprocess.check_output([a.mz, "list", "--json"]))
               if e["task"] == "text" and e["default"]}
    # the RobertaModel family (a RobertaEncoderConf config); T5 has its own test, t5_parity.py
    models = [m for m in listed if m["task"] == "text" and (not a.models or m["model"] in a.models)
              and "normalize_before" in weights[m["model"]]["meta"]["config"]]
    runs = []
    for m in models:
        spec = SPECIAL.get(m["model"], {})
        if not spec.get("extended") or a.extended or a.only_extended:
            if spec.get("full"):  # the model's own configuration, as its weights have it
                full = {k: v for k, v in weights[m["model"]]["meta"]["config"].items() if k != "scaling"}
                runs.append((m["model"], CASES[1], full))
        if not a.only_extended:
            for case in CASES:
                runs.append((m["model"], case, dict(TINY, **spec.get("conf", {}))))
    failures = 0
    for index, (model, case, conf) in enumerate(runs):
        problem = check(a.mz, a.work, model, case, conf, index)
        size = "full" if conf.get("embedding_dim") != TINY["embedding_dim"] else "tiny"
        print(f"{'FAIL' if problem else 'ok  '} {model} [{size}] {case[0]}" + (f": {problem}" if problem else ""),
              flush=True)
        failures += bool(problem)
    print(f"text parity: {len(runs) - failures} passed, {failures} failed")
    return 1 if failures or not runs else 0


if __name__ == "__main__":
    sys.exit(main())
