#!/usr/bin/python3
"""Every checkpoint of the shared real-world corpus (../shared/corpus/checkpoints) through `mz convert`, against Python.

    test_checkpoint_corpus.py --mz build/mz [--corpus DIR] [--work DIR] [--timeout SECONDS] [--verbose]

The reference is what Python makes of the file: torch.load(path, weights_only=True) (torch 1.13.1), or, for a file
that is no pickle, a strict safetensors parse (the format's rules; values read with tests/oracle/st.py). On the
result, mz's state-dict rule (weights/checkpoint/formats/formats.h): a dict whose "state_dict" key, or else whose
"model_state_dict" key, or else whose "model" key, holds a dict stands for that dict; then a state dict is a dict of
str -> torch.Tensor of a dtype safetensors and mz share. A dict with one other key holding a state dict is a state
dict to Python that mz does not look for (REFUSED lists such files).
- A state dict: `mz convert FILE OUT` succeeds and OUT holds the same tensors exactly (names, dtypes, shapes, and
  the bytes of the values, so NaN payloads and -0.0 count).
- Anything else (hostile pickles, plain pickles, bare tensors, lists, numpy arrays, broken files): mz refuses it
  with a typed error: an exit code in 1..127 (no signal, no crash), one stderr line naming the file, no OUT left.
- Files where mz and Python disagree on purpose are listed in REFUSED (Python reads a state dict, mz refuses) and
  ACCEPTED (mz converts what Python refuses), each with the reason; any other disagreement fails, and a listed
  file that no longer disagrees fails too (update the table).

Safety: the ps_* files run shell commands if unpickled without restriction. They are only ever torch.load'ed with
weights_only=True, and a zip holding TorchScript (constants.pkl), which torch 1.13's torch.load hands to
torch.jit.load even under weights_only, is never passed to torch.load: Python's answer for it is "refused".

Exits 77 (ctest: skipped) with a message when the corpus folder does not exist, as in a user's clone.
"""
import argparse
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import warnings
import zipfile

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "oracle"))
import corpus  # noqa: E402
import st  # noqa: E402

ST_DTYPES = {"F32": (torch.float32, 4), "F64": (torch.float64, 8), "F16": (torch.float16, 2),
             "BF16": (torch.bfloat16, 2), "I64": (torch.int64, 8), "I32": (torch.int32, 4), "I16": (torch.int16, 2),
             "I8": (torch.int8, 1), "U8": (torch.uint8, 1), "BOOL": (torch.bool, 1)}
MZ_DTYPES = {d for d, _ in ST_DTYPES.values()}
NOT_CHECKPOINTS = ("SOURCES.txt", "MANIFEST.tsv", "README.md")

# Files Python reads as a state dict that mz refuses on purpose, by the reason. (Files both refuse are no
# disagreement and are not listed: e.g. FluxML's F8_E4M3 safetensors, which neither torch 1.13 nor mz can hold.)
REFUSED = {}
# Files Python refuses that mz converts, by the reason. None today.
ACCEPTED = {}


def reason_in(table, name):
    for reason, names in table.items():
        if name in names:
            return reason
    return None


class Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise Timeout()


def is_torchscript_zip(path):
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("constants.pkl") for n in z.namelist())
    except Exception:  # noqa: BLE001 (not a zip, or a broken one: torch.load decides)
        return False


