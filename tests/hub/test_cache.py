"""The cache, verify, offline mode, mirrors, torch.hub reuse and `mz cache` (nginx + fault server)."""
import json
import os
import pty
import random
import subprocess
import unittest

from hubtest import MZ, HubCase, Nginx, read, sha256

MiB = 1 << 20


class Cache(HubCase):
    servers = ("nginx", "faults")

    def setUp(self):
        super().setUp()
        self.data = self.put("w-1234abcd.pth", random.Random(7).randbytes(2 * MiB))
        self.name = self.add("W", self.nginx.url("w-1234abcd.pth"), self.data)

    def full_downloads(self):
        return [r for r in self.nginx.requests() if r["path"] == "/w-1234abcd.pth" and r["status"] == 200]

    def test_cache_dir_and_layout(self):
        self.assertEqual(self.mz("cache", "dir").stdout.strip(), self.cache)
        path = self.download(self.name)
        self.assertTrue(path.startswith(os.path.join(self.cache, "blobs") + os.sep), path)
        self.assertEqual(os.path.basename(path), "w-1234abcd.pth")
        record = json.loads(read(path + ".json"))
        self.assertEqual(record["sha256"], sha256(self.data))
        self.assertEqual(record["size"], len(self.data))
        self.assertEqual(record["url"], self.nginx.url("w-1234abcd.pth"))
        p = self.mz("cache", "dir", env={"MZ_CACHE_DIR": "", "XDG_CACHE_HOME": ""})
        self.assertEqual(p.stdout.strip(), os.path.join(os.environ.get("HOME", "/root"), ".cache", "modelzoo"))
        p = self.mz("cache", "dir", env={"MZ_CACHE_DIR": "", "XDG_CACHE_HOME": self.path("xdg")})
        self.assertEqual(p.stdout.strip(), self.path("xdg", "modelzoo"))

    def test_second_download_is_a_cache_hit(self):
        a = self.download(self.name)
        b = self.download(self.name)
        self.assertEqual(a, b)
        self.assertEqual(len(self.full_downloads()), 1)

    def test_progress_bar_only_on_a_tty(self):
        p = self.mz("download", self.name)
        self.assertEqual(p.stderr, "")
        self.mz("cache", "rm", self.name)
        master, slave = pty.openpty()
        e = dict(self.env)
        proc = subprocess.Popen([MZ, "download", self.name], env=e, stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        proc.communicate(timeout=60)
        os.close(master)
        self.assertEqual(proc.returncode, 0)
        text = out.decode()
        self.assertIn(self.name, text)
        self.assertIn("100%", text)
        self.assertIn("/s", text)

    def test_download_json(self):
        p = self.mz("download", self.name, "--json")
        out = json.loads(p.stdout)
        self.assertEqual(out, [{"weight": self.name, "path": out[0]["path"], "sha256": sha256(self.data),
                                "size": len(self.data)}])

    def test_verify_catches_corruption(self):
        path = self.download(self.name)
        p = self.mz("verify")
        self.assertIn("OK", p.stdout)
        st = os.stat(path)
        with open(path, "r+b") as f:  # flip one byte, keep size and mtime: the cheap check passes
            f.seek(12345)
            b = f.read(1)
            f.seek(12345)
            f.write(bytes([b[0] ^ 0xFF]))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        p = self.mz("verify", check=False)
        self.assert_fails(p, 5, "1 of 1 files failed verification")
        self.assertIn("FAILED", p.stdout)
        self.assertIn("sha256 mismatch", p.stdout)
        p = self.mz("verify", self.name, check=False)
        self.assert_fails(p, 5, "failed verification")
        self.assertEqual(self.download(self.name), path)  # cheap check: size + stamp
        self.assertEqual(len(self.full_downloads()), 1)
        p = self.mz("download", "--verify", self.name)  # re-hash: caught, removed, fetched again
        self.assertIn("failed verification", p.stderr)
        self.assertEqual(read(path), self.data)
        self.assertEqual(len(self.full_downloads()), 2)
        self.mz("verify", self.name)

    def test_touched_file_is_rehashed(self):
        path = self.download(self.name)
        with open(path, "r+b") as f:  # corrupt and let mtime change: the stamp no longer matches
            f.write(b"\0" * 16)
        path2 = self.download(self.name)
        self.assertEqual(path2, path)
        self.assertEqual(read(path), self.data)
        self.assertEqual(len(self.full_downloads()), 2)

    def test_offline(self):
        other = self.add("OTHER", self.nginx.url("other.pth"), self.put("other.pth", b"x" * 1000))
        path = self.download(self.name)
        before = len(self.nginx.requests())
        self.assertEqual(self.download(self.name, env={"MZ_OFFLINE": "1"}), path)
        p = self.mz("download", other, env={"MZ_OFFLINE": "1"}, check=False)
        self.assert_fails(p, 5, other, "offline mode is on")
        self.assertEqual(len(self.nginx.requests()), before)

    def test_mirrors_in_order_then_upstream_never_needed(self):
        name = self.add("M", self.faults.url("upstream/w-1234abcd.pth"), self.data)
        mirrors = f"{self.faults.url('nothere')} ; {self.faults.url('ok/')}"
        path = self.download(name, env={"MZ_MIRROR": mirrors})
        self.assertEqual(read(path), self.data)
        self.assertEqual([r["path"] for r in self.faults.requests()], ["/nothere/w-1234abcd.pth", "/ok/w-1234abcd.pth"])
        self.assertEqual(json.loads(read(path + ".json"))["source"], self.faults.url("ok/w-1234abcd.pth"))

    def test_all_sources_failing_names_each(self):
        name = self.add("M", self.faults.url("upstream/w-1234abcd.pth"), self.data)
        p = self.mz("download", name, env={"MZ_MIRROR": self.faults.url("nothere")}, check=False)
        self.assert_fails(p, 5, name, "every source failed", "/nothere/w-1234abcd.pth: HTTP 404",
                          "/upstream/w-1234abcd.pth: HTTP 404")

    def test_file_mirror_works_offline(self):
        mirror = self.path("mirror")
        os.makedirs(mirror)
        with open(os.path.join(mirror, "w-1234abcd.pth"), "wb") as f:
            f.write(self.data)
        path = self.download(self.name, env={"MZ_MIRROR": "file://" + mirror, "MZ_OFFLINE": "1"})
        self.assertEqual(read(path), self.data)
        self.assertEqual(self.nginx.requests(), [])
        self.mz("verify", self.name)

    def test_bad_file_mirror_falls_back_to_upstream(self):
        mirror = self.path("mirror")
        os.makedirs(mirror)
        with open(os.path.join(mirror, "w-1234abcd.pth"), "wb") as f:
            f.write(b"not the weights")
        path = self.download(self.name, env={"MZ_MIRROR": "file://" + mirror})
        self.assertEqual(read(path), self.data)
        self.assertEqual(len(self.full_downloads()), 1)

    def test_torch_hub_cache_reused_when_it_verifies(self):
        ckpt = self.path("torch", "hub", "checkpoints")
        os.makedirs(ckpt)
        with open(os.path.join(ckpt, "w-1234abcd.pth"), "wb") as f:
            f.write(self.data)
        path = self.download(self.name)
        self.assertEqual(read(path), self.data)
        self.assertEqual(self.nginx.requests(), [])
        self.assertEqual(json.loads(read(path + ".json"))["source"], os.path.join(ckpt, "w-1234abcd.pth"))
        self.assertIn("pruned 0 file(s)", self.mz("cache", "prune").stdout)
        self.assertEqual(read(path), self.data)
        # A torch.hub file that does not verify is left alone and the file is downloaded.
        self.mz("cache", "rm", self.name)
        with open(os.path.join(ckpt, "w-1234abcd.pth"), "wb") as f:
            f.write(self.data[:-1] + b"!")
        self.assertEqual(read(self.download(self.name)), self.data)
        self.assertEqual(len(self.full_downloads()), 1)

    def test_same_file_name_from_two_urls_never_collides(self):
        a = self.put("a/weights.pth", b"A" * 5000)
        b = self.put("b/weights.pth", b"B" * 7000)
        na = self.add("A", self.nginx.url("a/weights.pth"), a)
        nb = self.add("B", self.nginx.url("b/weights.pth"), b)
        pa, pb = self.download(na), self.download(nb)
        self.assertNotEqual(pa, pb)
        self.assertEqual((read(pa), read(pb)), (a, b))
        self.assertEqual(read(self.download(na)), a)
        # The same URL expected with another digest gets its own path too.
        nc = self.add("C", self.nginx.url("a/weights.pth"), a, digest=sha256(b"another version"))
        p = self.mz("download", nc, check=False)
        self.assert_fails(p, 5, "sha256 mismatch")
        self.assertEqual(read(pa), a)

    def test_cache_ls_rm_prune(self):
        path = self.download(self.name)
        ls = json.loads(self.mz("cache", "ls", "--json").stdout)
        self.assertEqual([(e["weight"], e["path"], e["size"]) for e in ls], [(self.name, path, len(self.data))])
        blob_dir = os.path.dirname(path)
        junk = [os.path.join(blob_dir, "w-1234abcd.pth.123-abc.part"), os.path.join(blob_dir, "w-1234abcd.pth.123-abc.part.json"),
                os.path.join(blob_dir, "stray.bin"), os.path.join(blob_dir, "gone.pth.json")]
        for j in junk:
            with open(j, "w") as f:
                f.write("{}")
        p = self.mz("cache", "prune")
        for j in junk:
            self.assertFalse(os.path.exists(j), j)
            self.assertIn(j, p.stdout)
        self.assertTrue(os.path.exists(path))
        with open(path, "r+b") as f:  # corrupt: prune removes it
            f.write(b"\0" * 8)
        self.mz("cache", "prune")
        self.assertFalse(os.path.exists(path))
        path = self.download(self.name)
        self.assertIn("removed " + path, self.mz("cache", "rm", self.name).stdout)
        self.assertFalse(os.path.exists(path))
        path = self.download(self.name)
        self.mz("cache", "rm", path)
        self.assertFalse(os.path.exists(path))
        p = self.mz("cache", "rm", self.name, check=False)
        self.assert_fails(p, 2, "not in the cache")

    def test_verify_with_empty_cache_and_uncached_name(self):
        self.assertIn("no cached files", self.mz("verify").stdout)
        p = self.mz("verify", self.name, check=False)
        self.assert_fails(p, 5, "1 of 1 files failed verification")
        self.assertIn("not in the cache", p.stdout)


class Https(HubCase):
    """A self-signed loopback HTTPS server: fails with a hint, works once MZ_CA_BUNDLE names the CA."""

    def setUp(self):
        super().setUp()
        cert, key = self.path("cert.pem"), self.path("key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                        "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
        self.cert = cert
        os.makedirs(self.path("tls"))
        self.nginx = Nginx(self.www, self.path("tls"), tls=(cert, key))
        for k in ("CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR"):
            self.env.pop(k, None)
        self.data = self.put("s.pth", b"secure" * 1000)
        self.name = self.add("S", self.nginx.url("s.pth"), self.data)

    def test_untrusted_certificate_names_the_fix(self):
        p = self.mz("download", self.name, check=False)
        self.assert_fails(p, 5, self.name, self.nginx.url("s.pth"), "MZ_CA_BUNDLE")

    def test_ca_bundle_variables(self):
        for var in ("MZ_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
            path = self.download(self.name, env={var: self.cert})
            self.assertEqual(read(path), self.data)
            self.mz("cache", "rm", self.name)


class Manifests(HubCase):
    servers = ()

    def entry(self, **over):
        e = {"weight": "ResNet18_Weights.ACME_V1", "model": "resnet18", "url": "http://127.0.0.1:9/acme.pth",
             "sha256": "ab" * 32, "file_size": 10}
        e.update(over)
        return {k: v for k, v in e.items() if v is not None}

    def info(self, *entries, extra=None):
        self.write_manifest(list(entries))
        env = {"MZ_MANIFEST": self.manifest + (":" + extra if extra else "")}
        return self.mz("info", "ResNet18_Weights.ACME_V1", "--json", env=env, check=False)

    def test_good_manifest_registers_weights(self):
        p = self.info(self.entry())
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["url"], "http://127.0.0.1:9/acme.pth")
        self.assertIn("ResNet18_Weights.ACME_V1", self.mz("list", "resnet18").stdout)

    def check_bad(self, *needles, entries=None, extra=None):
        p = self.info(*(entries or []), extra=extra)
        return self.assert_fails(p, 2, *needles)

    def test_missing_field(self):
        self.check_bad(self.manifest, "ResNet18_Weights.ACME_V1", "missing field 'url'", entries=[self.entry(url=None)])

    def test_missing_sha256(self):
        self.check_bad(self.manifest, "ResNet18_Weights.ACME_V1", "missing field 'sha256'",
                       entries=[self.entry(sha256=None)])

    def test_bad_digest(self):
        self.check_bad(self.manifest, "ResNet18_Weights.ACME_V1", "sha256 must be 64 lower-case hex digits",
                       entries=[self.entry(sha256="1234")])

    def test_unknown_model(self):
        self.check_bad(self.manifest, "ResNet18_Weights.ACME_V1", "unknown model 'nosuchnet'",
                       entries=[self.entry(model="nosuchnet")])

    def test_enum_of_another_model(self):
        self.check_bad(self.manifest, "ResNet50_Weights.ACME_V1", "must be named ResNet18_Weights",
                       entries=[self.entry(weight="ResNet50_Weights.ACME_V1")])

    def test_clash_with_different_data(self):
        other = self.path("other.json")
        self.write_manifest([self.entry(url="http://127.0.0.1:9/different.pth")], path=other)
        self.check_bad(other, "ResNet18_Weights.ACME_V1", "clashes", self.manifest,
                       entries=[self.entry()], extra=other)

    def test_same_entry_twice_is_fine(self):
        other = self.path("other.json")
        self.write_manifest([self.entry()], path=other)
        p = self.info(self.entry(), extra=other)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_clash_with_builtin(self):
        self.check_bad(self.manifest, "ResNet18_Weights.IMAGENET1K_V1", "clashes",
                       entries=[self.entry(weight="ResNet18_Weights.IMAGENET1K_V1")])

    def test_not_a_manifest(self):
        with open(self.manifest, "w") as f:
            f.write('{"schema": "something/else", "weights": []}')
        p = self.mz("list", check=False)
        self.assert_fails(p, 2, self.manifest, "modelzoo.weights/1")
        with open(self.manifest, "w") as f:
            f.write("not json")
        self.assert_fails(self.mz("list", check=False), 2, self.manifest, "not valid JSON")


if __name__ == "__main__":
    unittest.main()
