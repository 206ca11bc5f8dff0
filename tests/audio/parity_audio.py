#!/usr/bin/python3
"""Numerical parity of the speech encoders with torchaudio 0.13.1 (random weights).

Tiny wav2vec2_model configurations (both extractor modes x pre/post layer norm x aux on/off x conv bias, odd and
even positional kernels) run through `audio_tool forward` (mz::wav2vec2_model with torchaudio's kwargs); every
registered audio model (`mz list --models --task audio --json`) runs through `mz forward --checkpoint` on about a
second of audio. Both with ragged `lengths` (and once without). `output`, every extract_features layer
(`{"num_layers": k}` writes layer.0 ... layer.<k-1>) and `lengths` must match: relative error <= 1e-4, lengths
exactly, and the strict load means state-dict keys and shapes equal torchaudio's.

Usage: parity_audio.py --mz build/mz --tool build/tests/audio/audio_tool --work DIR [--extended|--only-extended]
Per-model special cases live in the SPECIAL table, nowhere else.
"""
import argparse
import json
import os
import subprocess
import sys

import torch
import torchaudio.models as tam

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
import st  # noqa: E402

TOLERANCE = 1e-4
SMALL_CONV = [[16, 10, 5], [16, 3, 2], [16, 2, 2]]
# name -> torchaudio.models.wav2vec2_model kwargs
TINY = {
    "group_norm_post_ln": dict(extractor_mode="group_norm", extractor_conv_layer_config=SMALL_CONV,
                               extractor_conv_bias=False, encoder_embed_dim=24, encoder_pos_conv_kernel=8,
                               encoder_pos_conv_groups=4, encoder_num_layers=2, encoder_num_heads=3,
                               encoder_ff_interm_features=40, encoder_layer_norm_first=False, aux_num_out=None),
    "layer_norm_pre_ln_aux": dict(extractor_mode="layer_norm", extractor_conv_layer_config=SMALL_CONV,
                                  extractor_conv_bias=True, encoder_embed_dim=16, encoder_pos_conv_kernel=5,
                                  encoder_pos_conv_groups=2, encoder_num_layers=3, encoder_num_heads=4,
                                  encoder_ff_interm_features=32, encoder_layer_norm_first=True, aux_num_out=7),
    "group_norm_pre_ln_aux": dict(extractor_mode="group_norm", extractor_conv_layer_config=SMALL_CONV,
                                  extractor_conv_bias=True, encoder_embed_dim=16, encoder_pos_conv_kernel=6,
                                  encoder_pos_conv_groups=2, encoder_num_layers=2, encoder_num_heads=2,
                                  encoder_ff_interm_features=24, encoder_layer_norm_first=True, aux_num_out=5),
    "layer_norm_post_ln_default_conv": dict(extractor_mode="layer_norm", extractor_conv_layer_config=None,
                                            extractor_conv_bias=False, encoder_embed_dim=32,
                                            encoder_pos_conv_kernel=16, encoder_pos_conv_groups=4,
                                            encoder_num_layers=2, encoder_num_heads=4, encoder_ff_interm_features=48,
                                            encoder_layer_norm_first=False, aux_num_out=3),
}
DROPOUTS = dict(encoder_projection_dropout=0.1, encoder_attention_dropout=0.1, encoder_ff_interm_dropout=0.1,
                encoder_dropout=0.1, encoder_layer_drop=0.1)  # eval mode: no effect on either side

# registered model -> {"extended": only with --extended, "kwargs": preset kwargs (both sides),
#                      "num_layers": layers to compare (default all)}
SPECIAL = {
    "wav2vec2_base": {"kwargs": {"aux_num_out": 29}},
    "hubert_base": {"num_layers": 4},
    "wav2vec2_large": {"extended": True},
    "wav2vec2_large_lv60k": {"extended": True, "kwargs": {"aux_num_out": 32}},
    "hubert_large": {"extended": True},
    "hubert_xlarge": {"extended": True, "num_layers": 2},
}


