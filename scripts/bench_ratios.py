#!/usr/bin/python3
"""One row of the bench_infer.sh and bench_detect.sh tables.

Usage: bench_ratios.py WIDTH NAME COLUMN RUN...
The runs are JSON objects with "forward_ms", ROUNDS rounds of the four ways in order (torchvision eager,
TorchScript optimised, mz, mz optimised). Prints each way's median over the rounds, and the ratios mz/tv,
opt/tv and opt/jit, each the median of the rounds' own ratios: a round runs its four ways back to back, so
the machine's drift (20-30% within minutes on a VM) cancels within a round more than across rounds.
"""
import json
import statistics
import sys

width, name, column, *runs = int(sys.argv[1]), sys.argv[2], sys.argv[3], *map(json.loads, sys.argv[4:])
if not runs or len(runs) % 4:
    sys.exit(f"bench_ratios.py: expected rounds of four runs, got {len(runs)} runs")
rounds = [[r["forward_ms"] for r in runs[i:i + 4]] for i in range(0, len(runs), 4)]
tv, jit, mz, opt = (statistics.median(r[i] for r in rounds) for i in range(4))


def ratio(a, b):
    return statistics.median(r[a] / r[b] for r in rounds)


print(f"{name:{width}s} {column:>5s} {tv:9.1f} {jit:9.1f} {mz:9.1f} {opt:9.1f}   "
      f"{ratio(2, 0):8.3f} {ratio(3, 0):8.3f} {ratio(3, 1):8.3f}")
