#!/usr/bin/env bash
# Text benchmarks, each against its Python anchor in the same run, with ratios:
#  1. Encoder forward, roberta_base (random weights, full size) on B x T random ids, eval + no_grad:
#     `mz bench roberta_base --repeat 1` (forward_ms, after its warm-up) against torchtext 0.14.1's RobertaModel
#     timed inside Debian's Python, interleaved; the best of REPEATS on each side (the machine is shared, and
#     the minimum is the run least disturbed). Target: mz <= 1.0x.
#  2. T5 encoder forward, t5_small with encoder_only (random weights), the same way against torchtext's
#     prototype T5Model. Target: mz <= 1.0x.
#  3. GPT-2 BPE tokenisation throughput on AG News (7,600 lines) in tokens/s: `mz tokenize --gpt2 ... --file`
#     against the Python reference of tests/text/gpt2_reference.py, in CPU seconds. Tokenising only: timed
#     inside each process (`mz tokenize --stats`: the process's CPU clock around the tokenising loop; Python's
#     process_time around its encode loop), a fresh tokenizer per run on each side, the two sides interleaved
#     in pairs; the headline is the median of the pairs' ratios. Whole process: start-up and loading included
#     on both sides (best of REPEATS). Target: >= 10x.
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
import json, os, resource, statistics, subprocess, sys, time
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
py, py_load, mz_s, mz_whole = [], [], [], []
for _ in range(repeats):  # interleaved pairs: the machine's state hits both sides of a pair alike
    t0 = time.process_time()
    ref = gpt2_reference.GPT2BPE(enc, bpe)  # a fresh tokenizer each time: no word cache carried over
    t1 = time.process_time()
    n = sum(len(ref.encode(line)[0]) for line in lines)
    py.append(time.process_time() - t1)
    py_load.append(t1 - t0)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = subprocess.run([mz, "tokenize", "--gpt2", enc, bpe, "--file", agnews, "--stats"], check=True,
                         capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    stats = json.loads(run.stderr.decode().strip().split("\n")[-1])
    assert stats["tokens"] == n and stats["texts"] == len(lines), (stats, n)
    mz_s.append(max(stats["cpu_seconds"], 1e-9))
    mz_whole.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
mz_n = sum(len(l.split()) for l in run.stdout.decode().split("\n")[:-1])
assert mz_n == n, (mz_n, n)
ratios = sorted(p / m for p, m in zip(py, mz_s))
print(f"# GPT-2 tokenisation: AG News, {len(lines)} lines, {n} tokens, CPU seconds, {repeats} interleaved pairs")
print(f"tokenising only (timed inside each process): mz {n / statistics.median(mz_s):,.0f} tokens/s "
      f"({statistics.median(mz_s):.3f} s), Python reference {n / statistics.median(py):,.0f} tokens/s "
      f"({statistics.median(py):.2f} s), ratio {statistics.median(ratios):.1f}x (median of the pairs; each pair: "
      f"{', '.join(f'{r:.1f}' for r in ratios)})")
whole_py = min(p + l for p, l in zip(py, py_load))
print(f"whole process: mz {n / min(mz_whole):,.0f} tokens/s (start-up, LibTorch and assets included), "
      f"Python reference {n / whole_py:,.0f} tokens/s (loading included), ratio {whole_py / min(mz_whole):.1f}x")
PY
