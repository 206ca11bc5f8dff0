#!/usr/bin/python3
"""Numerical parity of mz's T5 with torchtext 0.14.1's prototype T5Model (random weights).

For each case: build torchtext's T5Model from a T5Conf, randomise every parameter (torchtext leaves the
q/k/v projections uninitialised), save it (torch.save zip or safetensors), run `mz forward t5_small
--checkpoint` on token ids (and `decoder_input`), and compare with torchtext's output in eval mode under
no_grad: the same shape and relative error <= 1e-4 (the project's bound) for the encoder output and the decoder
output (or the LM logits). `mz forward` loads strictly, so the state-dict names and shapes equal torchtext's; the test
checks that a missing or an extra key fails the load. One case puts torchtext's RobertaClassificationHead
over an encoder-only T5 (`{"head": ...}`, which torchtext's T5 does not have).
Usage: t5_parity.py --mz build/mz --work DIR [--extended|--only-extended]
"""
import argparse
import json
import os
import subprocess
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
import st  # noqa: E402
import tt_shim  # noqa: E402

# 1e-4, as for every builder: float32's own rounding on these random weights is above 1e-5 (on the t5_small
# GENERATION case torchtext's output is 2.3e-5 from the same model in float64, mz's 2.7e-5, since linear maps without
# autograd run oneDNN's matmul rather than the BLAS's).
TOLERANCE = 1e-4
tt_shim.import_torchtext()
from torchtext.models import RobertaClassificationHead  # noqa: E402
from torchtext.prototype.models import T5Conf, T5Model  # noqa: E402

TINY = {"encoder_only": False, "linear_head": False, "embedding_dim": 16, "qkv_dim": 4, "num_attention_heads": 2, "num_encoder_layers": 2,
        "num_decoder_layers": 2, "ffn_dimension": 24, "vocab_size": 97}



def ids(gen, vocab, lengths, width):
    """Rows of random ids in [2, vocab) (never padding 0 or eos 1 inside), each ending with eos 1 and
    padded with 0 after its length."""
    t = torch.zeros((len(lengths), width), dtype=torch.long)
    for i, n in enumerate(lengths):
        t[i, :n] = torch.randint(2, vocab, (n,), generator=gen)
        t[i, n - 1] = 1
    return t


# (name, conf overrides, encoder lengths and width, decoder lengths and width or None, checkpoint format, extended)
CASES = [
    ("encoder only, no padding", {"encoder_only": True}, ([6, 6], 6), None, "zip", False),
    ("encoder only, padding", {"encoder_only": True}, ([6, 2, 4], 6), None, "safetensors", False),
    ("encoder-decoder, start token only", {}, ([5, 3], 5), None, "zip", False),
    ("encoder-decoder, padded decoder", {}, ([5, 3], 7), ([4, 2], 5), "zip", False),
    ("generation head (logits)", {"linear_head": True}, ([7, 4], 7), ([3, 6], 6), "safetensors", False),
    ("gelu, qkv_dim 8, 4 heads, eps 1e-5, 3/1 layers",
     {"activation": "gelu", "qkv_dim": 8, "num_attention_heads": 4, "layer_norm_eps": 1e-5,
      "num_encoder_layers": 3, "num_decoder_layers": 1, "linear_head": True}, ([9, 5], 9), ([4, 4], 4), "zip", False),
    ("long sequences (log buckets), few buckets",
     {"relative_attention_num_buckets": 8, "relative_attention_max_distance": 20, "linear_head": True},
     ([150, 90], 150), ([40, 25], 40), "zip", False),
    ("encoder only + classification head (RobertaClassificationHead over T5's encoder)", {"encoder_only": True},
     ([6, 3], 6), "head", "zip", False),
    # a weight's name: that weight's whole configuration (meta.config of `mz info`), at full size
    ("T5_Small_Weights.GENERATION", None, ([12, 7], 12), ([5, 3], 5), "safetensors", False),
    ("T5_Base_Weights.GENERATION", None, ([12, 7], 12), ([5, 3], 5), "zip", True),
]


