#!/usr/bin/env bash
# Text benchmarks, each against its Python anchor in the same run, with ratios:
#  1. Encoder forward, roberta_base (random weights, full size) on B x T random ids, eval + no_grad:
#     `mz bench roberta_base --repeat 1` (forward_ms, after its warm-up) against torchtext 0.14.1's RobertaModel
#     timed inside Debian's Python, interleaved; the best of REPEATS on each side (the machine is shared, and
#     the minimum is the run least disturbed). Target: mz <= 1.0x.
#  2. T5 encoder forward, t5_small with encoder_only (random weights), the same way against torchtext's
#     prototype T5Model. Target: mz <= 1.0x.
#  3. GPT-2 BPE tokenisation throughput on AG News (7,600 lines) in tokens/s: `mz tokenize --gpt2 ... --file`
#     against the Python reference of tests/text/gpt2_reference.py, in CPU seconds (user + sys). Tokenising
#     only: mz's whole process minus the same process on one line (start-up, LibTorch, loading encoder.json
#     and vocab.bpe), against Python's encode loop. Whole process: loading included on both sides. Target: >= 10x.
#   scripts/bench_text.sh [REPEATS] [TOKENS]     env: MZ_BIN (default build/mz), MZ_THREADS (default 1)
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS="${1:-5}"
TOKENS="${2:-128}"
MZ_BIN="$(realpath "${MZ_BIN:-build/mz}")"
THREADS="${MZ_THREADS:-1}"
CORPUS="$(realpath -m ../shared/corpus/text)"
[ -x "$MZ_BIN" ] || { echo "bench_text: no $MZ_BIN; run scripts/build.sh first" >&2; exit 1; }
export OMP_NUM_THREADS="$THREADS"

exec /usr/bin/python3 - "$MZ_BIN" "$REPEATS" "$TOKENS" "$THREADS" "$CORPUS" <<'PY'
import json, os, resource, subprocess, sys, time
mz, repeats, tokens, threads, corpus = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
import torch
torch.set_num_threads(threads)
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "oracle"))
import tt_shim
tt = tt_shim.import_torchtext().models

print(f"# encoder forward: roberta_base, random weights, {tokens} tokens, {threads} thread(s), best of {repeats}")
net = tt.RobertaModel(tt.RobertaEncoderConf(vocab_size=50265)).eval()
for batch in (1, 8):
    x = torch.randint(3, 20, (batch, tokens))
    tt_times, mz_times = [], []
    with torch.no_grad():
        net(x)  # warm-up
    for _ in range(repeats):  # interleaved; the minimum is the run least disturbed by other load
        with torch.no_grad():
            t0 = time.perf_counter(); net(x); tt_times.append((time.perf_counter() - t0) * 1000)
        out = subprocess.check_output([mz, "bench", "roberta_base", "--batch", str(batch), "--size", str(tokens),
                                       "--repeat", "1", "--json"], env=dict(os.environ, OMP_NUM_THREADS=str(threads)),
                                      stderr=subprocess.DEVNULL)
        mz_times.append(json.loads(out)["forward_ms"])
    mz_ms, tt_ms = min(mz_times), min(tt_times)
    print(f"batch {batch}: mz {mz_ms:.1f} ms, torchtext {tt_ms:.1f} ms, ratio mz/torchtext {mz_ms / tt_ms:.2f}")

print(f"# T5 encoder forward: t5_small with encoder_only, random weights, {tokens} tokens, {threads} thread(s), "
      f"best of {repeats}")
from torchtext.prototype.models import T5Conf, T5Model
small = dict(encoder_only=True, embedding_dim=512, num_attention_heads=8, num_encoder_layers=6, num_decoder_layers=6,
             ffn_dimension=2048)
t5 = T5Model(T5Conf(**small)).eval()
for batch in (1, 8):
    x = torch.randint(2, 20, (batch, tokens))
    tt_times, mz_times = [], []
    with torch.no_grad():
        t5(x)  # warm-up
    for _ in range(repeats):
        with torch.no_grad():
            t0 = time.perf_counter(); t5(x); tt_times.append((time.perf_counter() - t0) * 1000)
        out = subprocess.check_output([mz, "bench", "t5_small", "--batch", str(batch), "--size", str(tokens),
                                       "--repeat", "1", "--json", "--options", json.dumps({"encoder_only": True})],
                                      env=dict(os.environ, OMP_NUM_THREADS=str(threads)), stderr=subprocess.DEVNULL)
        mz_times.append(json.loads(out)["forward_ms"])
    mz_ms, tt_ms = min(mz_times), min(tt_times)
    print(f"batch {batch}: mz {mz_ms:.1f} ms, torchtext {tt_ms:.1f} ms, ratio mz/torchtext {mz_ms / tt_ms:.2f}")

agnews = os.path.join(corpus, "text_normalization_ag_news_test.csv")
if not os.path.exists(agnews):
    print(f"# GPT-2 tokenisation: skipped (no corpus at {corpus})")
    sys.exit(0)
sys.path.insert(0, os.path.join(os.getcwd(), "tests", "text"))
import gpt2_reference
enc, bpe = os.path.join(corpus, "gpt2_bpe_encoder.json"), os.path.join(corpus, "gpt2_bpe_vocab.bpe")
lines = open(agnews, encoding="utf-8").read().split("\n")[:-1]
t0 = time.process_time()
ref = gpt2_reference.GPT2BPE(enc, bpe)
t1 = time.process_time()
n = sum(len(ref.encode(line)[0]) for line in lines)
py_load, py_s = t1 - t0, time.process_time() - t1


def cpu_seconds(args):
    """CPU time (user + sys) of one mz process: less disturbed by other load than wall time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.check_output([mz, "tokenize", "--gpt2", enc, bpe, *args])
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), out


full, start = [], []
for _ in range(repeats):
    t, out = cpu_seconds(["--file", agnews])
    full.append(t)
    start.append(cpu_seconds([lines[0]])[0])  # start-up and loading the assets, one line tokenised
mz_n = sum(len(l.split()) for l in out.decode().split("\n")[:-1])
assert mz_n == n, (mz_n, n)
mz_full, mz_start = min(full), min(start)
mz_s = max(mz_full - mz_start, 1e-9)
print(f"# GPT-2 tokenisation: AG News, {len(lines)} lines, {n} tokens, CPU seconds (mz: best of {repeats})")
print(f"tokenising only: mz {n / mz_s:,.0f} tokens/s ({mz_s:.2f} s: whole process {mz_full:.2f} s minus "
      f"start-up + assets {mz_start:.2f} s), Python reference {n / py_s:,.0f} tokens/s ({py_s:.2f} s), "
      f"ratio {py_s / mz_s:.1f}x")
print(f"whole process: mz {n / mz_full:,.0f} tokens/s, Python reference {n / (py_s + py_load):,.0f} tokens/s "
      f"(loading included), ratio {(py_s + py_load) / mz_full:.1f}x")
PY
