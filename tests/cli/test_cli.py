#!/usr/bin/python3
"""The mz CLI contract: exit codes with one-line errors, hostile checkpoints, convert, JSON schemas,
forward options, old upstream checkpoints through every --checkpoint command, list for every registered model, and
info and bench for each module class, or for every model with --extended (generic over the registry).

Usage: test_cli.py --mz build/mz --fixtures build/fixtures/formats --work DIR
"""
import argparse
import collections
import json
import os
import shutil
import subprocess
import sys

import torch
import torchvision.models as tvm

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "oracle"))
sys.path.insert(0, os.path.join(HERE, "..", "parity"))
import st  # noqa: E402
from parity import SPECIAL, DEFAULT_SIZE, densenet_v1_key, mnasnet_v1, randomize, save_checkpoint  # noqa: E402
sys.path.insert(0, os.path.join(HERE, "..", "audio"))
from parity_audio import SPECIAL as AUDIO_SPECIAL  # noqa: E402  (the large speech encoders are extended)

# T5 large / 3B / 11B hold 3, 11 and 45 GB of float32 at random init: bench them only with --extended.
T5_SPECIAL = {m: {"extended": True} for m in ("t5_large", "t5_3b", "t5_11b")}
SPECIAL = {**SPECIAL, **AUDIO_SPECIAL, **T5_SPECIAL}

ENTRY_KEYS = {"weight", "model", "task", "default", "url", "hash_prefix", "sha256", "file_size", "meta",
              "transforms", "source"}
META_KEYS = {"num_params", "min_size", "categories", "metrics", "recipe", "docs"}
passed, failed = 0, []


def available_memory():
    """MemAvailable + SwapFree in bytes, as mz's check before a random init reads them."""
    with open("/proc/meminfo") as f:
        kb = {line.split(":")[0]: int(line.split()[1]) for line in f}
    return (kb["MemAvailable"] + kb["SwapFree"]) * 1024


def check(cond, what):
    global passed
    if cond:
        passed += 1
    else:
        failed.append(what)
        print("FAIL", what, flush=True)


def mz(*args):
    return subprocess.run([A.mz, *args], capture_output=True, text=True)


def fails_with(r, code, needle, what):
    lines = r.stderr.strip().splitlines()
    ok = 0 < r.returncode < 128 if code is None else r.returncode == code
    check(ok, f"{what}: exit {r.returncode}, want {code or '1..127'} ({r.stderr.strip()[:200]})")
    check(len(lines) == 1 and lines[0].startswith("mz: ") and needle in lines[0],
          f"{what}: stderr should be one line containing {needle!r}, got {r.stderr!r}")


def test_hostile_checkpoints():
    expected = json.load(open(os.path.join(A.fixtures, "expected.json")))
    bad = {b["file"]: b["error"] for b in expected["bad"]}
    check(len(bad) >= 10, f"hostile fixtures present ({len(bad)})")
    out = os.path.join(A.work, "x.safetensors")
    inp = os.path.join(A.work, "in.safetensors")
    st.save(inp, {"input": torch.randn(1, 3, 32, 32)})
    for name, reason in sorted(bad.items()):
        path = os.path.join(A.fixtures, name)
        fails_with(mz("convert", path, out), 3, f"{path}: {reason}", f"convert {name}")
        fails_with(mz("forward", "resnet18", "--checkpoint", path, "--input", inp, "--output", out), 3,
                   reason, f"forward {name}")
        check(not os.path.exists(out), f"{name}: no output written")


def test_convert_round_trip():
    sd = tvm.resnet18().state_dict()
    for fmt in ("zip", "legacy"):
        src = os.path.join(A.work, f"r18.{fmt}")
        torch.save(sd, src, **({} if fmt == "zip" else {"_use_new_zipfile_serialization": False}))
        dst = os.path.join(A.work, f"r18.{fmt}.safetensors")
        r = mz("convert", src, dst)
        check(r.returncode == 0 and r.stdout.strip().splitlines()[-1] == dst, f"convert {fmt}: {r.stderr}")
        got = st.load(dst)
        check(list(got) == list(sd) and all(torch.equal(got[k], sd[k]) for k in sd), f"convert {fmt}: tensors")


