#!/usr/bin/python3
"""Audio in and `mz transcribe` against Python pipelines (soundfile 0.12.1, torchaudio 0.13.1).

1. Decoding and resampling: tones and noise made with sox at 8, 16, 22.05, 44.1 and 48 kHz, mono and stereo, 8/16/24-bit
   and float WAV, FLAC and Ogg/Vorbis. mz's frames equal soundfile's (float32, same libsndfile) exactly, and the
   mono mix-down resampled to 16 kHz is within 1e-5 of torchaudio.functional.resample(mean of channels).
   resample() alone, on random signals from 1 sample to several kernels long, batched and not, float32 and float64,
   down and up between common and odd rates: the same shape as torchaudio.functional.resample, within 1e-5.
2. Bad input: corrupt data, an unsupported format, zero-length audio and a rate that cannot be resampled are typed
   errors (exit 8) that name the file; a truncated file decodes to the frames soundfile gives.
3. `mz transcribe` equals soundfile + torchaudio resample + the model + greedy CTC, on espeak-ng speech, with a
   synthetic checkpoint in torchaudio's layout: aux as released (the bundle's rows still to drop, loaded in the
   oracle through the bundle's own get_model with its URL loader patched) and as trimmed, for an English bundle
   and for VoxPopuli ES (rows 1, 2, 3, 35).

Usage: test_audio_io.py --mz build/mz --tool build/tests/audio/audio_tool --work DIR
"""
import argparse
import json
import os
import subprocess
import sys

import soundfile as sf
import torch
import torchaudio.functional as F
import torchaudio.models as tam
import torchaudio.pipelines as P
import torchaudio.pipelines._wav2vec2.impl as impl

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "oracle"))
import st  # noqa: E402

RATES = (8000, 16000, 22050, 44100, 48000)
# (extension, sox encoding arguments, channels, signal)
VARIANTS = (
    ("wav", ["-e", "unsigned-integer", "-b", "8"], 1, ["sine", "440"]),
    ("wav", ["-e", "signed-integer", "-b", "16"], 2, ["sine", "440", "sine", "660"]),
    ("wav", ["-e", "signed-integer", "-b", "24"], 1, ["whitenoise"]),
    ("wav", ["-e", "floating-point", "-b", "32"], 2, ["whitenoise", "sine", "300"]),
    ("flac", ["-b", "16"], 1, ["pinknoise"]),
    ("flac", ["-b", "24"], 2, ["sine", "1000", "whitenoise"]),
    ("ogg", [], 2, ["sine", "440", "sine", "880"]),
)
problems = []


def fail(what):
    problems.append(what)
    print("FAIL", what, flush=True)


def sox(out, rate, enc, channels, signal, seconds="0.35"):
    subprocess.check_call(["sox", "-n", "-r", str(rate), "-c", str(channels)] + enc + [out, "synth", seconds] + signal
                          + ["vol", "0.5"])


def python_waveform(path, rate=16000):
    data, sr = sf.read(path, dtype="float32", always_2d=True)
    decoded = torch.from_numpy(data)
    return decoded, F.resample(decoded.mean(1), sr, rate)


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


def check_decode(tool, work):
    files = []
    for rate in RATES:
        for i, (ext, enc, channels, signal) in enumerate(VARIANTS):
            path = os.path.join(work, f"tone_{rate}_{i}.{ext}")
            sox(path, rate, enc, channels, signal)
            files.append(path)
    r = run([tool, "load", "16000"] + [x for p in files for x in (p, p + ".safetensors")])
    if r.returncode:
        return fail(f"audio_tool load failed: {r.stderr.strip()}")
    for path in files:
        got = st.load(path + ".safetensors")
        decoded, ref = python_waveform(path)
        if not torch.equal(got["decoded"], decoded):
            fail(f"{path}: decoded frames differ from soundfile's")
        elif got["waveform"].shape != ref.shape:
            fail(f"{path}: {list(got['waveform'].shape)} samples, torchaudio has {list(ref.shape)}")
        else:
            err = (got["waveform"] - ref).abs().max().item()
            if err > 1e-5:
                fail(f"{path}: resampled waveform differs by {err:.3g} > 1e-5")
    print(f"decode + resample: {len(files)} files checked", flush=True)


