#!/usr/bin/python3
"""Writes the checkpoint-format fixtures into OUTDIR (deterministically) plus expected.json.

Good files: real torch.save checkpoints (zip, zip with protocol 4, zip rewritten with zip64 records,
legacy, legacy with protocol 4), a safetensors file written here, and state dicts nested under
"state_dict". Hostile files: crafted bytes that the parsers must refuse with a specific message.
Nothing hostile is ever unpickled here. Run with /usr/bin/python3 (Debian's torch).
"""
import io
import json
import os
import pickle
import pickletools
import struct
import sys
import zipfile
import zlib
from collections import OrderedDict

import torch

ST_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
             torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
             torch.bool: "BOOL"}


def raw(t):
    """Bytes of the tensor's elements in logical (row-major) order."""
    return t.contiguous().flatten().view(torch.uint8).numpy().tobytes()


def plain_state_dict():
    torch.manual_seed(0)
    sd = OrderedDict()
    sd["f32"] = torch.randn(3, 4)
    sd["f64"] = torch.randn(2, 3, dtype=torch.float64)
    sd["f16"] = torch.randn(5).half()
    sd["bf16"] = torch.randn(2, 2).bfloat16()
    sd["i64"] = torch.arange(-3, 3).reshape(2, 3)
    sd["i32"] = torch.tensor([1, -2, 3], dtype=torch.int32)
    sd["i16"] = torch.tensor([[300, -300]], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, 0, 127], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 1, 255], dtype=torch.uint8)
    sd["bool"] = torch.tensor([True, False, True])
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    sd["base"] = base
    sd["transposed"] = base.t()              # non-contiguous, shares base's storage
    sd["view"] = base.view(-1)[5:9]          # storage_offset 5 into the same storage
    sd["scalar"] = torch.tensor(3.5)
    sd["empty"] = torch.zeros(0, 3)
    sd._metadata = OrderedDict([("", {"version": 1}), ("layer", {"version": 2})])
    return sd


def nested_checkpoint():
    torch.manual_seed(1)
    return {"epoch": 3, "state_dict": torch.nn.Linear(4, 3).state_dict(), "best_acc": 0.5}


def describe(sd, contiguous):
    out = []
    for name, t in sd.items():
        out.append({"name": name, "dtype": ST_DTYPES[t.dtype], "shape": list(t.shape),
                    "strides": list(t.contiguous().stride() if contiguous else t.stride()),
                    "storage_offset": 0 if contiguous else t.storage_offset(),
                    "bytes": raw(t).hex(), "values": t.flatten().tolist()})
    return out


def torch_zip(obj, protocol=2):
    buf = io.BytesIO()
    torch.save(obj, buf, pickle_protocol=protocol)
    return buf.getvalue()


def torch_legacy(obj, protocol=2):
    """Legacy torch.save made deterministic: the address-based storage keys are renamed k0, k1, ...
    in order of first use, and the key list and raw storages are put in that order."""
    buf = io.BytesIO()
    torch.save(obj, buf, pickle_protocol=protocol, _use_new_zipfile_serialization=False)
    data = buf.getvalue()
    elsize, keys, keys_pos, pos = legacy_layout(data)
    order = list(elsize)
    rename = {key: "k%d" % i for i, key in enumerate(order)}
    blocks = {}
    for key in keys:
        count = struct.unpack("<Q", data[pos:pos + 8])[0]
        blocks[key], pos = data[pos:pos + 8 + count * elsize[key]], pos + 8 + count * elsize[key]
    assert pos == len(data)
    out = rename_strings(data[:keys_pos], 4, rename) + pickle.dumps([rename[k] for k in order], protocol=protocol)
    out += b"".join(blocks[k] for k in order)
    assert legacy_layout(out)[1] == ["k%d" % i for i in range(len(order))]
    return out


def legacy_layout(data):
    """(element size per storage key in order of first use, key list, offset of the key list, offset
    of the raw storages) of our own legacy file, read with a trusted, restricted unpickler."""
    f, elsize = io.BytesIO(data), OrderedDict()

    class Skim(pickle.Unpickler):  # tensors rebuild to None; only the storage ids matter
        def find_class(self, module, name):
            if name == "OrderedDict":
                return OrderedDict
            return getattr(torch, name) if name.endswith("Storage") else (lambda *args: None)

        def persistent_load(self, pid):
            elsize.setdefault(pid[2], pid[1]().element_size())

    for _ in range(3):
        pickle.load(f)
    Skim(f).load()
    keys_pos = f.tell()
    keys = pickle.load(f)
    return elsize, keys, keys_pos, f.tell()


