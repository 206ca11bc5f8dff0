"""One download per cache over c10d (README "One download per cluster"): 4 to 8 `mz download`
processes on 127.0.0.1 with torchrun's environment, against nginx (rate-limited, so that every rank
starts while the one downloading is still at it). Nothing leaves 127.0.0.1.
"""
import os
import subprocess
import sys
import time

from hubtest import MZ, HubCase, Nginx, free_port, kill, read
from test_e2e import MAKE_FIXTURE, load_safetensor

MiB = 1 << 20
PYTHON = "/usr/bin/python3"  # Debian's, with torch.distributed


def payload(n, seed):
    import random
    return random.Random(seed).randbytes(n)


class Cluster(HubCase):
    def setUp(self):
        super().setUp()
        self.nginx = Nginx(self.www, self.tmp, rate="4m")  # 16 MiB take 4 s
        self.data = self.put("w.pth", payload(16 * MiB, 1))
        self.name = self.add("W", self.nginx.url("w.pth"), self.data)
        self.port = free_port()
        self.env.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(self.port), "MZ_STORE_TIMEOUT": "60",
                         "MZ_STORE_HEARTBEAT": "3"})

    def ranks(self, n, *, local=None, env=None, per_rank=None, args=None):
        """Starts `mz download` as ranks 0..n-1 (rank 0 first); local(rank) gives LOCAL_RANK."""
        procs = []
        for rank in range(n):
            e = dict(self.env, RANK=str(rank), WORLD_SIZE=str(n), LOCAL_RANK=str(local(rank) if local else rank))
            e.update(env or {})
            e.update((per_rank or (lambda r: {}))(rank))
            procs.append(subprocess.Popen([MZ, "download", *(args or [self.name])], env=e, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE, text=True, errors="replace"))
        return procs

    def finish(self, procs, timeout=120):
        outs = [p.communicate(timeout=timeout) for p in procs]
        return [(p.returncode, o, e) for p, (o, e) in zip(procs, outs)]

    def transfers(self, path="/w.pth"):
        return [r for r in self.nginx.requests() if r["path"] == path]

    def assert_all_load(self, results, data):
        self.assertEqual([r[0] for r in results], [0] * len(results), [r[2] for r in results])
        paths = {r[1].strip().splitlines()[-1] for r in results}
        for p in paths:
            self.assertEqual(read(p), data)
        return paths

    def test_eight_ranks_one_transfer(self):
        # The other ranks are offline: they can only have the file from rank 0, through the store.
        results = self.finish(self.ranks(8, per_rank=lambda r: {"MZ_OFFLINE": "1"} if r else {}))
        self.assertEqual(len(self.assert_all_load(results, self.data)), 1)
        self.assertEqual([r["status"] for r in self.transfers()], [200])
        self.assertFalse(any("waiting for another process" in r[2] for r in results))  # no flock waits

    def test_four_ranks_build_and_run_a_model(self):
        """The builders' fetch path (mz forward --weights) coordinates too; every rank loads the weights."""
        subprocess.run([PYTHON, "-c", MAKE_FIXTURE, self.www], check=True)
        ckpt = read(os.path.join(self.www, "r18.pth"))
        name = self.add("R18", self.nginx.url("r18.pth"), ckpt,
                        meta={"categories": [f"class{i}" for i in range(10)], "num_params": 11181642})
        x = os.path.join(self.www, "in.safetensors")
        outs = [self.path(f"out{r}.safetensors") for r in range(4)]
        procs = []
        for rank in range(4):
            e = dict(self.env, RANK=str(rank), WORLD_SIZE="4", LOCAL_RANK=str(rank), MZ_NUM_THREADS="1")
            if rank:
                e["MZ_OFFLINE"] = "1"
            procs.append(subprocess.Popen([MZ, "forward", "resnet18", "--weights", name, "--input", x, "--output",
                                           outs[rank]], env=e, stderr=subprocess.PIPE, text=True, errors="replace"))
        errs = [p.communicate(timeout=300)[1] for p in procs]
        self.assertEqual([p.returncode for p in procs], [0] * 4, errs)
        want = load_safetensor(os.path.join(self.www, "expected.safetensors"), "output")
        for out in outs:
            shape, got = load_safetensor(out, "output")
            self.assertEqual(shape, want[0])
            self.assertLess(max(abs(a - b) for a, b in zip(got, want[1])), 1e-4)
        self.assertEqual([r["status"] for r in self.transfers("/r18.pth")], [200])

    def test_one_transfer_per_node_and_per_cluster_with_a_shared_cache(self):
        node_cache = lambda r: {"MZ_CACHE_DIR": self.path(f"cache-node{r // 2}")}  # noqa: E731
        results = self.finish(self.ranks(4, local=lambda r: r % 2, per_rank=node_cache))
        self.assertEqual(len(self.assert_all_load(results, self.data)), 2)
        self.assertEqual([r["status"] for r in self.transfers()], [200, 200])
        # MZ_SHARED_CACHE=1: rank 0 downloads for all; the others are offline to prove it.
        self.port = free_port()
        self.env.update({"MASTER_PORT": str(self.port), "MZ_SHARED_CACHE": "1", "MZ_CACHE_DIR": self.path("shared")})
        results = self.finish(self.ranks(4, local=lambda r: r % 2, per_rank=lambda r: {"MZ_OFFLINE": "1"} if r else {}))
        self.assert_all_load(results, self.data)
        self.assertEqual(len(self.transfers()), 3)

    def test_a_404_reaches_every_rank(self):
        name = self.add("GONE", self.nginx.url("gone.pth"), b"never served")
        start = time.time()
        results = self.finish(self.ranks(6, args=[name]))
        self.assertLess(time.time() - start, 20)
        lines = {r[2].strip() for r in results}
        self.assertEqual([r[0] for r in results], [5] * 6, lines)
        self.assertEqual(len(lines), 1, lines)  # the same typed error everywhere
        self.assertIn(f"mz: {name}: {self.nginx.url('gone.pth')}: HTTP 404", lines.pop())
        self.assertEqual(len(self.transfers("/gone.pth")), 1)
        self.assertEqual(self.cached_files(), [])

    def kill_rank0_mid_download(self, n, **kw):
        procs = self.ranks(n, **kw)
        deadline = time.time() + 30
        while time.time() < deadline and not any(f.endswith(".part") and os.path.getsize(f) > MiB
                                                 for f in self.cached_files()):
            time.sleep(0.05)
        time.sleep(1)  # every rank has reached the store by now (else it waits MZ_STORE_TIMEOUT to connect)
        kill(procs[0])
        start = time.time()
        results = self.finish(procs[1:], timeout=60)
        return results, time.time() - start

    def test_rank0_killed_mid_download_then_rerun_resumes(self):
        results, took = self.kill_rank0_mid_download(4)
        self.assertLess(took, 10, [r[2] for r in results])
        for code, _, err in results:
            self.assertEqual(code, 5, err)
            self.assertIn(f"mz: {self.name}: c10d store failed while waiting for rank 0 to fetch it", err)
            self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.port = free_port()
        self.env["MASTER_PORT"] = str(self.port)
        self.assert_all_load(self.finish(self.ranks(4)), self.data)
        statuses = [(r["status"], bool(r["range"])) for r in self.transfers()]
        self.assertEqual(statuses, [(200, False), (206, True)])
        self.assertEqual([f for f in self.cached_files() if ".part" in f], [])

    def python_store(self):
        """A torch.distributed.TCPStore server in Debian's Python; the ranks are all clients."""
        code = ("import sys, time, datetime, torch.distributed as d\n"
                "s = d.TCPStore('127.0.0.1', int(sys.argv[1]), None, True, datetime.timedelta(seconds=60), False)\n"
                "print('ready', flush=True)\n"
                "time.sleep(600)\n")
        server = subprocess.Popen([PYTHON, "-c", code, str(self.port)], stdout=subprocess.PIPE, text=True)
        self.assertEqual(server.stdout.readline().strip(), "ready")
        self.addCleanup(kill, server)
        return server

    def test_python_tcpstore_server(self):
        self.python_store()
        env = {"TORCHELASTIC_USE_AGENT_STORE": "True"}
        results = self.finish(self.ranks(4, env=env, per_rank=lambda r: {"MZ_OFFLINE": "1"} if r else {}))
        self.assert_all_load(results, self.data)
        self.assertEqual([r["status"] for r in self.transfers()], [200])
        # The store outlives rank 0 here: the others notice its silence (MZ_STORE_HEARTBEAT=3).
        self.put("v.pth", payload(16 * MiB, 2))
        self.name = self.add("V", self.nginx.url("v.pth"), read(os.path.join(self.www, "v.pth")))
        os.remove(os.path.join(self.www, "w.pth"))
        results, took = self.kill_rank0_mid_download(4, env=env)
        self.assertLess(took, 15)
        for code, _, err in results:
            self.assertEqual(code, 5, err)
            self.assertIn("rank 0 stopped while fetching it (no sign of life for 3 s", err)

    def test_store_that_times_out(self):
        env = {"TORCHELASTIC_USE_AGENT_STORE": "True", "MZ_STORE_TIMEOUT": "2"}  # nothing serves MASTER_PORT
        start = time.time()
        results = self.finish(self.ranks(4, env=env))
        self.assertLess(time.time() - start, 30)
        for code, _, err in results:
            self.assertEqual(code, 5, err)
            self.assertIn(f"cannot reach the c10d store at 127.0.0.1:{self.port} within 2 s", err)
            self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertEqual(self.transfers(), [])
        self.assertEqual(self.cached_files(), [])

    def test_filestore(self):
        env = {"MZ_STORE_FILE": self.path("store")}
        results = self.finish(self.ranks(4, env=env, per_rank=lambda r: {"MZ_OFFLINE": "1"} if r else {}))
        self.assert_all_load(results, self.data)
        self.assertEqual([r["status"] for r in self.transfers()], [200])


if __name__ == "__main__":
    import unittest
    unittest.main()