def randomize(net, gen):
    """Random weights with non-trivial norm parameters and weight-norm magnitudes."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            if "layer_norm" in name or name.endswith("weight_g"):
                p.copy_((1.0 if name.endswith(("weight", "weight_g")) else 0.0) + 0.2 * torch.randn(p.shape, generator=gen))
    return net


def inputs(batch_lengths, gen, ragged):
    t = max(batch_lengths)
    x = torch.randn(len(batch_lengths), t, generator=gen)
    out = {"input": x}
    if ragged:
        out["lengths"] = torch.tensor(batch_lengths, dtype=torch.int64)
    return out


def reference(net, inp, num_layers):
    lengths = inp.get("lengths")
    with torch.no_grad():
        y, out_lengths = net(inp["input"], lengths)
        layers, _ = net.extract_features(inp["input"], lengths, num_layers)
    ref = {"output": y, "lengths": out_lengths if out_lengths is not None else
           torch.full((y.shape[0],), y.shape[1], dtype=torch.int64)}
    ref.update({f"layer.{i}": t for i, t in enumerate(layers)})
    return ref


def compare(got, ref):
    if set(got) != set(ref):
        return f"output keys {sorted(got)} != torchaudio's {sorted(ref)}"
    worst = 0.0
    for k in ref:
        if got[k].shape != ref[k].shape:
            return f"'{k}' shape {list(got[k].shape)} != torchaudio's {list(ref[k].shape)}"
        if k == "lengths":
            if not torch.equal(got[k], ref[k].to(torch.int64)):
                return f"lengths {got[k].tolist()} != torchaudio's {ref[k].tolist()}"
            continue
        err = ((got[k].double() - ref[k].double()).abs().max() / ref[k].double().abs().max().clamp_min(1e-12)).item()
        worst = max(worst, err)
    return None if worst <= TOLERANCE else f"relative error {worst:.3g} > {TOLERANCE}"


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    return None if r.returncode == 0 else f"{os.path.basename(cmd[0])} failed ({r.returncode}): {r.stderr.strip()}"


def check_tiny(name, kwargs, tool, work, gen):
    kw = dict(kwargs, **DROPOUTS)
    net = randomize(tam.wav2vec2_model(**kw), gen).eval()
    problems = []
    ckpt = os.path.join(work, f"{name}.pt")
    torch.save(net.state_dict(), ckpt)
    num_layers = kw["encoder_num_layers"]
    for ragged, lengths in ((True, [1200, 777, 400]), (True, [3000, 2999]), (False, [1000, 1000])):
        inp = inputs(lengths, gen, ragged)
        layers = num_layers if ragged else num_layers - 1
        ref = reference(net, inp, layers)
        opts = {k: v for k, v in kw.items() if v is not None}
        opts["num_layers"] = layers
        paths = [os.path.join(work, f"{name}.{s}") for s in ("json", "in.safetensors", "out.safetensors")]
        with open(paths[0], "w") as f:
            json.dump(opts, f)
        st.save(paths[1], inp)
        err = run([tool, "forward", paths[0], ckpt, paths[1], paths[2]]) or compare(st.load(paths[2]), ref)
        if err:
            problems.append(f"{name} (lengths {lengths if ragged else None}): {err}")
    return problems


def check_model(model, spec, mz, work, gen):
    kwargs = spec.get("kwargs", {})
    net = randomize(getattr(tam, model)(**kwargs), gen).eval()
    ckpt = os.path.join(work, f"{model}.pt")
    torch.save(net.state_dict(), ckpt)
    inp = inputs([16000, 11025], gen, True)
    num_layers = spec.get("num_layers", len(net.encoder.transformer.layers))
    ref = reference(net, inp, num_layers)
    del net
    paths = [os.path.join(work, f"{model}.{s}") for s in ("in.safetensors", "out.safetensors")]
    st.save(paths[0], inp)
    err = run([mz, "forward", model, "--checkpoint", ckpt, "--input", paths[0], "--output", paths[1],
               "--options", json.dumps(dict(kwargs, num_layers=num_layers))]) or compare(st.load(paths[1]), ref)
    for p in [ckpt] + paths:
        if os.path.exists(p):
            os.remove(p)
    return [f"{model}: {err}"] if err else []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mz", required=True)
    ap.add_argument("--tool", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--extended", action="store_true")
    ap.add_argument("--only-extended", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    models = [m["model"] for m in json.loads(subprocess.check_output([a.mz, "list", "--models", "--task", "audio",
                                                                     "--json"]))]
    if not models:
        print("no audio models registered")
        return 1
    problems, passed = [], 0
    if not a.only_extended:
        for name, kwargs in TINY.items():
            p = check_tiny(name, kwargs, a.tool, a.work, gen)
            problems += p
            passed += not p
    for model in models:
        spec = SPECIAL.get(model, {})
        if spec.get("extended") and not (a.extended or a.only_extended):
            continue
        if a.only_extended and not spec.get("extended"):
            continue
        p = check_model(model, spec, a.mz, a.work, gen)
        print(f"{model}: {'ok' if not p else p[0]}", flush=True)
        problems += p
        passed += not p
    for p in problems:
        print(p)
    print(f"{passed} passed, {len(problems)} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