def test_forward_options_and_errors():
    net = tvm.resnet18(num_classes=10).eval()
    ckpt = os.path.join(A.work, "r18_10.pth")
    torch.save(net.state_dict(), ckpt)
    inp, out = os.path.join(A.work, "in.safetensors"), os.path.join(A.work, "out.safetensors")
    x = torch.randn(2, 3, 32, 32)
    st.save(inp, {"input": x})
    r = mz("forward", "resnet18", "--checkpoint", ckpt, "--input", inp, "--output", out, "--num-classes", "10")
    check(r.returncode == 0, f"forward --num-classes: {r.stderr}")
    if r.returncode == 0:
        with torch.no_grad():
            check(torch.allclose(st.load(out)["output"], net(x), rtol=1e-4, atol=1e-5), "forward --num-classes values")
    mapped = os.path.join(A.work, "out_mapped.safetensors")
    r = mz("forward", "resnet18", "--checkpoint", ckpt, "--mmap", "--input", inp, "--output", mapped,
           "--num-classes", "10")
    check(r.returncode == 0 and torch.equal(st.load(mapped)["output"], st.load(out)["output"]),
          f"forward --mmap gives the copy's output exactly: {r.stderr}")
    r = mz("forward", "resnet18", "--checkpoint", ckpt, "--input", inp, "--output", out, "--options",
           '{"num_classes": 10}')
    check(r.returncode == 0, f"forward --options: {r.stderr}")
    fails_with(mz("forward", "resnet18", "--checkpoint", ckpt, "--input", inp, "--output", out), 4,
               "2 mismatched: fc.weight: checkpoint [10, 512] vs module [1000, 512], fc.bias", "class-count mismatch")
    fails_with(mz("forward", "resnet34", "--checkpoint", ckpt, "--input", inp, "--output", out,
                  "--num-classes", "10"), 4, "missing: layer1.2.conv1.weight", "wrong architecture")
    fails_with(mz("forward", "resnet18", "--checkpoint", ckpt, "--input", inp, "--output", out, "--options",
                  '{"num_clases": 10}'), 2, "unknown option 'num_clases'", "unknown option")
    fails_with(mz("forward", "resnet18", "--checkpoint", ckpt, "--input", inp, "--output", out, "--options",
                  "{not json"), 2, "--options: not valid JSON", "bad JSON")
    fails_with(mz("forward", "resnet18", "--checkpoint", ckpt, "--input", inp, "--output", out, "--options",
                  '{"num_classes": 10.5}'), 2, "option 'num_classes' cannot be 10.5", "a fractional class count")
    int_inp = os.path.join(A.work, "int_in.safetensors")
    st.save(int_inp, {"input": torch.zeros(1, 3, 32, 32, dtype=torch.int64)})
    if os.path.exists(out):
        os.remove(out)
    fails_with(mz("forward", "resnet18", "--checkpoint", ckpt, "--input", int_inp, "--output", out, "--num-classes",
                  "10"), 2, "input: must be floating point", "an int64 input")
    check(not os.path.exists(out), "an int64 input: no output written")
    fails_with(mz("forward", "resnet18", "--checkpoint", ckpt, "--weights", "ResNet18_Weights.IMAGENET1K_V1",
                  "--input", inp, "--output", out), None, "excludes", "both --checkpoint and --weights")
    fails_with(mz("forward", "resnet18", "--checkpoint", ckpt, "--input", ckpt, "--output", out,
                  "--num-classes", "10"), 2,
               "no tensor named 'input'", "input without 'input'")
    fails_with(mz("forward", "resnet18", "--checkpoint", ckpt, "--input", inp, "--output", out, "--num-classes", "10",
                  "--dense"), 2, "--dense: resnet18 has no dense outputs", "--dense on a classifier")
    fails_with(mz("info", "resnet51"), 2, "resnet51: unknown model (did you mean: resnet50", "unknown model")
    fails_with(mz("info", "ResNet50_Weights.V9"), 2, "unknown weights", "unknown weight")
    fails_with(mz("frobnicate"), 2, "unknown command 'frobnicate'", "unknown subcommand")
    fails_with(mz("forward", "resnet18"), None, "required", "missing required option")
    check(mz("--help").returncode == 0 and "forward" in mz("--help").stdout, "--help lists subcommands")


