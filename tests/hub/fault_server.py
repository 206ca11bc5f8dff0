"""A fault-injecting HTTP/1.1 server for the hub tests (loopback only, Python stdlib).

Serves the files of a directory under /<mode>/<name>; the mode picks the fault:
  ok            normal: Content-Length, strong ETag, Range + If-Range
  truncate      first request of a name: full Content-Length, half the body, then close
  reset         first request of a name: half the body, then a TCP reset
  flaky500      the first two requests of a name answer 500
  drip          every request trickles 64 bytes per 0.5 s (past any low-speed timeout)
  drip1         like drip for the first request of a name, then normal
  longlen       Content-Length 1000 bytes longer than the body, then close
  shortlen      Content-Length 1000 bytes shorter than the body
  redirect/N    302 to redirect/N-1/<name>; redirect/0 serves ok/<name>
  norange       ignores Range (always 200 with the whole body); first request truncated
  slow          normal but at about 2 MiB/s (for killing a download half way)
  changing      first request: <name>.v1 (ETag "v1") truncated; then <name>.v2 (ETag "v2"),
                answering Range only when If-Range matches "v2"
  status/N      answers HTTP N
Anything else is a 404. Absolute-URI request lines (proxy requests) are served the same way.

Every request is appended to the log as one JSON line:
  {"method", "path", "range", "if_range", "status", "sent", "proxy"}

Usage: fault_server.py ROOT LOG PORTFILE   (writes the bound port to PORTFILE, runs until killed)
"""
import json
import os
import socket
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT, LOG, PORTFILE = sys.argv[1], sys.argv[2], sys.argv[3]
_lock = threading.Lock()
_counts = {}


def first_requests(key):
    """How many requests for `key` came before this one."""
    with _lock:
        n = _counts.get(key, 0)
        _counts[key] = n + 1
        return n


def log(entry):
    with _lock, open(LOG, "a") as f:
        f.write(json.dumps(entry) + "\n")


_active = 0


def active(delta):
    """Counts requests being served in LOG + ".active", so a reader can wait until every request
    is logged: a client may exit as soon as it has the last byte, before the server logs it."""
    global _active
    with _lock:
        _active += delta
        with open(LOG + ".active.tmp", "w") as f:
            f.write(str(_active))
        os.replace(LOG + ".active.tmp", LOG + ".active")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except ValueError:  # the connection was reset on purpose
            self.close_connection = True

    def do_GET(self):
        target = self.path
        proxy = target.startswith("http://")
        if proxy:
            target = urllib.parse.urlsplit(target).path
        parts = target.lstrip("/").split("/")
        self.entry = {"method": "GET", "path": target, "range": self.headers.get("Range"),
                      "if_range": self.headers.get("If-Range"), "status": None, "sent": 0, "proxy": proxy}
        active(+1)
        try:
            self.route(parts)
        finally:
            log(self.entry)
            active(-1)

    def route(self, parts):
        mode = parts[0] if parts else ""
        if mode == "redirect" and len(parts) == 3:
            n = int(parts[1])
            nxt = f"/redirect/{n - 1}/{parts[2]}" if n > 0 else f"/ok/{parts[2]}"
            return self.reply(302, b"", {"Location": nxt})
        if mode == "status" and len(parts) >= 2:
            return self.reply(int(parts[1]), b"error page\n")
        if len(parts) != 2:
            return self.reply(404, b"not found\n")
        name = parts[1]
        n = first_requests((mode, name))
        if mode == "changing":
            version = "v1" if n == 0 else "v2"
            data = self.read(f"{name}.{version}")
            if data is None:
                return self.reply(404, b"not found\n")
            honour = self.headers.get("If-Range") in (None, f'"{version}"')
            return self.serve(data, etag=f'"{version}"', ranges=honour, cut=(n == 0))
        data = self.read(name)
        if data is None:
            return self.reply(404, b"not found\n")
        if mode == "ok":
            return self.serve(data)
        if mode == "truncate":
            return self.serve(data, cut=(n == 0))
        if mode == "reset":
            return self.serve(data, cut=(n == 0), reset=True)
        if mode == "flaky500":
            return self.reply(500, b"try again\n") if n < 2 else self.serve(data)
        if mode == "drip" or (mode == "drip1" and n == 0):
            return self.serve(data, rate=(64, 0.5))
        if mode == "drip1":
            return self.serve(data)
        if mode == "longlen":
            return self.serve(data, length_delta=1000)
        if mode == "shortlen":
            return self.serve(data, length_delta=-1000)
        if mode == "norange":
            return self.serve(data, ranges=False, cut=(n == 0))
        if mode == "slow":
            return self.serve(data, rate=(64 * 1024, 0.03))
        return self.reply(404, b"not found\n")

    def read(self, name):
        path = os.path.join(ROOT, name)
        if "/" in name or not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            return f.read()

    def reply(self, status, body, headers=None):
        self.entry["status"] = status
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.entry["sent"] = len(body)

    def serve(self, data, etag='"fixed"', ranges=True, cut=False, reset=False, rate=None, length_delta=0):
        start, status = 0, 200
        rng = self.headers.get("Range")
        if ranges and rng and rng.startswith("bytes=") and self.headers.get("If-Range") in (None, etag):
            start = int(rng[6:].split("-")[0])
            if start >= len(data):
                return self.reply(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            status = 206
        body = data[start:]
        self.entry["status"] = status
        self.send_response(status)
        self.send_header("Content-Length", str(len(body) + length_delta))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes" if ranges else "none")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if length_delta < 0:
            body = body[:len(body) + length_delta]
        if cut:
            body = body[:len(body) // 2]
        try:
            if rate:
                chunk, pause = rate
                for i in range(0, len(body), chunk):
                    self.wfile.write(body[i:i + chunk])
                    self.wfile.flush()
                    self.entry["sent"] += len(body[i:i + chunk])
                    if i + chunk < len(body):
                        time.sleep(pause)
            else:
                self.wfile.write(body)
                self.entry["sent"] = len(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            return
        if cut or length_delta > 0:
            self.wfile.flush()
            self.close_connection = True
            if reset:  # linger 0 + close: the peer gets an RST instead of a FIN
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.rfile.close()
                self.wfile.close()
                self.connection.close()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    server = Server(("127.0.0.1", 0), Handler)
    tmp = PORTFILE + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(server.server_address[1]))
    os.rename(tmp, PORTFILE)
    server.serve_forever()


if __name__ == "__main__":
    main()
