"""End to end: `mz forward resnet18 --weights <manifest entry>` downloads a real torchvision
checkpoint from loopback nginx, verifies it, loads it and matches torchvision's output."""
import json
import os
import struct
import subprocess
import sys
import unittest

from hubtest import HubCase, read, sha256

MAKE_FIXTURE = r"""
import json, struct, sys, torch, torchvision
torch.manual_seed(0)
out_dir = sys.argv[1]
model = torchvision.models.resnet18(num_classes=10).eval()
torch.save(model.state_dict(), f"{out_dir}/r18.pth")
x = torch.randn(1, 3, 64, 64)
def save(path, name, t):
    data = t.contiguous().numpy().astype("<f4").tobytes()
    header = json.dumps({name: {"dtype": "F32", "shape": list(t.shape), "data_offsets": [0, len(data)]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header + data)
save(f"{out_dir}/in.safetensors", "input", x)
with torch.no_grad():
    save(f"{out_dir}/expected.safetensors", "output", model(x))
"""


def load_safetensor(path, name):
    raw = read(path)
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    begin, end = header[name]["data_offsets"]
    data = raw[8 + n + begin:8 + n + end]
    return header[name]["shape"], struct.unpack(f"<{len(data) // 4}f", data)


class EndToEnd(HubCase):
    servers = ("nginx",)

    def test_forward_with_manifest_weights_from_nginx(self):
        subprocess.run([sys.executable, "-c", MAKE_FIXTURE, self.www], check=True)
        ckpt = read(os.path.join(self.www, "r18.pth"))
        fname = f"r18-{sha256(ckpt)[:8]}.pth"
        os.rename(os.path.join(self.www, "r18.pth"), os.path.join(self.www, fname))
        name = self.add("HUB_E2E", self.nginx.url(fname), ckpt,
                        meta={"categories": [f"class{i}" for i in range(10)], "num_params": 11181642})
        out = self.path("out.safetensors")
        self.mz("forward", "resnet18", "--weights", name, "--input", os.path.join(self.www, "in.safetensors"),
                "--output", out)
        shape, got = load_safetensor(out, "output")
        want_shape, want = load_safetensor(os.path.join(self.www, "expected.safetensors"), "output")
        self.assertEqual(shape, want_shape)
        self.assertLess(max(abs(a - b) for a, b in zip(got, want)), 1e-4)
        self.assertEqual(len([r for r in self.nginx.requests() if r["path"] == "/" + fname]), 1)
        # Cached now: offline works too.
        self.mz("forward", "resnet18", "--weights", name, "--input", os.path.join(self.www, "in.safetensors"),
                "--output", out, env={"MZ_OFFLINE": "1"})


if __name__ == "__main__":
    unittest.main()