def test_old_checkpoints():
    """Files in upstream's old layouts load through forward, bench and predict --checkpoint (the adaptation hook)."""
    inp, out = os.path.join(A.work, "in_old.safetensors"), os.path.join(A.work, "out_old.safetensors")
    x = torch.randn(1, 3, 32, 32)
    st.save(inp, {"input": x})
    cases = [("resnet18", tvm.resnet18(), lambda k: k), ("densenet121", tvm.densenet121(), densenet_v1_key),
             ("mnasnet0_5", mnasnet_v1(tvm.mnasnet0_5()), lambda k: k)]
    for name, net, old_key in cases:
        net.eval()
        randomize(net, torch.Generator().manual_seed(7))
        ckpt = os.path.join(A.work, f"{name}-old.pth")
        save_checkpoint(net.state_dict(), ckpt, "old", old_key)
        for mmap in ([], ["--mmap"]):
            r = mz("forward", name, "--checkpoint", ckpt, *mmap, "--input", inp, "--output", out)
            check(r.returncode == 0, f"forward {name} {mmap} old checkpoint: {r.stderr.strip()}")
            if r.returncode == 0:
                with torch.no_grad():
                    check(torch.allclose(st.load(out)["output"], net(x), rtol=1e-4, atol=1e-5),
                          f"forward {name} {mmap} old checkpoint: values")
        r = mz("bench", name, "--checkpoint", ckpt, "--size", "32", "--repeat", "1", "--json")
        check(r.returncode == 0, f"bench {name} old checkpoint: {r.stderr.strip()}")
        image = os.path.join(HERE, "..", "images", "sample.png")
        r = mz("predict", name, image, "--checkpoint", ckpt, "--json")
        check(r.returncode == 0 and len(json.loads(r.stdout)) == 1, f"predict {name} old checkpoint: {r.stderr.strip()}")

    # ViT trained at 32 px, run at 64 px: the position embeddings are interpolated on load, as
    # torchvision's interpolate_embeddings does.
    from torchvision.models.vision_transformer import interpolate_embeddings
    at32 = tvm.vit_b_16(image_size=32).eval()
    ckpt = os.path.join(A.work, "vit32.pth")
    torch.save(at32.state_dict(), ckpt)
    at64 = tvm.vit_b_16(image_size=64).eval()
    at64.load_state_dict(interpolate_embeddings(64, 16, at32.state_dict()))
    x64 = torch.randn(1, 3, 64, 64)
    st.save(inp, {"input": x64})
    r = mz("forward", "vit_b_16", "--checkpoint", ckpt, "--input", inp, "--output", out, "--options",
           '{"image_size": 64}')
    check(r.returncode == 0, f"forward vit_b_16 at 64 from a 32 checkpoint: {r.stderr.strip()}")
    if r.returncode == 0:
        with torch.no_grad():
            check(torch.allclose(st.load(out)["output"], at64(x64), rtol=1e-4, atol=1e-5),
                  "forward vit_b_16 at 64 from a 32 checkpoint: values")


