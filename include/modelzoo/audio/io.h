// Audio in and text out for the speech encoders: decoding (libsndfile: WAV, FLAC, Ogg/Vorbis, ...), mixing down
// to mono, torchaudio 0.13's default resampling, and greedy CTC decoding with a bundle's labels.
//
//   auto wave = mz::audio::load_waveform("speech.flac", 16000);  // float32 [samples], mono, 16 kHz
//   auto [emissions, lengths] = model->forward(wave.unsqueeze(0));
//   auto ids = mz::audio::ctc_greedy_ids(emissions[0]);
//   std::string text = mz::audio::ctc_greedy_text(ids, labels);   // labels: weights.meta().extra["labels"]
//
// Untrusted input: a file that cannot be decoded, has no samples, or whose rate cannot be resampled throws
// mz::AudioError naming the file.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

namespace mz::audio {

struct DecodedAudio {
  torch::Tensor samples;  // float32 [frames, channels], as libsndfile's sf_readf_float gives them (ints scaled to [-1, 1))
  std::int64_t sample_rate = 0;
};

// Decodes a whole file. A truncated file decodes to the frames it has (as libsndfile and soundfile do).
DecodedAudio decode_audio(const std::string& path);

// The mean of the channels: [frames, channels] -> [frames].
torch::Tensor to_mono(const torch::Tensor& frames_by_channels);

// torchaudio.functional.resample(waveform, orig_freq, new_freq) with its defaults (sinc interpolation, Hann window,
// lowpass_filter_width 6, rolloff 0.99), in the waveform's dtype: torchaudio's kernel, applied to the taps inside its
// window only (the others are zero), so the same products summed in another order (float32: within 1e-5). Resamples
// the last dimension; the kernel for the last few rate pairs is kept. Throws mz::UsageError (subject `what`) for rates that are not positive or whose kernel would be
// larger than 16 M coefficients (rates with a tiny common divisor, e.g. 44101 Hz to 16 kHz).
torch::Tensor resample(const torch::Tensor& waveform, std::int64_t orig_freq, std::int64_t new_freq,
                       std::int64_t lowpass_filter_width = 6, double rolloff = 0.99,
                       const std::string& what = "resample");

// decode_audio + to_mono + resample to `sample_rate`: float32 [samples]. Errors name the file (mz::AudioError).
torch::Tensor load_waveform(const std::string& path, std::int64_t sample_rate);

// Greedy CTC: the best label of each frame of emissions [frames, labels].
std::vector<std::int64_t> ctc_greedy_ids(const torch::Tensor& emissions);
// Repeats collapsed, blanks (`blank`, label 0 in torchaudio's bundles) dropped, '|' as a space, words separated by
// one space.
std::string ctc_greedy_text(const std::vector<std::int64_t>& ids, const std::vector<std::string>& labels,
                            std::int64_t blank = 0);

}  // namespace mz::audio