def check_resample(tool, work):
    pairs = [(44100, 16000), (48000, 16000), (22050, 16000), (8000, 16000), (16000, 44100), (16000, 8000),
             (32000, 16000), (16000, 22050), (3, 2), (2, 7), (11025, 8000)]
    gen = torch.Generator().manual_seed(0)
    inputs = {}
    for orig, new in pairs:
        for length in (1, 2, 7, 37, 160, 441, 1000, 4411, 9000):
            inputs[f"{orig}_{new}_{length}"] = torch.randn(length, generator=gen)
        inputs[f"{orig}_{new}_batch"] = torch.randn(2, 3, 1234, generator=gen)
        inputs[f"{orig}_{new}_double"] = torch.randn(2345, generator=gen, dtype=torch.float64)
    src, dst = os.path.join(work, "resample_in.safetensors"), os.path.join(work, "resample_out.safetensors")
    st.save(src, inputs)
    r = run([tool, "resample", src, dst])
    if r.returncode:
        return fail(f"audio_tool resample failed: {r.stderr.strip()}")
    got = st.load(dst)
    for name, x in inputs.items():
        orig, new = (int(v) for v in name.split("_")[:2])
        ref = F.resample(x, orig, new)
        if got[name].shape != ref.shape or got[name].dtype != ref.dtype:
            fail(f"resample {name}: {list(got[name].shape)} {got[name].dtype}, torchaudio has {list(ref.shape)} "
                 f"{ref.dtype}")
        elif ref.numel() and (got[name] - ref).abs().max().item() > 1e-5:
            fail(f"resample {name}: differs by {(got[name] - ref).abs().max().item():.3g} > 1e-5")
    print(f"resample: {len(inputs)} signals checked", flush=True)


def expect_error(cmd, path, words, code=8):
    r = run(cmd)
    if r.returncode != code or path not in r.stderr or not all(w in r.stderr for w in words):
        fail(f"{' '.join(cmd[:2])} {os.path.basename(path)}: want exit {code} naming the file and {words}, got "
             f"{r.returncode}: {r.stderr.strip()}")