def rename_strings(data, n_pickles, rename):
    """Rewrites the first n pickles op by op, renaming unicode strings and fixing FRAME lengths."""
    f, out = io.BytesIO(data), bytearray()
    for _ in range(n_pickles):
        ops, frame = list(pickletools.genops(f)), None
        ends = [pos for _, _, pos in ops[1:]] + [f.tell()]
        for (op, arg, pos), end in zip(ops, ends):
            if op.name == "FRAME":
                if frame is not None:
                    out[frame:frame + 8] = struct.pack("<Q", len(out) - frame - 8)
                out += b"\x95"
                frame = len(out)
                out += bytes(8)
            elif op.name in ("BINUNICODE", "SHORT_BINUNICODE") and arg in rename:
                new = rename[arg].encode()
                out += (b"X" + struct.pack("<I", len(new)) if op.name == "BINUNICODE" else b"\x8c" + bytes([len(new)])) + new
            else:
                out += data[pos:end]
        if frame is not None:
            out[frame:frame + 8] = struct.pack("<Q", len(out) - frame - 8)
    return bytes(out) + data[f.tell():]


def zip_entries(data):
    zf = zipfile.ZipFile(io.BytesIO(data))
    return [(i.filename, zf.read(i.filename)) for i in zf.infolist()]


def zip_data_offset(data, name):
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(name)
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    return info.header_offset + 30 + name_len + extra_len


def write_zip(entries, zip64=False, deflate=()):
    """A minimal zip writer: stored entries (or deflated ones named in `deflate`), optional zip64."""
    out, central = bytearray(), []
    for name, data in entries:
        nb = name.encode()
        method = 8 if name in deflate else 0
        payload = data
        if method:
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            payload = c.compress(data) + c.flush()
        crc, offset = zlib.crc32(data), len(out)
        extra, csize, usize = b"", len(payload), len(data)
        if zip64:
            extra, csize, usize = struct.pack("<HHQQ", 1, 16, len(data), len(payload)), 0xFFFFFFFF, 0xFFFFFFFF
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, method, 0, 0x21, crc, csize, usize, len(nb), len(extra))
        out += nb + extra + payload
        central.append((nb, method, crc, len(payload), len(data), offset))
    cd_start = len(out)
    for nb, method, crc, csize, usize, offset in central:
        extra = b""
        if zip64:
            extra = struct.pack("<HHQQQ", 1, 24, usize, csize, offset)
            csize = usize = offset = 0xFFFFFFFF
        out += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, method, 0, 0x21, crc, csize, usize,
                           len(nb), len(extra), 0, 0, 0, 0, offset) + nb + extra
    cd_size, n = len(out) - cd_start, len(central)
    if zip64:
        z64 = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, cd_size, cd_start)
        out += struct.pack("<IIQI", 0x07064B50, 0, z64, 1)
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    else:
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, cd_size, cd_start, 0)
    return bytes(out)


def pickle_zip(pkl):
    return write_zip([("archive/data.pkl", pkl), ("archive/version", b"3\n")])


def safetensors(sd, metadata=None, header_len=None, data_len=None):
    header, data = OrderedDict(), bytearray()
    if metadata:
        header["__metadata__"] = metadata
    for name, t in sd.items():
        b = raw(t)
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [len(data), len(data) + len(b)]}
        data += b
    js = json.dumps(header, separators=(",", ":")).encode()
    js += b" " * (-len(js) % 8)
    n = len(js) if header_len is None else header_len
    return struct.pack("<Q", n) + js + bytes(data[:data_len])


# Hand-written hostile pickles (protocol 2 opcodes).
def binunicode(s):
    return b"X" + struct.pack("<I", len(s)) + s.encode()


OS_SYSTEM = b"\x80\x02cos\nsystem\nq\x00" + binunicode("echo pwned") + b"\x85q\x01Rq\x02."
DEPTH = 200000
NESTED_LISTS = b"\x80\x02" + b"]" * DEPTH + b"a" * (DEPTH - 1) + b"."
NESTED_TUPLES = b"\x80\x02" + b"(" * DEPTH + b"t" * DEPTH + b"."
NESTED_DICTS = b"\x80\x02" + (b"}" + binunicode("k")) * DEPTH + b"}" + b"s" * DEPTH + b"."
NOT_TENSOR = (b"\x80\x02}q\x00(" + binunicode("epoch") + b"K\x03u.")

HTML = b"<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body>Not Found</body></html>\n"


