"""`mz download` against the fault-injecting server: every transfer failure the hub must survive."""
import os
import random
import time
import unittest

from hubtest import HubCase, kill, read, sha256

MiB = 1 << 20


def payload(n, seed):
    return random.Random(seed).randbytes(n)


class Faults(HubCase):
    servers = ("faults",)

    def setUp(self):
        super().setUp()
        self.data = self.put("w.pth", payload(3 * MiB, 1))

    def fetch_ok(self, mode, value="W"):
        name = self.add(value, self.faults.url(f"{mode}/w.pth"), self.data)
        path = self.download(name)
        self.assertEqual(read(path), self.data)
        return path

    def test_ok_prints_verified_path_and_records_digest(self):
        path = self.fetch_ok("ok")
        self.assertEqual(read(path + ".json").count(sha256(self.data).encode()), 1)
        ls = self.mz("cache", "ls").stdout
        self.assertIn("ResNet18_Weights.W", ls)
        self.assertIn(path, ls)

    def test_truncated_body_resumes_with_range(self):
        self.fetch_ok("truncate")
        reqs = self.faults.requests("/truncate/w.pth")
        self.assertEqual(len(reqs), 2)
        self.assertIsNone(reqs[0]["range"])
        self.assertTrue(reqs[1]["range"].startswith("bytes="), reqs[1])
        self.assertGreater(int(reqs[1]["range"][6:-1]), 0)
        self.assertEqual(reqs[1]["if_range"], '"fixed"')
        self.assertEqual(reqs[1]["status"], 206)

    def test_reset_mid_body_resumes(self):
        self.fetch_ok("reset")
        reqs = self.faults.requests("/reset/w.pth")
        self.assertEqual(len(reqs), 2)
        self.assertEqual(reqs[1]["status"], 206)

    def test_500_then_success(self):
        self.fetch_ok("flaky500")
        self.assertEqual([r["status"] for r in self.faults.requests("/flaky500/w.pth")], [500, 500, 200])

    def test_persistent_503_gives_up_with_status(self):
        name = self.add("W", self.faults.url("status/503/w.pth"), self.data)
        p = self.mz("download", name, check=False, env={"MZ_RETRIES": "2"})
        self.assert_fails(p, 5, name, self.faults.url("status/503/w.pth"), "HTTP 503", "gave up after 3 attempts")
        self.assertEqual(len(self.faults.requests("/status/503/w.pth")), 3)

    def test_404_fails_at_once(self):
        url = self.faults.url("ok/missing.pth")
        name = self.add("W", url, self.data)
        p = self.mz("download", name, check=False)
        self.assert_fails(p, 5, name, url, "HTTP 404")
        self.assertEqual(len(self.faults.requests("/ok/missing.pth")), 1)
        self.assertEqual(self.cached_files(), [])

    def test_slow_drip_hits_low_speed_timeout(self):
        name = self.add("W", self.faults.url("drip/w.pth"), self.data)
        t0 = time.time()
        p = self.mz("download", name, check=False, env={"MZ_RETRIES": "1", "MZ_LOW_SPEED_TIME": "1"})
        self.assert_fails(p, 5, name, "Timeout", "gave up after 2 attempts")
        self.assertLess(time.time() - t0, 30)
        self.assertFalse([f for f in self.cached_files() if not f.endswith((".part", ".part.json"))])

    def test_content_length_longer_than_expected_size(self):
        name = self.add("W", self.faults.url("longlen/w.pth"), self.data)
        p = self.mz("download", name, check=False)
        self.assert_fails(p, 5, f"server reports {len(self.data) + 1000} bytes, expected {len(self.data)}")
        self.assertEqual(self.cached_files(), [])

    def test_content_length_short_is_a_digest_mismatch(self):
        name = self.add("W", self.faults.url("shortlen/w.pth"), self.data, size=False)
        p = self.mz("download", name, check=False)
        got = sha256(self.data[:-1000])
        self.assert_fails(p, 5, f"expected {sha256(self.data)}, got {got}")
        self.assertEqual(self.cached_files(), [])

    def test_redirect_chain_is_followed(self):
        self.fetch_ok("redirect/3")
        paths = [r["path"] for r in self.faults.requests()]
        self.assertEqual(paths, ["/redirect/3/w.pth", "/redirect/2/w.pth", "/redirect/1/w.pth",
                                 "/redirect/0/w.pth", "/ok/w.pth"])

    def test_redirect_limit(self):
        name = self.add("W", self.faults.url("redirect/20/w.pth"), self.data)
        p = self.mz("download", name, check=False, env={"MZ_MAX_REDIRECTS": "5"})
        self.assert_fails(p, 5, name, "redirect")
        self.assertEqual(len(self.faults.requests()), 6)

    def test_server_ignoring_range_starts_over(self):
        self.fetch_ok("norange")
        reqs = self.faults.requests("/norange/w.pth")
        self.assertEqual(len(reqs), 2)
        self.assertIsNotNone(reqs[1]["range"])
        self.assertEqual(reqs[1]["status"], 200)

    def test_changed_remote_file_is_never_spliced(self):
        v1 = self.put("c.pth.v1", payload(3 * MiB, 2))
        v2 = self.put("c.pth.v2", payload(3 * MiB, 3))
        name = self.add("W", self.faults.url("changing/c.pth"), v2)
        path = self.download(name)
        self.assertEqual(read(path), v2)
        reqs = self.faults.requests("/changing/c.pth")
        self.assertEqual(len(reqs), 2)
        self.assertEqual(reqs[1]["if_range"], '"v1"')  # the validator of the partial
        self.assertEqual(reqs[1]["status"], 200)       # ...did not match: whole new file
        self.assertNotEqual(v1[:100], v2[:100])

    def test_digest_mismatch_leaves_nothing_under_final_name(self):
        wrong = sha256(b"something else")
        name = self.add("W", self.faults.url("ok/w.pth"), self.data, digest=wrong)
        p = self.mz("download", name, check=False)
        self.assert_fails(p, 5, name, f"sha256 mismatch: expected {wrong}, got {sha256(self.data)}")
        self.assertEqual(self.cached_files(), [])

    def test_proxy_from_environment(self):
        # The URL's own port is closed: only a proxy (the fault server) can answer it.
        closed = self.faults.port + 1 if self.faults.port < 65535 else self.faults.port - 1
        url = f"http://localhost:{closed}/ok/w.pth"
        name = self.add("W", url, self.data)
        proxy = f"http://127.0.0.1:{self.faults.port}"
        path = self.download(name, env={"http_proxy": proxy})
        self.assertEqual(read(path), self.data)
        self.assertTrue(self.faults.requests("/ok/w.pth")[0]["proxy"])

    def test_resume_after_killing_the_process(self):
        data = self.put("big.pth", payload(8 * MiB, 4))
        name = self.add("W", self.faults.url("slow/big.pth"), data)
        proc = self.mz_popen("download", name)
        deadline = time.time() + 30
        partial = 0
        while time.time() < deadline and partial < MiB:
            parts = [f for f in self.cached_files() if f.endswith(".part")]
            partial = os.path.getsize(parts[0]) if parts else 0
            time.sleep(0.05)
        kill(proc)
        self.assertGreaterEqual(partial, MiB)
        path = self.download(name)
        self.assertEqual(read(path), data)
        reqs = self.faults.requests("/slow/big.pth")
        self.assertEqual(len(reqs), 2)
        self.assertEqual(reqs[1]["status"], 206)
        self.assertGreaterEqual(int(reqs[1]["range"][6:-1]), MiB - 4096)
        self.assertLess(reqs[1]["sent"], len(data))
        self.assertEqual([f for f in self.cached_files() if ".part" in f], [])

    def test_eight_processes_one_transfer(self):
        data = self.put("shared.pth", payload(8 * MiB, 5))  # ~4 s at the slow rate: all 8 overlap
        name = self.add("W", self.faults.url("slow/shared.pth"), data)
        procs = [self.mz_popen("download", name) for _ in range(8)]
        outs = [p.communicate(timeout=120) for p in procs]
        self.assertEqual([p.returncode for p in procs], [0] * 8, [e for _, e in outs])
        paths = {o.strip().splitlines()[-1] for o, _ in outs}
        self.assertEqual(len(paths), 1)
        self.assertEqual(read(paths.pop()), data)
        reqs = self.faults.requests("/slow/shared.pth")
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0]["sent"], len(data))
        self.assertTrue(any("waiting for another process" in e for _, e in outs))


if __name__ == "__main__":
    unittest.main()