def randomise(net, gen):
    """Every parameter random: embeddings and relative biases N(0, 1), norms 1 + N(0, 0.2), projections
    N(0, 1/fan_in)."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if "token_embeddings" in name or "relative_attention_bias" in name:
                p.copy_(noise)
            elif p.dim() == 1:
                p.copy_(1 + 0.2 * noise)
            else:
                p.copy_(noise / p.shape[1] ** 0.5)


def rel_err(got, want):
    return ((got.double() - want.double()).abs().max() / want.double().abs().max().clamp_min(1e-12)).item()


def forward(mz, work, model, ckpt, inputs, options):
    inp, out = os.path.join(work, "in.safetensors"), os.path.join(work, "out.safetensors")
    st.save(inp, inputs)
    r = subprocess.run([mz, "forward", model, "--checkpoint", ckpt, "--input", inp, "--output", out,
                        "--options", json.dumps(options)], capture_output=True, text=True)
    if r.returncode != 0:
        return None, f"mz forward failed ({r.returncode}): {r.stderr.strip()}"
    got = st.load(out)
    os.remove(out)
    return got, None


def check(mz, work, case, index):
    name, overrides, (enc_lengths, enc_width), dec, fmt, _ = case
    if overrides is None:
        info = json.loads(subprocess.check_output([mz, "info", name, "--json"]))
        kwargs, model = info["meta"]["config"], info["model"]
    else:
        kwargs, model = dict(TINY, **overrides), "t5_small"
    conf = T5Conf(**kwargs)
    gen = torch.Generator().manual_seed(200 + index)
    net = T5Model(conf).eval()
    randomise(net, gen)
    x = ids(gen, conf.vocab_size, enc_lengths, enc_width)
    inputs = {"input": x}
    y = None
    if dec == "head":  # a task head over the encoder output: torchtext's RobertaClassificationHead
        head = RobertaClassificationHead(num_classes=3, input_dim=conf.embedding_dim).eval()
        randomise(head, gen)
        with torch.no_grad():
            want = head(net(x)["encoder_output"])
        ckpt = os.path.join(work, f"t5.{index}.ckpt")
        torch.save(dict(net.state_dict(), **{"head." + k: v for k, v in head.state_dict().items()}), ckpt)
        got, problem = forward(mz, work, "t5_small", ckpt, inputs,
                               dict(kwargs, head={"type": "classification", "num_classes": 3}))
        os.remove(ckpt)
        if problem:
            return problem
        if got["output"].shape != want.shape:
            return f"head output: shape {list(got['output'].shape)} != {list(want.shape)}"
        err = rel_err(got["output"], want)
        return f"head output: relative error {err:.3g} > {TOLERANCE}" if err > TOLERANCE else \
            f"ok (relative error {err:.2g})"
    if dec:
        y = ids(gen, conf.vocab_size, *dec)
        y[:, 0] = 0  # the decoder starts with padding_idx
        inputs["decoder_input"] = y
    with torch.no_grad():
        ref = net(x, y)
    ckpt = os.path.join(work, f"t5.{index}.ckpt")
    sd = net.state_dict()
    if fmt == "zip":
        torch.save(sd, ckpt)
    else:
        st.save(ckpt, dict(sd))
    got, problem = forward(mz, work, model, ckpt, inputs, kwargs)
    os.remove(ckpt)
    if problem:
        return problem
    worst = 0.0
    pairs = [("output", "encoder_output")] if conf.encoder_only else \
        [("output", "decoder_output"), ("encoder_output", "encoder_output")]
    for ours, theirs in pairs:
        want = ref[theirs]
        if ours not in got:
            return f"no '{ours}' in mz's outputs ({sorted(got)})"
        if got[ours].shape != want.shape:
            return f"{ours}: shape {list(got[ours].shape)} != torchtext's {list(want.shape)}"
        if not torch.isfinite(want).all():
            return f"{theirs}: torchtext's output is not finite (bad case)"
        err = rel_err(got[ours], want)
        if err > TOLERANCE:
            return f"{ours}: relative error {err:.3g} > {TOLERANCE}"
        worst = max(worst, err)
    extra = set(got) - {p[0] for p in pairs}
    return f"unexpected outputs {sorted(extra)}" if extra else f"ok (relative error {worst:.2g})"


def check_keys(mz, work):
    """The same key list as torchtext's, in both directions: a missing key and an extra key fail the load."""
    conf = T5Conf(**dict(TINY, linear_head=True))
    sd = T5Model(conf).state_dict()
    inputs = {"input": torch.tensor([[5, 6, 1]])}
    problems = []
    for label, changed in (("missing key", {k: v for k, v in sd.items() if k != "decoder.layers.1.norm3.weight"}),
                           ("extra key", dict(sd, **{"encoder.layers.1.self_attn.relative_attention_bias.weight":
                                                     torch.zeros(32, 2)}))):
        ckpt = os.path.join(work, "keys.pt")
        torch.save(changed, ckpt)
        got, problem = forward(mz, work, "t5_small", ckpt, inputs, dict(TINY, linear_head=True))
        if got is not None:
            problems.append(f"a checkpoint with a {label} loaded")
        elif "decoder.layers.1.norm3.weight" not in problem and "layers.1.self_attn.relative_attention_bias" not in problem:
            problems.append(f"{label}: the error does not name the key: {problem}")
    return "; ".join(problems) or None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mz", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--extended", action="store_true")
    ap.add_argument("--only-extended", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    os.makedirs(a.work, exist_ok=True)
    failures, runs = 0, 0
    for index, case in enumerate(CASES):
        extended = case[5]
        if (extended and not (a.extended or a.only_extended)) or (not extended and a.only_extended):
            continue
        problem = check(a.mz, a.work, case, index)
        note = ""
        if problem and problem.startswith("ok "):
            problem, note = None, problem[3:]
        print(f"{'FAIL' if problem else 'ok  '} t5 {case[0]}" + (f": {problem}" if problem else f" {note}"), flush=True)
        failures += bool(problem)
        runs += 1
    if not a.only_extended:
        problem = check_keys(a.mz, a.work)
        print(f"{'FAIL' if problem else 'ok  '} t5 state-dict keys equal torchtext's" + (f": {problem}" if problem else ""))
        failures += bool(problem)
        runs += 1
    print(f"t5 parity: {runs - failures} passed, {failures} failed")
    return 1 if failures or not runs else 0


if __name__ == "__main__":
    sys.exit(main())
