#!/usr/bin/env bash
# Speech encoders against torchaudio 0.13.1 (Debian's python3), in the same run, same thread count:
#  1. wav2vec2_base forward (random weights, eval, no grad), batch 1, at 1 s and 10 s of 16 kHz audio:
#     mz bench's median against torchaudio's median of REPEAT runs (target ratio <= 1.0).
#  2. decode + mono + resample to 16 kHz of 20 ten-second files (44.1 kHz stereo 16-bit WAV and 48 kHz FLAC, made
#     with sox): modelzoo (libsndfile + C++ resample) against soundfile + torchaudio.functional.resample,
#     best of REPEAT passes (target >= 2x faster).
#   usage: scripts/bench_audio.sh [REPEAT] [THREADS]   (default 5, 1)
#   env: MZ_BUILD (default build; scripts/build.sh builds it when it is "build")
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=${1:-5}
threads=${2:-1}
build=${MZ_BUILD:-build}
if [ "$build" = build ]; then scripts/build.sh >/dev/null; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export OMP_NUM_THREADS=$threads

for ms in 1000 10000; do
  ours=$("$build/mz" bench wav2vec2_base --size "$ms" --repeat "$repeat" --json)
  theirs=$(/usr/bin/python3 - "$ms" "$repeat" "$threads" <<'PY'
import json, statistics, sys, time
import torch, torchaudio
torch.set_num_threads(int(sys.argv[3]))
model = torchaudio.models.wav2vec2_base().eval()
x = torch.randn(1, int(sys.argv[1]) * 16)
times = []
with torch.inference_mode():
    model(x)
    for _ in range(int(sys.argv[2])):
        start = time.perf_counter()
        model(x)
        times.append((time.perf_counter() - start) * 1000)
print(json.dumps({"forward_ms": statistics.median(times)}))
PY
)
  /usr/bin/python3 - "$ours" "$theirs" "$ms" "$threads" <<'PY'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"wav2vec2_base forward, {int(sys.argv[3]) / 1000:g} s of 16 kHz audio, batch 1, {sys.argv[4]} thread(s), median:")
print(f"  modelzoo     {ours['forward_ms']:9.1f} ms")
print(f"  torchaudio   {theirs['forward_ms']:9.1f} ms")
print(f"  ratio        {ours['forward_ms'] / theirs['forward_ms']:9.2f}  (mz / torchaudio; target <= 1.0)")
PY
done

for i in $(seq 0 9); do
  sox -n -r 44100 -c 2 -b 16 "$work/a$i.wav" synth 10 pinknoise sine $((300 + i * 50)) vol 0.5
  sox -n -r 48000 -c 1 -b 24 "$work/b$i.flac" synth 10 whitenoise vol 0.5
done
ours=$("$build/tests/audio/audio_tool" bench 16000 "$repeat" "$work"/*.wav "$work"/*.flac)
theirs=$(/usr/bin/python3 - "$repeat" "$threads" "$work"/*.wav "$work"/*.flac <<'PY'
import json, sys, time
import soundfile as sf
import torch
import torchaudio.functional as F
torch.set_num_threads(int(sys.argv[2]))
best = 1e30
for _ in range(int(sys.argv[1])):
    start = time.perf_counter()
    for p in sys.argv[3:]:
        data, sr = sf.read(p, dtype="float32", always_2d=True)
        F.resample(torch.from_numpy(data).mean(1), sr, 16000)
    best = min(best, time.perf_counter() - start)
print(json.dumps({"seconds": best}))
PY
)
/usr/bin/python3 - "$ours" "$theirs" "$threads" <<'PY'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
audio = ours["audio_seconds"]
print(f"decode + mono + resample to 16 kHz, {ours['files']} files ({audio:g} s of audio), {sys.argv[3]} thread(s), best pass:")
print(f"  modelzoo                  {audio / ours['seconds']:8.0f} x real time ({ours['seconds'] * 1000:.0f} ms)")
print(f"  soundfile + torchaudio    {audio / theirs['seconds']:8.0f} x real time ({theirs['seconds'] * 1000:.0f} ms)")
print(f"  ratio                     {theirs['seconds'] / ours['seconds']:8.2f}x  (modelzoo's speed-up; target >= 2x)")
PY
