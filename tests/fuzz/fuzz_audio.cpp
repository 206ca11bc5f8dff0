// libFuzzer target: audio files (libsndfile's formats) decoded by mz::audio::decode_audio, then, as
// `mz transcribe` reads them, through mz::audio::load_waveform: mixed down and resampled to 16 kHz. Either
// mz::AudioError naming the file, or [frames, channels] float32 samples and a waveform whose length is the
// resampled length of the frames. Resampling is arithmetic over the decoded rate, not parsing, and its cost grows
// with the rates: it runs only for up to 4096 frames giving at most 64 K samples, at rates whose ratio to 16 kHz
// reduces to terms of at most 640 (8, 11.025, 22.05, 44.1, 48 kHz...), to keep executions fast. tests/audio
// covers the others.
#include <cmath>
#include <fstream>
#include <numeric>

#include "harness.h"
#include "modelzoo/audio/io.h"
#include "modelzoo/errors.h"

using mz_fuzz::fail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::string path = mz_fuzz::temp_path("audio");
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  try {
    const mz::audio::DecodedAudio decoded = mz::audio::decode_audio(path);
    const std::int64_t frames = decoded.samples.size(0), rate = decoded.sample_rate;
    if (decoded.samples.dim() != 2 || frames < 1 || decoded.samples.size(1) < 1 || rate < 1 ||
        decoded.samples.scalar_type() != torch::kFloat32)
      fail("decoded " + c10::str(decoded.samples.sizes()) + " at " + std::to_string(rate) + " Hz");
    // torchaudio: ceil(new_freq * frames / orig_freq), with both rates divided by their gcd
    const std::int64_t g = std::gcd(rate, std::int64_t{16000});
    if (frames > 4096 || rate / g > 640 || 16000 / g > 640 || frames * 16000 > 65536 * rate) return 0;
    const torch::Tensor wave = mz::audio::load_waveform(path, 16000);
    const std::int64_t expected = (16000 / g * frames + rate / g - 1) / (rate / g);
    if (wave.dim() != 1 || wave.size(0) != expected || wave.scalar_type() != torch::kFloat32)
      fail("waveform of " + std::to_string(frames) + " frames at " + std::to_string(rate) + " Hz has shape " +
           c10::str(wave.sizes()) + ", expected [" + std::to_string(expected) + "]");
  } catch (const mz::AudioError& e) {
    if (e.file() != path) fail(std::string("error does not name the file: ") + e.what());
  }
  return 0;
}