def test_front_end():
    """`mz` runs download, verify and cache without LibTorch and hands every other command to mz-torch."""
    ldd = subprocess.run(["ldd", A.mz], capture_output=True, text=True).stdout
    check(ldd and "libtorch" not in ldd and "libc10" not in ldd, "mz does not link LibTorch")
    lone = os.path.join(A.work, "alone", "mz")  # without mz-torch next to it
    os.makedirs(os.path.dirname(lone), exist_ok=True)
    shutil.copy(A.mz, lone)
    env = {**os.environ, "MZ_CACHE_DIR": os.path.join(A.work, "front-cache")}
    r = subprocess.run([lone, "cache", "dir"], capture_output=True, text=True, env=env)
    check(r.returncode == 0 and r.stdout.strip() == env["MZ_CACHE_DIR"], f"cache dir without mz-torch: {r.stderr}")
    r = subprocess.run([lone, "verify"], capture_output=True, text=True, env=env)
    check(r.returncode == 0 and "no cached files" in r.stdout, f"verify without mz-torch: {r.stderr}")
    r = subprocess.run([lone, "download", "ResNet50_Weights.V9"], capture_output=True, text=True, env=env)
    fails_with(r, 2, "ResNet50_Weights.V9: unknown weights (did you mean: ResNet50_Weights.", "front end: unknown weight")
    r = subprocess.run([lone, "list"], capture_output=True, text=True, env=env)
    fails_with(r, 1, "cannot run " + os.path.join(os.path.dirname(lone), "mz-torch"), "front end without mz-torch")
    torch_cli = os.path.join(os.path.dirname(A.mz), "mz-torch")
    for args in (["download", "ResNet50_Weights.V9"], ["cache", "frob"]):
        a = subprocess.run([A.mz, *args], capture_output=True, text=True, env=env)
        b = subprocess.run([torch_cli, *args], capture_output=True, text=True, env=env)
        check((a.returncode, a.stderr) == (b.returncode, b.stderr), f"mz and mz-torch agree on {args}")


def test_json_schemas():
    entries = json.loads(mz("list", "--json").stdout)
    check(len(entries) > 0, "list --json has entries")
    for e in entries:
        check(set(e) == ENTRY_KEYS, f"{e['weight']}: entry keys {sorted(e)}")
        check(META_KEYS <= set(e["meta"]), f"{e['weight']}: meta keys {sorted(e['meta'])}")
    one = json.loads(mz("list", "resnet50", "--json").stdout)
    check([e["weight"] for e in one] == ["ResNet50_Weights.IMAGENET1K_V1", "ResNet50_Weights.IMAGENET1K_V2"],
          "list GLOB filters")
    info = json.loads(mz("info", "ResNet50_Weights.IMAGENET1K_V2", "--json").stdout)
    check(info == next(e for e in entries if e["weight"] == "ResNet50_Weights.IMAGENET1K_V2"), "info == list entry")
    check(info["meta"]["metrics"]["ImageNet-1K"]["acc@1"] == 80.858 and info["default"], "info values")
    table = mz("list", "--markdown").stdout.splitlines()
    check(len(table) == len(entries) + 2, "markdown table has a row per weight")