def strict_safetensors(path):
    """A flat dict of tensors, or raises ValueError: the safetensors format's rules, strictly (JSON object, no
    duplicate names, str -> str __metadata__, exactly dtype/shape/data_offsets, a dtype torch 1.13 has, offsets inside
    the data section holding exactly shape x itemsize bytes). Holes or overlaps between tensors' data, which the
    safetensors library refuses, are not checked (mz does not either; no corpus file has them)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError("shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ValueError(f"header length {n} exceeds the file")

    def no_duplicates(pairs):
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            raise ValueError("duplicate key in the header")
        return dict(pairs)

    try:
        header = json.loads(blob[8:8 + n].decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"header is not JSON: {e}") from e
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    data_len = len(blob) - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise ValueError("__metadata__ is not a str -> str object")
            continue
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise ValueError(f"{name!r}: entry is not {{dtype, shape, data_offsets}}")
        if info["dtype"] not in ST_DTYPES:
            raise ValueError(f"{name!r}: dtype {info['dtype']!r} has no torch 1.13 dtype")
        shape, offs = info["shape"], info["data_offsets"]
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise ValueError(f"{name!r}: bad shape {shape!r}")
        if not isinstance(offs, list) or len(offs) != 2 or not all(type(o) is int for o in offs) \
                or not 0 <= offs[0] <= offs[1] <= data_len:
            raise ValueError(f"{name!r}: bad data_offsets {offs!r} (data section {data_len} bytes)")
        numel = 1
        for d in shape:
            numel *= d
        if offs[1] - offs[0] != numel * ST_DTYPES[info["dtype"]][1]:
            raise ValueError(f"{name!r}: {offs[1] - offs[0]} bytes for shape {shape}")
    return st.load(path)


def python_reference(path, timeout):
    """(state dict, None) or (None, why Python refuses it as a state dict)."""
    with open(path, "rb") as f:
        head = f.read(4)
    obj, errors = None, []
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    try:
        if head == b"PK\x03\x04" and is_torchscript_zip(path):
            errors.append("a TorchScript zip (not torch.load'ed: torch 1.13 would run torch.jit.load)")
        else:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    obj = torch.load(path, map_location="cpu", weights_only=True)
            except Timeout:
                raise
            except Exception as e:  # noqa: BLE001 (the unpickler raises many types)
                msg = str(e).split("WeightsUnpickler error: ")[-1].splitlines()
                errors.append(f"torch.load: {type(e).__name__}: {msg[0] if msg else ''}")
            if obj is None and not errors:
                errors.append("torch.load gives None")
        if errors and head != b"PK\x03\x04":  # no pickle: a safetensors file (its length byte can be 0x80)
            try:
                obj, errors = strict_safetensors(path), []
            except (ValueError, KeyError, RuntimeError) as e:
                errors.append(f"safetensors: {e}")
    except Timeout:
        return None, f"Python took over {timeout} s"  # (SIGALRM: interrupts Python code, not one long C call)
    finally:
        signal.alarm(0)
    if errors:
        return None, "; ".join(errors)
    return state_dict_of(obj)


def flat_problem(d):
    """Why the dict d is not a state dict mz can write (str -> tensor of a shared dtype), or None."""
    for k, v in d.items():
        if not isinstance(k, str):
            return f"a {type(k).__name__} key"
        if type(v) not in (torch.Tensor, torch.nn.Parameter):
            return f"entry {k!r} is a {type(v).__name__}, not a tensor"
        if v.dtype not in MZ_DTYPES:
            return f"entry {k!r} has dtype {v.dtype}, which safetensors/mz do not share"
    return None


def state_dict_of(obj):
    """(state dict, None) or (None, why not), by mz's rule (formats.h): the root dict, or its "state_dict", else
    "model_state_dict", else "model" dict. A root whose one other key holds a state dict is a state dict to Python
    that mz does not look for: such files must be listed in REFUSED."""
    if not isinstance(obj, dict):
        return None, f"Python reads a {type(obj).__name__}, not a state dict"
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(obj.get(key), dict):
            why = flat_problem(obj[key])
            return (None, f"under {key!r}: {why}") if why else (dict(obj[key]), None)
    why = flat_problem(obj)
    if why is None:
        return dict(obj), None
    nested = [v for v in obj.values() if isinstance(v, dict) and v and flat_problem(v) is None]
    if len(nested) == 1:
        return dict(nested[0]), None
    return None, why


def raw(t):
    return t.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def compare(want, got):
    problems = []
    if set(want) != set(got):
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        problems.append(f"names differ: missing {missing[:5]}, extra {extra[:5]}")
    for name in sorted(set(want) & set(got)):
        w, g = want[name], got[name]
        if w.dtype != g.dtype or tuple(w.shape) != tuple(g.shape):
            problems.append(f"{name}: {g.dtype} {tuple(g.shape)}, Python has {w.dtype} {tuple(w.shape)}")
        elif raw(w) != raw(g):
            problems.append(f"{name}: values differ")
    return problems


def run_mz(mz, path, out, timeout):
    try:
        p = subprocess.run([mz, "convert", path, out], capture_output=True, text=True, errors="replace",
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout} s"
    return p.returncode, p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mz", required=True)
    ap.add_argument("--corpus", default=corpus.folder("checkpoints"))
    ap.add_argument("--work", default=None)
    ap.add_argument("--timeout", type=int, default=60, help="seconds per file, for mz and for Python each")
    ap.add_argument("--verbose", action="store_true", help="one line per file: Python's and mz's verdicts")
    a = ap.parse_args()
    if corpus.missing(a.corpus, "formats_checkpoint_corpus"):
        return corpus.SKIP
    work = a.work or tempfile.mkdtemp(prefix="mz-ckcorpus-")
    os.makedirs(work, exist_ok=True)
    names = sorted(f for f in os.listdir(a.corpus)
                   if os.path.isfile(os.path.join(a.corpus, f)) and f not in NOT_CHECKPOINTS)
    for table in (REFUSED, ACCEPTED):
        for listed in (n for ns in table.values() for n in ns):
            if listed not in names:
                print(f"{listed}: listed in a table but not in the corpus")
                return 1
    problems = []
    counts = {"state dicts converted": 0, "refused": 0, "refused by policy": 0, "known disagreements": 0}
    for name in names:
        path = os.path.join(a.corpus, name)
        out = os.path.join(work, "out.safetensors")
        if os.path.exists(out):
            os.remove(out)
        want, why = python_reference(path, a.timeout)
        rc, err = run_mz(a.mz, path, out, a.timeout)
        converted = rc == 0
        refused, accepted = reason_in(REFUSED, name), reason_in(ACCEPTED, name)
        if a.verbose:
            py = f"state dict of {len(want)}" if want is not None else f"refused ({why})"
            print(f"{name}: python {py}; mz exit {rc}" + ("" if converted else f": {err.strip()[:200]}"))
        if rc is None:
            problems.append(f"{name}: mz convert {err}")
            continue
        if why and why.startswith("Python took over"):
            problems.append(f"{name}: no reference: {why}")
            continue
        if rc < 0 or rc > 127:
            problems.append(f"{name}: mz convert died (exit {rc}): {err.strip()[:300]}")
            continue
        if refused or accepted:
            counts["refused by policy" if refused else "known disagreements"] += 1
            if refused and (want is None or converted):
                problems.append(f"{name}: listed in REFUSED ({refused}) but no longer behaves so: update the table")
                continue
            if accepted and (want is not None or not converted):
                problems.append(f"{name}: listed in ACCEPTED ({accepted}) but no longer behaves so: update the table")
                continue
            if accepted:
                continue
        elif want is not None:
            counts["state dicts converted"] += 1
            if not converted:
                problems.append(f"{name}: Python reads a state dict of {len(want)} tensors, mz refuses it "
                                f"(exit {rc}): {err.strip()}")
                continue
            try:
                got = st.load(out)
            except Exception as e:  # noqa: BLE001
                problems.append(f"{name}: mz's output does not read back: {type(e).__name__}: {e}")
                continue
            problems += [f"{name}: {p}" for p in compare(want, got)]
            continue
        else:
            counts["refused"] += 1
            if converted:
                problems.append(f"{name}: mz converts it, but Python refuses it ({why})")
                continue
        # mz must have refused it with a typed error.
        lines = err.strip().splitlines()
        if len(lines) != 1 or path not in lines[0]:
            problems.append(f"{name}: mz's refusal (exit {rc}) is not one stderr line naming the file: {lines[:3]}")
        if os.path.exists(out):
            problems.append(f"{name}: mz refused it (exit {rc}) but left {out} behind")
    return corpus.summary("formats_checkpoint_corpus", len(names), counts, problems)


if __name__ == "__main__":
    sys.exit(main())
