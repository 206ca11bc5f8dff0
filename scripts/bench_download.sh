#!/usr/bin/env bash
# Download benchmark: a 1 GiB file from loopback nginx, fetched in the same run (interleaved, R
# repetitions, fresh output each time, `sync` before each) by
#   mz download ResNet18_Weights.BENCH_1GIB   (SHA-256 verified, fsynced, published by rename)
#   curl -s -o FILE URL                       (no verification, no fsync)
#   torch.hub.download_url_to_file(url, dst, hash_prefix=..., progress=False)   (Debian's torch,
#                                             timed inside Python so its import is not counted)
# and prints median times and the ratios (targets: mz <= 0.8x curl, torch.hub >= 2x mz). It also
# times `mz cache dir` (mz's fixed start-up cost; the front end does not load LibTorch) and reports the
# ratios without it.
#   scripts/bench_download.sh [REPEATS]        env: MZ_BIN (default build/mz), MZ_BENCH_DIR, MZ_BENCH_MIB
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS="${1:-5}"
MZ_BIN="$(realpath "${MZ_BIN:-build/mz}")"
DIR="${MZ_BENCH_DIR:-/tmp/mz-bench}"
MIB="${MZ_BENCH_MIB:-1024}"
[ -x "$MZ_BIN" ] || { echo "bench_download: no $MZ_BIN; run scripts/build.sh first" >&2; exit 1; }
mkdir -p "$DIR/www"

FILE="$DIR/bench-${MIB}MiB.bin"
if [ "$(stat -c %s "$FILE" 2>/dev/null || echo 0)" != "$((MIB << 20))" ]; then
  echo "bench_download: writing $MIB MiB of random bytes to $FILE" >&2
  head -c "$((MIB << 20))" /dev/urandom > "$FILE.tmp" && mv "$FILE.tmp" "$FILE"
  rm -f "$FILE.sha256"
fi
[ -f "$FILE.sha256" ] || sha256sum "$FILE" | cut -d' ' -f1 > "$FILE.sha256"
SHA="$(cat "$FILE.sha256")"
SERVED="bench-${SHA:0:8}.bin"
ln -f "$FILE" "$DIR/www/$SERVED"

exec /usr/bin/python3 - "$MZ_BIN" "$DIR" "$SERVED" "$SHA" "$((MIB << 20))" "$REPEATS" <<'PY'
import json, os, shutil, statistics, subprocess, sys, time
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "hub"))
from hubtest import Nginx
import torch.hub

mz_bin, d, served, sha, size, repeats = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
work = os.path.join(d, "run")
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
nginx = Nginx(os.path.join(d, "www"), work)
url = nginx.url(served)
manifest = os.path.join(work, "manifest.json")
with open(manifest, "w") as f:
    json.dump({"schema": "modelzoo.weights/1", "weights": [{
        "weight": "ResNet18_Weights.BENCH_1GIB", "model": "resnet18", "url": url,
        "hash_prefix": sha[:8], "sha256": sha, "file_size": size}]}, f)
env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
env.update(MZ_CACHE_DIR=os.path.join(work, "cache"), MZ_MANIFEST=manifest, TORCH_HOME=os.path.join(work, "torch"))
outs = {"curl": os.path.join(work, "curl.out"), "torch": os.path.join(work, "torch.out")}

def fresh():
    shutil.rmtree(env["MZ_CACHE_DIR"], ignore_errors=True)
    for p in outs.values():
        if os.path.exists(p):
            os.unlink(p)
    subprocess.run(["sync"])
    time.sleep(1)

def run_mz():
    out = subprocess.run([mz_bin, "download", "ResNet18_Weights.BENCH_1GIB"], env=env, check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    assert os.path.getsize(out) == size

def run_curl():
    subprocess.run(["curl", "-s", "-o", outs["curl"], url], env=env, check=True)

def run_torch():
    torch.hub.download_url_to_file(url, outs["torch"], hash_prefix=sha[:8], progress=False)

def run_mz_startup():  # the fixed cost of starting mz, no download
    subprocess.run([mz_bin, "cache", "dir"], env=env, check=True, capture_output=True)

tools = {"mz download": run_mz, "curl -o": run_curl, "torch.hub": run_torch, "mz startup": run_mz_startup}
times = {k: [] for k in tools}
try:
    for rep in range(repeats):
        for name, fn in tools.items():
            fresh()
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
        print(f"run {rep + 1}/{repeats}: " + "  ".join(f"{k} {v[-1]:.3f}s" for k, v in times.items()), file=sys.stderr)
finally:
    fresh()
    nginx.stop()

med = {k: statistics.median(v) for k, v in times.items()}
print(f"{size / 2**20:.0f} MiB from loopback nginx, median of {repeats} (min in brackets):")
for k, v in times.items():
    print(f"  {k:12s} {med[k]:7.3f} s  [{min(v):.3f} s]  {size / med[k] / 2**20:7.1f} MiB/s")
transfer = med["mz download"] - med["mz startup"]
print(f"  mz download without its startup: {transfer:.3f} s")
print(f"  mz / curl       = {med['mz download'] / med['curl -o']:.2f}   (target <= 0.80; without startup {transfer / med['curl -o']:.2f})")
print(f"  torch.hub / mz  = {med['torch.hub'] / med['mz download']:.2f}   (target >= 2.00; without startup {med['torch.hub'] / transfer:.2f})")
PY