def test_doctor():
    """mz doctor reports what the process runs with: threads and their source, the BLAS (OpenBLAS, which
    scripts/build.sh installs), oneDNN, and malloc keeping freed memory unless GLIBC_TUNABLES sets malloc."""
    r = mz("doctor", "--json")
    check(r.returncode == 0, f"doctor --json: {r.stderr}")
    if r.returncode:
        return
    d = json.loads(r.stdout)
    check("openblas" in (d["blas"] or "") and not d["reference_blas"], f"doctor: the BLAS is OpenBLAS: {d['blas']}")
    check(d["onednn"] is True and d["keeps_freed_memory"] is True, f"doctor: oneDNN and malloc: {d}")
    r = mz("doctor", "--json", "--threads", "2")
    check(r.returncode == 0 and json.loads(r.stdout)["threads"] == 2 and
          json.loads(r.stdout)["threads_source"] == "MZ_NUM_THREADS or --threads", f"doctor --threads 2: {r.stdout}")
    env = dict(os.environ, GLIBC_TUNABLES="glibc.malloc.trim_threshold=131072")
    r = subprocess.run([A.mz, "doctor", "--json"], capture_output=True, text=True, env=env)
    check(r.returncode == 0 and json.loads(r.stdout)["keeps_freed_memory"] is False,
          f"doctor: GLIBC_TUNABLES's malloc settings win: {r.stdout}")
    r = mz("doctor")
    check(r.returncode == 0 and "malloc            keeps freed memory" in r.stdout, f"doctor's text: {r.stdout}")
    # OpenBLAS's kernels, forced each way: AVX2 ones on an AVX-512 CPU draw the warning, Skylake-X ones do not.
    flags = set(open("/proc/cpuinfo").read().split())
    avx512 = {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags
    for core, below in (("Haswell", avx512), ("SkylakeX", False)):
        r = subprocess.run([A.mz, "doctor", "--json"], capture_output=True, text=True,
                           env=dict(os.environ, OPENBLAS_CORETYPE=core))
        d = json.loads(r.stdout) if r.returncode == 0 else {}
        if core == "SkylakeX" and not avx512:
            continue  # OpenBLAS refuses kernels the CPU cannot run
        check(d.get("openblas_core", "").lower() == core.lower() and d.get("openblas_below_cpu") is below and
              ("AVX2 kernels" in r.stderr) is below, f"doctor with OPENBLAS_CORETYPE={core}: {r.stdout} {r.stderr}")


def sample(models, params):
    """The models to run info and bench on: with --extended every one; otherwise, for each module class, the one with
    the fewest parameters. A class's models share its info and bench paths (example inputs, run, outputs), and each
    run builds the model at random init: seconds for the largest, and LibTorch's start-up for every one."""
    if A.extended:
        return [m["model"] for m in models]
    smallest = {}
    for m in models:
        key = (params.get(m["model"], 0), m["model"])
        if m["module"] not in smallest or key < smallest[m["module"]]:
            smallest[m["module"]] = key
    return sorted(name for _, name in smallest.values())


def test_every_model():
    """Every registered model has exactly one default weight and names its module class (`mz list`); info and bench
    run for the smallest model of each module class, or with --extended for every model, SPECIAL's extended ones
    included."""
    models = [m for m in json.loads(mz("list", "--models", "--json").stdout)
              if A.extended or not SPECIAL.get(m["model"], {}).get("extended")]
    entries = json.loads(mz("list", "--json").stdout)
    defaults = collections.Counter(e["model"] for e in entries if e["default"])
    params = {e["model"]: e["meta"]["num_params"] for e in entries if e["default"] and e["meta"].get("num_params")}
    module = {m["model"]: m["module"] for m in models}
    for name in module:
        check(defaults[name] == 1 and module[name], f"list: {name} has one default weight and a module class")
    check(len(set(module.values())) >= 25, f"module classes: {sorted(set(module.values()))}")
    for name in sample(models, params):
        info = json.loads(mz("info", name, "--json").stdout)
        check(info["model"] == name and info["default"] in info["weights"] and info["module"] == module[name],
              f"info {name}")
        size = SPECIAL.get(name, {}).get("size", DEFAULT_SIZE)
        kwargs = json.dumps(SPECIAL.get(name, {}).get("kwargs", {}))
        r = mz("bench", name, "--size", str(size), "--repeat", "1", "--json", "--options", kwargs)
        ok = r.returncode == 0
        if kwargs == "{}" and 4 * params.get(name, 0) > available_memory():  # t5_11b here: 45 GB
            check(r.returncode == 1 and f"mz: {name}: its {params[name]} parameters need" in r.stderr
                  and "GB this machine has available" in r.stderr, f"bench {name} refuses for memory: {r.stderr}")
            continue
        check(ok, f"bench {name}: {r.stderr.strip()}")
        if ok:
            b = json.loads(r.stdout)
            check(all(k in b for k in ("load_ms", "forward_ms", "peak_rss_mb")), f"bench {name} fields")
            check(b["optimized"] is None, f"bench {name}: 'optimized' without --optimize")
    r = mz("bench", "resnet18", "--size", "64", "--repeat", "1", "--json", "--optimize")
    b = json.loads(r.stdout) if r.returncode == 0 else {}
    o = b.get("optimized") or {}
    check(o.get("folded") == 20 and o.get("channels_last") == 20 and o.get("prepacked") in (0, 20)
          and o.get("blocked") in (0, o.get("prepacked"))
          and o.get("max_relative_error", 1) <= 1e-4, f"bench --optimize reports what it did: {r.stdout}{r.stderr}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--mz", required=True)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--extended", action="store_true")
    A = ap.parse_args()
    os.makedirs(A.work, exist_ok=True)
    torch.manual_seed(0)
    for t in (test_hostile_checkpoints, test_convert_round_trip, test_forward_options_and_errors, test_old_checkpoints,
              test_front_end, test_doctor,
              test_json_schemas, test_every_model):
        t()
    print(f"cli: {passed} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)