def check_bad_input(tool, work):
    corrupt = os.path.join(work, "corrupt.wav")
    with open(corrupt, "wb") as f:
        f.write(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4)
    text = os.path.join(work, "notes.txt")
    with open(text, "w") as f:
        f.write("not audio at all\n" * 50)
    empty = os.path.join(work, "empty.wav")
    sf.write(empty, torch.zeros(0, 1).numpy(), 16000)
    odd = os.path.join(work, "odd_rate.wav")
    sox(odd, 44101, ["-b", "16"], 1, ["sine", "440"])
    slow = os.path.join(work, "one_hertz.wav")  # 20 000 frames "at 1 Hz" would be 320 M samples at 16 kHz
    sf.write(slow, torch.zeros(20000, 1).numpy(), 1, subtype="PCM_16")
    out = os.path.join(work, "bad.safetensors")
    expect_error([tool, "load", "16000", slow, out], slow, ["20000 frames at 1 Hz would be over 268435456 samples"])
    expect_error([tool, "load", "16000", corrupt, out], corrupt, [])
    expect_error([tool, "load", "16000", text, out], text, ["unsupported"])
    expect_error([tool, "load", "16000", empty, out], empty, ["zero-length"])
    expect_error([tool, "load", "16000", odd, out], odd, ["cannot resample 44101 Hz"])
    full = os.path.join(work, "tone_44100_1.wav")
    cut = os.path.join(work, "truncated.wav")
    with open(full, "rb") as f:
        blob = f.read()
    with open(cut, "wb") as f:
        f.write(blob[: len(blob) * 3 // 5 + 1])  # mid-frame
    r = run([tool, "load", "16000", cut, out])
    decoded, ref = python_waveform(cut)
    if r.returncode:
        fail(f"truncated file: {r.stderr.strip()}")
    elif not torch.equal(st.load(out)["decoded"], decoded) or decoded.shape[0] >= len(blob) // 4 - 20:
        fail("truncated file: frames differ from soundfile's (or it was not truncated)")
    print("bad input: checked", flush=True)
    return corrupt


def asr_checkpoint(bundle, work, name):
    """Random weights for the bundle's architecture; the released aux layout has the bundle's rows still in it."""
    gen = torch.Generator().manual_seed(7)
    net = tam.wav2vec2_model(**bundle._params)
    with torch.no_grad():
        for n, p in net.named_parameters():
            if "layer_norm" in n or n.endswith("weight_g"):
                p.copy_((1.0 if n.endswith(("weight", "weight_g")) else 0.0) + 0.2 * torch.randn(p.shape, generator=gen))
        net.aux.weight.mul_(20)  # spread the logits: no near-ties for argmax
    trimmed = net.state_dict()
    released = dict(trimmed)
    rows = bundle._params["aux_num_out"] + len(bundle._remove_aux_axis)
    for key in ("aux.weight", "aux.bias"):
        t = trimmed[key]
        full = torch.randn((rows,) + tuple(t.shape[1:]), generator=gen) * 50  # would win argmax if kept
        keep = [i for i in range(rows) if i not in bundle._remove_aux_axis]
        full[keep] = t
        released[key] = full
    paths = {}
    for kind, sd in (("released", released), ("trimmed", trimmed)):
        paths[kind] = os.path.join(work, f"{name}.{kind}.pth")
        torch.save(sd, paths[kind])
    return paths


def python_transcribe(bundle, released_path, files):
    real = impl.load_state_dict_from_url
    impl.load_state_dict_from_url = lambda url, **kw: torch.load(released_path)
    try:
        model = bundle.get_model()  # the bundle's own loader drops the aux rows
    finally:
        impl.load_state_dict_from_url = real
    labels = bundle.get_labels()
    out = []
    for path in files:
        _, wave = python_waveform(path, bundle.sample_rate)
        with torch.inference_mode():
            emissions, _ = model(wave[None])
        ids = torch.argmax(emissions[0], dim=-1)
        collapsed = [i for i in torch.unique_consecutive(ids).tolist() if i != 0]
        text = " ".join("".join(labels[i] for i in collapsed).replace("|", " ").strip().split())
        out.append({"file": path, "text": text, "ids": ids.tolist()})
    return out


def check_transcribe(mz, work, corrupt):
    speech = os.path.join(work, "speech.wav")
    subprocess.check_call(["espeak-ng", "-w", speech, "hello world, this is a test of speech recognition"])
    stereo = os.path.join(work, "speech_48k_stereo.flac")
    subprocess.check_call(["sox", speech, "-r", "48000", "-c", "2", "-b", "24", stereo])
    files = [speech, stereo]
    for bundle_name, weight in (("WAV2VEC2_ASR_BASE_960H", "Wav2Vec2Base_Weights.WAV2VEC2_ASR_BASE_960H"),
                                ("VOXPOPULI_ASR_BASE_10K_ES", "Wav2Vec2Base_Weights.VOXPOPULI_ASR_BASE_10K_ES")):
        bundle = getattr(P, bundle_name)
        paths = asr_checkpoint(bundle, work, bundle_name)
        want = python_transcribe(bundle, paths["released"], files)
        r = run([mz, "transcribe", weight, *files, "--checkpoint", paths["released"], "--json"])
        got = json.loads(r.stdout) if r.returncode == 0 else r.stderr.strip()
        if got != want:
            fail(f"mz transcribe {bundle_name} (released aux): {json.dumps(got)[:300]} != {json.dumps(want)[:300]}")
        # Trimmed aux, plain text: one line per file; a corrupt file then stops it (exit 8, the file named).
        r = run([mz, "transcribe", weight, *files, corrupt, "--checkpoint", paths["trimmed"]])
        lines = "".join(w["text"] + "\n" for w in want)
        if r.returncode != 8 or r.stdout != lines or corrupt not in r.stderr:
            fail(f"mz transcribe {bundle_name} (trimmed aux): {r.returncode} {r.stdout!r} {r.stderr.strip()!r}, "
                 f"want 8 {lines!r} naming {corrupt}")
        for p in paths.values():
            os.remove(p)
        print(f"transcribe {bundle_name}: {want[0]['text'][:40]!r}", flush=True)
    expect_error([mz, "transcribe", "Wav2Vec2Base_Weights.WAV2VEC2_BASE", speech], "WAV2VEC2_BASE", ["ASR"], code=2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mz", required=True)
    ap.add_argument("--tool", required=True)
    ap.add_argument("--work", required=True)
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    torch.set_num_threads(1)
    check_decode(a.tool, a.work)
    check_resample(a.tool, a.work)
    corrupt = check_bad_input(a.tool, a.work)
    check_transcribe(a.mz, a.work, corrupt)
    for p in problems:
        print(p)
    print(f"{0 if problems else 1} passed, {1 if problems else 0} failed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
