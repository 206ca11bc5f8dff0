#!/usr/bin/python3
"""Dump torchtext 0.14.1's text bundles (RoBERTa / XLM-R encoders, the prototype T5 bundles) as modelzoo
weight-entry JSON (the schema of `mz list --json`).

Run with Debian's /usr/bin/python3. Debian's torchtext has no C++ extension, so the models import
through the shim of the research notes, and each bundle's transform is read by calling its factory
with the transform classes replaced by recorders (no tokenizer runs, nothing is downloaded).
Usage: tt_dump.py OUT.json
"""
import dataclasses
import json
import re
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tt_shim  # noqa: E402


# bundle -> (builder, weight); the weight names are modelzoo's (torchtext has bundles, not enums).
BUNDLES = {
    "ROBERTA_BASE_ENCODER": ("roberta_base", "RoBERTa_Base_Weights.ENCODER"),
    "ROBERTA_LARGE_ENCODER": ("roberta_large", "RoBERTa_Large_Weights.ENCODER"),
    "XLMR_BASE_ENCODER": ("xlmr_base", "XLMR_Base_Weights.ENCODER"),
    "XLMR_LARGE_ENCODER": ("xlmr_large", "XLMR_Large_Weights.ENCODER"),
}


# T5 bundles: T5_{SIZE}{_ENCODER,,_GENERATION} -> (builder, weight); FULL (T5Conf's defaults) is DEFAULT.
T5_SIZES = {"SMALL": "Small", "BASE": "Base", "LARGE": "Large", "3B": "3B", "11B": "11B"}
T5_BUNDLES = {f"T5_{size}{suffix}": (f"t5_{size.lower()}", f"T5_{name}_Weights.{value}", value == "FULL")
              for size, name in T5_SIZES.items()
              for suffix, value in (("_ENCODER", "ENCODER"), ("", "FULL"), ("_GENERATION", "GENERATION"))}


def record_t5_transform(bundle, bundler):
    """T5Transform(sp_model_path, max_seq_len, eos_idx, padding_idx) as data: one step."""
    saved = bundler.T5Transform
    try:
        bundler.T5Transform = lambda *args, **kwargs: [dict(
            {"op": "T5Transform"}, **dict(zip(["sp_model_path", "max_seq_len", "eos_idx", "padding_idx"], args)), **kwargs)]
        return bundle.transform()
    finally:
        bundler.T5Transform = saved


def entry(weight, model, default, url, num_params, doc, extra):
    return {
        "weight": weight,
        "model": model,
        "task": "text",
        "default": default,
        "url": url,
        "hash_prefix": "",
        "meta": {"num_params": num_params, "min_size": None, "categories": None, "metrics": {},
                 "recipe": "", "docs": re.sub(r"\s+", " ", doc or "").strip()},
        "extra_meta_keys": sorted(extra),
        "extra": extra,
        "transforms": {"preset": "TextTransform"},
    }


def record_transform(bundle, bundler):
    """The bundle's transform pipeline as data: each step's class and arguments."""
    T = bundler.T
    saved = {n: getattr(T, n) for n in ("Sequential", "SentencePieceTokenizer", "GPT2BPETokenizer",
                                         "VocabTransform", "Truncate", "AddToken")}
    saved_load = bundler.load_state_dict_from_url

    def step(op, names):
        def make(*args, **kwargs):
            d = {"op": op}
            d.update(zip(names, args))
            d.update(kwargs)
            return d
        return make

    try:
        T.Sequential = lambda *steps: list(steps)
        T.SentencePieceTokenizer = step("SentencePieceTokenizer", ["sp_model_path"])
        T.GPT2BPETokenizer = step("GPT2BPETokenizer", ["encoder_json_path", "vocab_bpe_path"])
        T.VocabTransform = step("VocabTransform", ["vocab"])
        T.Truncate = step("Truncate", ["max_seq_len"])
        T.AddToken = step("AddToken", ["token", "begin"])
        bundler.load_state_dict_from_url = lambda url, *a, **k: url  # the vocab's URL stands for the vocab
        return bundle.transform()
    finally:
        for n, v in saved.items():
            setattr(T, n, v)
        bundler.load_state_dict_from_url = saved_load


def on_meta(build):
    """Builds a module with its parameters on the meta device: shapes without memory or init."""
    import functools
    import torch
    classes = (torch.nn.Embedding, torch.nn.Linear, torch.nn.LayerNorm, torch.nn.TransformerEncoderLayer,
               torch.nn.modules.linear.NonDynamicallyQuantizableLinear)
    saved = {c: c.__init__ for c in classes}

    def patched(init):
        @functools.wraps(init)
        def wrapper(self, *a, **k):
            k.setdefault("device", "meta")
            init(self, *a, **k)
        return wrapper

    try:
        for c in classes:
            c.__init__ = patched(saved[c])
        return build()
    finally:
        for c, init in saved.items():
            c.__init__ = init


def main():
    models = tt_shim.import_torchtext().models
    import torch
    from torchtext.models.roberta import bundler
    out = []
    for bundle_name, (model, weight) in BUNDLES.items():
        bundle = getattr(models, bundle_name)
        conf = bundle._encoder_conf
        num_params = sum(p.numel() for p in on_meta(lambda: models.RobertaModel(conf)).parameters())
        extra = {
            "bundle": bundle_name,
            "config": dataclasses.asdict(conf),
            "text_transform": record_transform(bundle, bundler),
            "padding_value": conf.padding_idx,
        }
        out.append(entry(weight, model, True, bundle._path, num_params, bundle.__doc__, extra))
    import torchtext.prototype.models as prototype
    from torchtext.prototype.models.t5 import bundler as t5_bundler
    for bundle_name, (model, weight, default) in T5_BUNDLES.items():
        bundle = getattr(prototype, bundle_name)
        conf = bundle.config
        # meta parameters (device="meta" reaches the attention projections, which torchtext allocates itself)
        num_params = sum(p.numel() for p in on_meta(lambda: prototype.T5Model(conf, device="meta")).parameters())
        extra = {
            "bundle": bundle_name,
            "config": dataclasses.asdict(conf),
            "text_transform": record_t5_transform(bundle, t5_bundler),
            "padding_value": conf.padding_idx,
        }
        out.append(entry(weight, model, default, bundle._path, num_params, bundle.__doc__, extra))
    with open(sys.argv[1], "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
