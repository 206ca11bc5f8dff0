#!/usr/bin/python3
"""Dump torchaudio 0.13.1's wav2vec 2.0 / HuBERT bundles as modelzoo weight-entry JSON (the schema of `mz list --json`).

A bundle is Enum.VALUE with VALUE the bundle's name (torchaudio.pipelines.WAV2VEC2_ASR_BASE_960H ->
Wav2Vec2Base_Weights.WAV2VEC2_ASR_BASE_960H); the model is the preset whose architecture the bundle's `_params`
build, and DEFAULT is the preset's pretrained (not fine-tuned) bundle. meta: num_params of
wav2vec2_model(**_params), docs (the bundle's docstring), and the extra keys sample_rate, params (`_params`),
labels (get_labels()) and remove_aux_axis (`_remove_aux_axis`) for the ASR bundles; "extra_meta" gives their values.
Run with Debian's /usr/bin/python3. Usage: ta_dump.py OUT.json
"""
import json
import re
import sys

import torch
import torchaudio.pipelines as P
from torchaudio.models import wav2vec2_model
from torchaudio.pipelines._wav2vec2.impl import Wav2Vec2ASRBundle, Wav2Vec2Bundle

URL = "https://download.pytorch.org/torchaudio/models/"
# architecture (extractor mode, conv bias, embed dim, layers, layer norm first) -> (preset, enum, DEFAULT bundle)
MODELS = {
    ("group_norm", False, 768, 12, False): ("wav2vec2_base", "Wav2Vec2Base_Weights", "WAV2VEC2_BASE"),
    ("group_norm", False, 1024, 24, False): ("wav2vec2_large", "Wav2Vec2Large_Weights", "WAV2VEC2_LARGE"),
    ("layer_norm", True, 1024, 24, True): ("wav2vec2_large_lv60k", "Wav2Vec2LargeLV60K_Weights", "WAV2VEC2_LARGE_LV60K"),
    ("layer_norm", False, 1024, 24, True): ("hubert_large", "HuBERTLarge_Weights", "HUBERT_LARGE"),
    ("layer_norm", False, 1280, 48, True): ("hubert_xlarge", "HuBERTXLarge_Weights", "HUBERT_XLARGE"),
}
HUBERT_BASE = ("hubert_base", "HuBERTBase_Weights", "HUBERT_BASE")  # wav2vec2_base's architecture


def model_of(name, params):
    if name == "HUBERT_BASE":
        return HUBERT_BASE
    key = (params["extractor_mode"], params["extractor_conv_bias"], params["encoder_embed_dim"],
           params["encoder_num_layers"], params["encoder_layer_norm_first"])
    return MODELS[key]


def num_params(params):
    saved = {n: getattr(torch.nn.init, n) for n in ("kaiming_uniform_", "uniform_", "normal_")}
    for n in saved:  # counting needs no random init (hubert_xlarge would take a minute)
        setattr(torch.nn.init, n, lambda t, *a, **k: t)
    try:
        return sum(p.numel() for p in wav2vec2_model(**params).parameters())
    finally:
        for n, f in saved.items():
            setattr(torch.nn.init, n, f)


def bundles():
    return sorted((n, getattr(P, n)) for n in dir(P) if isinstance(getattr(P, n), Wav2Vec2Bundle))


def entry(name, b, counts):
    params = dict(b._params)
    if params.get("extractor_conv_layer_config") is not None:
        params["extractor_conv_layer_config"] = [list(c) for c in params["extractor_conv_layer_config"]]
    model, enum, default = model_of(name, b._params)
    key = json.dumps(params, sort_keys=True)
    if key not in counts:
        counts[key] = num_params(b._params)
    extra = {"sample_rate": b.sample_rate, "params": params}
    if isinstance(b, Wav2Vec2ASRBundle):
        extra["labels"] = list(b.get_labels())
        extra["remove_aux_axis"] = list(b._remove_aux_axis)
    return {
        "weight": f"{enum}.{name}",
        "model": model,
        "task": "audio",
        "default": name == default,
        "url": URL + b._path,
        "hash_prefix": "",
        "meta": {"num_params": counts[key], "min_size": None, "categories": None, "metrics": {}, "recipe": "",
                 "docs": re.sub(r"\s+", " ", b.__doc__ or "").strip()},
        "extra_meta_keys": sorted(extra),
        "extra_meta": extra,
        "transforms": {"preset": "AudioResample"},
    }


def main():
    counts = {}
    out = [entry(n, b, counts) for n, b in bundles()]
    with open(sys.argv[1], "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
