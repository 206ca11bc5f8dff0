"""Runs a command next to a loopback nginx: with_nginx.py -- CMD ARGS...

The command sees MZ_TEST_WWW (the served directory, initially empty), MZ_TEST_URL (its base URL,
ending in '/'), MZ_TEST_ACCESS_LOG (JSON lines: path, range, if_range, status, sent) and
MZ_TEST_TMP (a scratch directory). Exits with the command's status.
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hubtest import Nginx  # noqa: E402


def main():
    cmd = sys.argv[sys.argv.index("--") + 1:]
    tmp = tempfile.mkdtemp(prefix="mzhub-nginx-")
    www = os.path.join(tmp, "www")
    os.makedirs(www)
    nginx = Nginx(www, tmp)
    try:
        env = dict(os.environ, MZ_TEST_WWW=www, MZ_TEST_URL=nginx.url(""), MZ_TEST_ACCESS_LOG=nginx.access_log,
                   MZ_TEST_TMP=tmp)
        env = {k: v for k, v in env.items() if not k.lower().endswith("_proxy")}
        return subprocess.call(cmd, env=env)
    finally:
        nginx.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
