"""Shared pieces of the hub tests: loopback nginx, the fault server, a sandboxed `mz`.

Nothing here talks to any address but 127.0.0.1. Each test gets its own temp directory with its
own MZ_CACHE_DIR, TORCH_HOME and XDG_CACHE_HOME, and proxy variables removed.
"""
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
MZ = os.environ.get("MZ_BIN", "mz")
NGINX = os.environ.get("MZ_NGINX", "/usr/sbin/nginx")


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


class Nginx:
    """nginx-light on 127.0.0.1, one process, everything (pid, logs, temp) inside `workdir`."""

    def __init__(self, root, workdir, tls=None, rate=None, name="nginx"):
        self.root, self.workdir, self.tls = root, workdir, tls  # tls: (cert.pem, key.pem)
        self.rate = rate  # e.g. "2m": nginx's limit_rate, bytes per second per response
        self.name = name  # several servers in one workdir: their own conf, logs and temp dirs
        self.access_log = os.path.join(workdir, name + ".access.log" if name != "nginx" else "access.log")
        for _ in range(5):
            self.port = free_port()
            conf = os.path.join(workdir, self.name + ".conf")
            with open(conf, "w") as f:
                f.write(self.config())
            self.proc = subprocess.Popen([NGINX, "-c", conf, "-p", workdir, "-e", os.path.join(workdir, "error.log")],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_for_port(self.port, self.proc)
                return
            except RuntimeError:
                self.stop()
        raise RuntimeError("could not start nginx; see " + os.path.join(workdir, "error.log"))

    def config(self):
        w, n = self.workdir, self.name
        temps = "".join(f"  {k}_temp_path {w}/{n}_tmp_{k};\n" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        return f"""daemon off;
master_process off;
worker_processes 1;
pid {w}/{n}.pid;
error_log {w}/error.log;
events {{ worker_connections 256; }}
http {{
  log_format mz escape=json '{{"path":"$uri","range":"$http_range","if_range":"$http_if_range","status":$status,"sent":$body_bytes_sent}}';
  access_log {self.access_log} mz;
{temps}  sendfile on;
{f"  limit_rate {self.rate};{chr(10)}" if self.rate else ""}
  server {{
    listen 127.0.0.1:{self.port}{" ssl" if self.tls else ""};
    root {self.root};
{f"    ssl_certificate {self.tls[0]};{chr(10)}    ssl_certificate_key {self.tls[1]};" if self.tls else ""}
  }}
}}
"""

    def url(self, path):
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def requests(self):
        if not os.path.exists(self.access_log):
            return []
        with open(self.access_log) as f:
            return [json.loads(line) for line in f if line.strip()]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class FaultServer:
    def __init__(self, root, workdir):
        self.log = os.path.join(workdir, "faults.log")
        portfile = os.path.join(workdir, "fault.port")
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "fault_server.py"), root, self.log, portfile])
        deadline = time.time() + 10
        while not os.path.exists(portfile):
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("fault server did not start")
            time.sleep(0.02)
        with open(portfile) as f:
            self.port = int(f.read())

    def url(self, path):
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def requests(self, path=None):
        deadline = time.time() + 10  # until every request in flight is logged (see fault_server.active)
        while time.time() < deadline and os.path.exists(self.log + ".active"):
            with open(self.log + ".active") as f:
                if f.read().strip() == "0":
                    break
            time.sleep(0.02)
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            reqs = [json.loads(line) for line in f if line.strip()]
        return [r for r in reqs if path is None or r["path"] == path]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(5)


class HubCase(unittest.TestCase):
    """A temp sandbox, a manifest to fill, and `mz` run with a clean environment."""

    servers = ()  # ("nginx", "faults")

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="mzhub-")
        self.www = self.path("www")
        os.makedirs(self.www)
        self.cache = self.path("cache")
        self.manifest = self.path("manifest.json")
        self.entries = []
        self.nginx = Nginx(self.www, self.tmp) if "nginx" in self.servers else None
        self.faults = FaultServer(self.www, self.tmp) if "faults" in self.servers else None
        self.env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and not k.startswith("MZ_")}
        self.env.update({
            "MZ_CACHE_DIR": self.cache, "TORCH_HOME": self.path("torch"), "XDG_CACHE_HOME": self.path("xdg"),
            "MZ_MANIFEST": self.manifest, "MZ_RETRIES": "3", "MZ_RETRY_DELAY_MS": "20",
            "MZ_LOW_SPEED_TIME": "2", "MZ_LOW_SPEED_LIMIT": "1024", "MZ_CONNECT_TIMEOUT": "5",
            "NO_PROXY": "", "no_proxy": "",
        })
        self.write_manifest()

    def tearDown(self):
        for s in (self.nginx, self.faults):
            if s:
                s.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def put(self, name, data):
        """A file served by both servers (under www/)."""
        full = os.path.join(self.www, name)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)
        return data

    def add(self, value, url, data, *, size=True, digest=None, **extra):
        """Registers ResNet18_Weights.<value> for `url` serving `data`; returns the full name."""
        entry = {"weight": f"ResNet18_Weights.{value}", "model": "resnet18", "url": url,
                 "sha256": digest or sha256(data), "file_size": len(data) if size else None}
        entry.update(extra)
        self.entries.append(entry)
        self.write_manifest()
        return entry["weight"]

    def write_manifest(self, entries=None, path=None):
        with open(path or self.manifest, "w") as f:
            json.dump({"schema": "modelzoo.weights/1", "weights": self.entries if entries is None else entries}, f)

    def mz(self, *args, env=None, check=True, timeout=120):
        e = dict(self.env)
        e.update(env or {})
        p = subprocess.run([MZ, *args], env=e, capture_output=True, text=True, errors="replace", timeout=timeout)
        if check and p.returncode != 0:
            self.fail(f"mz {' '.join(args)} exited {p.returncode}: {p.stderr.strip()}")
        return p

    def mz_popen(self, *args, env=None):
        e = dict(self.env)
        e.update(env or {})
        return subprocess.Popen([MZ, *args], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def download(self, name, **kw):
        p = self.mz("download", name, **kw)
        path = p.stdout.strip().splitlines()[-1]
        self.assertTrue(os.path.isabs(path), p.stdout)
        return path

    def assert_fails(self, p, code, *needles):
        self.assertEqual(p.returncode, code, f"stdout={p.stdout!r} stderr={p.stderr!r}")
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        for n in needles:
            self.assertIn(n, lines[0])
        return lines[0]

    def cached_files(self):
        out = []
        for d, _, files in os.walk(os.path.join(self.cache, "blobs")):
            out += [os.path.join(d, f) for f in files]
        return sorted(out)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def kill(proc):
    """kill -9, then reap it and close its pipes."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