def main(outdir):
    os.makedirs(outdir, exist_ok=True)
    files, expected = {}, {"good": [], "bad": [], "tensor_sets": {}}

    sd, nested = plain_state_dict(), nested_checkpoint()
    expected["tensor_sets"] = {"plain": describe(sd, False), "plain_contiguous": describe(sd, True),
                               "nested": describe(nested["state_dict"], False)}

    def good(name, data, fmt, tensors, data_offsets=None):
        files[name] = data
        entry = {"file": name, "format": fmt, "tensors": tensors}
        if data_offsets:
            entry["data_offsets"] = data_offsets
        expected["good"].append(entry)

    def bad(name, data, error):
        files[name] = data
        expected["bad"].append({"file": name, "error": error})

    zip2 = torch_zip(sd)
    good("good_zip.pth", zip2, "torch-zip", "plain")
    good("good_zip_p4.pth", torch_zip(sd, 4), "torch-zip", "plain")
    good("good_zip64.pth", write_zip(zip_entries(zip2), zip64=True), "torch-zip", "plain")
    legacy = torch_legacy(sd)
    good("good_legacy.pth", legacy, "torch-legacy", "plain")
    good("good_legacy_p4.pth", torch_legacy(sd, 4), "torch-legacy", "plain")
    st = safetensors(sd, {"format": "pt"})
    header_end = 8 + struct.unpack("<Q", st[:8])[0]
    offsets, pos = [], header_end
    for t in sd.values():
        offsets.append(pos)
        pos += len(raw(t))
    good("good.safetensors", st, "safetensors", "plain_contiguous", offsets)
    good("nested_zip.pth", torch_zip(nested), "torch-zip", "nested")
    good("nested_legacy.pth", torch_legacy(nested), "torch-legacy", "nested")
    good("nested.safetensors", safetensors(nested["state_dict"]), "safetensors", "nested")
    # PyTorch's tutorials' training checkpoint: {"model_state_dict": ..., "optimizer_state_dict": ...}
    good("nested_model_state_dict.pth", torch_zip({"epoch": 3, "model_state_dict": nested["state_dict"],
                                                  "optimizer_state_dict": {"state": {}, "param_groups": []}}),
         "torch-zip", "nested")

    # Hostile and broken files.
    bad("empty.pth", b"", "not a checkpoint: file is empty")
    bad("html.pth", HTML, "not a checkpoint: file starts with '<!DOCTYPE html>'")
    bad("os_system.pth", pickle_zip(OS_SYSTEM), "refusing pickle global 'os.system'")
    for kind, pkl in (("lists", NESTED_LISTS), ("tuples", NESTED_TUPLES), ("dicts", NESTED_DICTS)):
        bad("nested_%s.pth" % kind, pickle_zip(pkl), "pickle nested deeper than 1000 levels")
    bad("bad_opcode.pth", pickle_zip(b"\x80\x02\xff."), "unsupported pickle opcode 0xff at offset 48")
    bad("not_tensor.pth", pickle_zip(NOT_TENSOR), "entry 'epoch' is not a tensor (int)")

    start_dir = zipfile.ZipFile(io.BytesIO(zip2)).start_dir
    bad("truncated_cd.pth", zip2[:start_dir + 30], "truncated: zip end of central directory record not found")
    eocd = zip2.rfind(b"PK\x05\x06")
    bad("cd_past_end.pth", zip2[:start_dir + 30] + zip2[eocd:],
        "truncated: zip central directory extends past end of file")
    storage0 = zip_data_offset(zip2, "archive/data/0")
    bad("truncated_storage.pth", zip2[:storage0 + 20], "truncated: zip end of central directory record not found")
    bad("compressed.pth", write_zip(zip_entries(zip2), deflate=("archive/data.pkl",)),
        "zip entry 'archive/data.pkl' is compressed (method 8); torch checkpoints store entries uncompressed")
    fc = torch_zip(OrderedDict([("fc.weight", torch.zeros(10, 100)), ("fc.bias", torch.zeros(10))]))
    short = [(n, d[:40] if n == "archive/data/0" else d) for n, d in zip_entries(fc)]
    bad("short_storage.pth", write_zip(short), "storage 'archive/data/0' holds 40 bytes but tensor 'fc.weight' needs 4000")

    first = legacy_layout(legacy)[3]
    patched = legacy[:first] + struct.pack("<Q", 1 << 40) + legacy[first + 8:]
    bad("legacy_bad_count.pth", patched, "truncated: storage 'k0' claims 1099511627776 elements but only %d bytes remain"
        % (len(legacy) - first - 8))

    st_small = safetensors(OrderedDict([("w", torch.zeros(100))]))
    bad("st_offsets_past_end.safetensors", st_small[:len(st_small) - 360],
        "tensor 'w' data_offsets [0, 400] exceed data size 40")
    for name, n in (("st_header_max.safetensors", 0xFFFFFFFFFFFFFFFF), ("st_header_2p40.safetensors", 1 << 40)):
        data = struct.pack("<Q", n) + b'{"a":1}'
        data += b" " * (200 - len(data))
        bad(name, data, "safetensors header length %d exceeds file size 200" % n)

    for name, data in files.items():
        with open(os.path.join(outdir, name), "wb") as f:
            f.write(data)
    with open(os.path.join(outdir, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fixtures")
