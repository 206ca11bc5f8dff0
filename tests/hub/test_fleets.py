"""Lock files and mirrors (README "Lock files", "Mirrors"): nginx on loopback only.

Upstream (https://download.pytorch.org for the builtin text records) is made unreachable by a dead
https proxy on 127.0.0.1, so a test that would touch it fails instead of leaving the machine.
"""
import json
import os
import shutil

from hubtest import HubCase, Nginx, free_port, read, sha256

ROBERTA = {  # the builtin roberta_base record's files (no digest upstream: trust on first use)
    "roberta.base.encoder.pt": b"encoder weights " * 1000,
    "gpt2_bpe_encoder.json": b'{"a": 1}',
    "gpt2_bpe_vocab.bpe": b"#version: 0.2\n",
    "roberta.vocab.pt": b"vocab" * 100,
}


class Fleet(HubCase):
    servers = ("nginx",)

    def setUp(self):
        super().setUp()
        self.env.update({"https_proxy": f"http://127.0.0.1:{free_port()}", "no_proxy": "127.0.0.1",
                         "NO_PROXY": "127.0.0.1", "MZ_RETRIES": "0"})
        self.a = self.put("a-11111111.pth", b"weights A" * 5000)
        self.b = self.put("b.pth", b"weights B" * 3000)
        self.A = self.add("HUB_A", self.nginx.url("a-11111111.pth"), self.a)
        self.B = self.add("HUB_B", self.nginx.url("b.pth"), self.b, size=False)
        self.lockfile = self.path("mz.lock")

    def lock(self, *names, check=True, **kw):
        return self.mz("lock", *names, "--output", self.lockfile, check=check, **kw)

    def read_lock(self):
        with open(self.lockfile) as f:
            return json.load(f)

    def write_lock(self, j):
        with open(self.lockfile, "w") as f:
            json.dump(j, f)

    def serve_roberta(self):
        for name, data in ROBERTA.items():
            self.put(name, data)
        return {"MZ_MIRROR": self.nginx.url("")}

    # ---- mz download of a text weight -------------------------------------------------------------
    def test_download_fetches_the_assets_then_the_weight(self):
        env = self.serve_roberta()
        p = self.mz("download", "RoBERTa_Base_Weights.ENCODER", env=env)
        lines = p.stdout.split()
        self.assertEqual(len(lines), 4)
        self.assertEqual(read(lines[-1]), ROBERTA["roberta.base.encoder.pt"])  # the weight's path stays last
        self.assertEqual(sorted(read(x) for x in lines[:-1]),
                         sorted(d for n, d in ROBERTA.items() if n != "roberta.base.encoder.pt"))
        j = json.loads(self.mz("download", "RoBERTa_Base_Weights.ENCODER", "--json", env={**env, "MZ_OFFLINE": "1"}).stdout)
        self.assertEqual(j[0]["sha256"], sha256(ROBERTA["roberta.base.encoder.pt"]))
        self.assertEqual(sorted((os.path.basename(x["url"]), x["sha256"]) for x in j[0]["assets"]),
                         sorted((n, sha256(d)) for n, d in ROBERTA.items() if n != "roberta.base.encoder.pt"))
        # offline from now on: the tokenizer finds its files in the cache (these fake ones then fail to parse)
        p = self.mz("tokenize", "roberta_base", "hello", env={**env, "MZ_OFFLINE": "1"}, check=False)
        self.assertNotIn("not in the cache", p.stderr)

    # ---- mz lock ------------------------------------------------------------------------------
    def test_lock_records_digests_sizes_and_trust(self):
        self.lock(self.A, self.B)
        j = self.read_lock()
        self.assertEqual(j["modelzoo_lock"], 1)
        a, b = j["weights"]
        self.assertEqual((a["weight"], a["url"], a["sha256"], a["size"], a["trust"]),
                         (self.A, self.nginx.url("a-11111111.pth"), sha256(self.a), len(self.a), "record"))
        # the record has the digest but no size: downloaded once to learn it
        self.assertEqual((b["sha256"], b["size"], b["trust"]), (sha256(self.b), len(self.b), "record"))
        self.assertEqual([r["path"] for r in self.nginx.requests()], ["/b.pth"])
        self.assertEqual(j["defaults"], {})
        self.assertNotIn("trust_on_first_use", j)

    def test_lock_a_model_name_pins_default_and_assets_on_first_use(self):
        env = self.serve_roberta()
        p = self.lock("roberta_base", env=env)
        self.assertIn("(first use)", p.stdout)
        j = self.read_lock()
        self.assertEqual(j["defaults"], {"RoBERTa_Base_Weights": "ENCODER"})
        (w,) = j["weights"]
        self.assertEqual(w["weight"], "RoBERTa_Base_Weights.ENCODER")
        self.assertEqual(w["url"], "https://download.pytorch.org/models/text/roberta.base.encoder.pt")
        self.assertEqual((w["sha256"], w["trust"]), (sha256(ROBERTA["roberta.base.encoder.pt"]), "first-use"))
        self.assertEqual(sorted(os.path.basename(x["url"]) for x in w["assets"]),
                         sorted(n for n in ROBERTA if n != "roberta.base.encoder.pt"))
        for x in w["assets"]:
            self.assertEqual((x["sha256"], x["size"], x["trust"]),
                             (sha256(ROBERTA[os.path.basename(x["url"])]), len(ROBERTA[os.path.basename(x["url"])]),
                              "first-use"))
        self.assertIn("first download", j["trust_on_first_use"])

    def test_lock_add_keeps_entries(self):
        self.lock(self.A)
        self.mz("lock", "--add", self.B, "--output", self.lockfile)
        self.assertEqual([w["weight"] for w in self.read_lock()["weights"]], [self.A, self.B])
        self.lock(self.B)  # without --add: a new lock
        self.assertEqual([w["weight"] for w in self.read_lock()["weights"]], [self.B])

    # ---- enforcement --------------------------------------------------------------------------
    def test_weight_missing_from_the_lock_says_how_to_add_it(self):
        self.lock(self.A)
        for how in ({"env": {"MZ_LOCKFILE": self.lockfile}}, {"args": ("--lock", self.lockfile)}):
            p = self.mz("download", self.B, *how.get("args", ()), env=how.get("env"), check=False)
            self.assert_fails(p, 5, self.B, f"not in the lock file {self.lockfile}",
                              f"mz lock --add {self.B} --output {self.lockfile}")
        self.assertEqual(self.cached_files(), [])
        self.assertEqual(self.download(self.A, env={"MZ_LOCKFILE": self.lockfile}), self.download(self.A))

    def test_default_resolves_to_the_locked_value(self):
        self.lock(self.A)
        j = self.read_lock()
        j["defaults"] = {"ResNet18_Weights": "HUB_A"}
        self.write_lock(j)
        path = self.download("ResNet18_Weights.DEFAULT", env={"MZ_LOCKFILE": self.lockfile})
        self.assertEqual(read(path), self.a)
        p = self.mz("download", "ResNet50_Weights.DEFAULT", env={"MZ_LOCKFILE": self.lockfile}, check=False)
        self.assert_fails(p, 5, "pins no DEFAULT for ResNet50_Weights", "mz lock --add ResNet50_Weights.DEFAULT")

    def test_locked_digest_differs_from_the_file(self):
        self.lock(self.A)
        j = self.read_lock()
        other = sha256(b"something else")
        j["weights"][0]["sha256"] = other
        self.write_lock(j)
        p = self.mz("download", self.A, env={"MZ_LOCKFILE": self.lockfile}, check=False)
        self.assert_fails(p, 5, self.A, f"sha256 mismatch: expected {other}, got {sha256(self.a)}")
        self.assertEqual([f for f in self.cached_files() if not f.endswith(".lock")], [])
        # cached before the lock was edited: an error too, and the registry's file stays
        path = self.download(self.A)
        p = self.mz("download", self.A, env={"MZ_LOCKFILE": self.lockfile}, check=False)
        self.assert_fails(p, 5, "does not match the lock file", f"expected {other}")
        self.assertEqual(read(path), self.a)

    def test_a_moved_record_fetches_the_locked_url(self):
        self.lock(self.A)
        self.put("old/a-11111111.pth", self.a)
        j = self.read_lock()
        j["weights"][0]["url"] = self.nginx.url("old/a-11111111.pth")  # the registry moved A since the lock
        self.write_lock(j)
        self.assertEqual(read(self.download(self.A, env={"MZ_LOCKFILE": self.lockfile})), self.a)
        self.assertEqual([r["path"] for r in self.nginx.requests()], ["/old/a-11111111.pth"])
        mirror = self.path("mirror")
        self.mz("mirror", self.lockfile, "--to", mirror)
        with open(os.path.join(mirror, "modelzoo-mirror.json")) as f:
            self.assertEqual(json.load(f)["files"]["a-11111111.pth"]["url"], self.nginx.url("old/a-11111111.pth"))

    def test_text_assets_are_enforced_too(self):
        env = self.serve_roberta()
        self.lock("roberta_base", env=env)
        self.put("roberta.vocab.pt", b"VOCAB" * 100)  # upstream changed since the lock (same size)
        shutil.rmtree(self.cache)
        env["MZ_LOCKFILE"] = self.lockfile
        p = self.mz("tokenize", "roberta_base", "hello", env=env, check=False)
        self.assertEqual(p.returncode, 5, p.stderr)
        self.assertIn("roberta.vocab.pt", p.stderr)
        self.assertIn("sha256 mismatch", p.stderr)

    def test_bad_lock_files(self):
        for text, why in (("{not json", "not a lock file: not JSON"),
                          ('{"weights": []}', 'not a lock file: no "modelzoo_lock" version'),
                          ('{"modelzoo_lock": 2, "weights": []}', 'unknown lock file schema: "modelzoo_lock": 2'),
                          ('{"modelzoo_lock": 1, "weights": [{"weight": "X.Y", "url": "u", "sha256": "00", '
                           '"size": 1, "trust": "record"}]}', "weights[0] (X.Y): \"sha256\" must be 64")):
            with open(self.lockfile, "w") as f:
                f.write(text)
            p = self.mz("download", self.A, env={"MZ_LOCKFILE": self.lockfile}, check=False)
            self.assert_fails(p, 5, f"{self.lockfile}: {why}")
            self.assertEqual(self.cached_files(), [])
            self.assertEqual(self.nginx.requests(), [])

    # ---- mz lock --check ----------------------------------------------------------------------
    def test_check_reports_upstream_changes_and_bad_cache(self):
        self.lock(self.A, self.B)
        p = self.mz("lock", "--check", self.lockfile)
        self.assertIn(f"OK       {self.A}", p.stdout)
        self.assertIn("1 cached file(s) verified", p.stdout)  # B was downloaded to learn its size
        self.download(self.A)
        self.assertIn("2 cached file(s) verified", self.mz("lock", "--check", self.lockfile).stdout)
        j = self.read_lock()
        j["defaults"] = {"ResNet18_Weights": "HUB_A"}  # as if written when HUB_A was the DEFAULT
        j["weights"][1]["url"] = self.nginx.url("old/b.pth")  # as if B moved since
        self.write_lock(j)
        with open(self.download(self.A), "r+b") as f:
            f.write(b"X")
        p = self.mz("lock", "--check", env={"MZ_LOCKFILE": self.lockfile}, check=False)
        self.assertEqual(p.returncode, 5, p.stderr)
        self.assertIn("CHANGED", p.stdout, p.stderr)
        self.assertIn("CHANGED  ResNet18_Weights.DEFAULT  is now ResNet18_Weights.IMAGENET1K_V1 "
                      "(locked: ResNet18_Weights.HUB_A)", p.stdout)
        self.assertIn(f"CHANGED  {self.B}  URL is now {self.nginx.url('b.pth')} (locked: {self.nginx.url('old/b.pth')})",
                      p.stdout)
        self.assertIn(f"FAILED   {self.A}", p.stdout)
        self.assertIn("3 problem(s)", p.stderr)

    # ---- mirrors ------------------------------------------------------------------------------
    def make_mirror(self):
        env = self.serve_roberta()
        self.lock(self.A, self.B, "roberta_base", env=env)
        mirror = self.path("mirror")
        self.mz("mirror", self.lockfile, "--to", mirror, env=env)
        return mirror

    def test_mirror_layout_and_manifest(self):
        mirror = self.make_mirror()
        names = ["a-11111111.pth", "b.pth", *ROBERTA]
        self.assertEqual(sorted(os.listdir(mirror)), sorted(names + ["modelzoo-mirror.json"]))
        with open(os.path.join(mirror, "modelzoo-mirror.json")) as f:
            files = json.load(f)["files"]
        locked = {w["url"]: w["sha256"] for e in self.read_lock()["weights"] for w in [e, *e.get("assets", [])]}
        for n in names:
            self.assertEqual(sha256(read(os.path.join(mirror, n))), files[n]["sha256"])
            self.assertEqual(locked[files[n]["url"]], files[n]["sha256"])
        self.mz("mirror", self.lockfile, "--to", mirror, env={"MZ_MIRROR": self.nginx.url("")})  # again: kept

    def test_nginx_serves_the_mirror_with_upstream_gone(self):
        mirror = self.make_mirror()
        self.nginx.stop()  # upstream for the manifest weights; the text upstream is behind the dead proxy
        served = Nginx(mirror, self.tmp, name="mirror")
        try:
            shutil.rmtree(self.cache)
            env = {"MZ_MIRROR": f"{served.url('missing/')} {served.url('')}", "MZ_LOCKFILE": self.lockfile}
            for name in (self.A, self.B):
                self.download(name, env=env)
            # The fake tokenizer files do not parse, but only after they came from the mirror and verified.
            p = self.mz("tokenize", "roberta_base", "hello", env=env, check=False)
            self.assertNotIn("sha256", p.stderr)
            got = sorted(r["path"] for r in served.requests() if r["status"] == 200)
            self.assertEqual(got, sorted(["/a-11111111.pth", "/b.pth", "/gpt2_bpe_encoder.json", "/gpt2_bpe_vocab.bpe",
                                          "/roberta.vocab.pt"]))
            cached = {os.path.basename(e["url"]): e["sha256"] for e in json.loads(self.mz("cache", "ls", "--json").stdout)}
            for name in got:
                self.assertEqual(cached[name[1:]], sha256(read(os.path.join(mirror, name[1:]))))
            self.assertTrue(all(r["status"] == 404 for r in served.requests() if r["path"].startswith("/missing/")))
        finally:
            served.stop()

    def test_mirror_serving_wrong_bytes(self):
        mirror = self.make_mirror()
        with open(os.path.join(mirror, "a-11111111.pth"), "r+b") as f:
            f.write(b"evil")
        self.nginx.stop()
        served = Nginx(mirror, self.tmp, name="mirror")
        try:
            shutil.rmtree(self.cache)
            p = self.mz("download", self.A, env={"MZ_MIRROR": served.url(""), "MZ_LOCKFILE": self.lockfile},
                        check=False)
            line = self.assert_fails(p, 5, self.A, served.url("a-11111111.pth"), "sha256 mismatch")
            self.assertIn("every source failed", line)  # then upstream, which is down
            self.assertEqual([f for f in self.cached_files() if not f.endswith(".lock")], [])
        finally:
            served.stop()


if __name__ == "__main__":
    import unittest
    unittest.main()
