// Audio decoding (libsndfile), mono mix-down, torchaudio 0.13's sinc resampling and greedy CTC decoding.
#include "modelzoo/audio/io.h"

#include <sndfile.h>

#include <cmath>
#include <memory>
#include <numeric>
#include <sstream>

#include "modelzoo/errors.h"

namespace mz::audio {
namespace {

struct SndfileCloser {
  void operator()(SNDFILE* f) const { sf_close(f); }
};

constexpr std::int64_t kMaxKernel = std::int64_t{16} << 20;  // resampling coefficients (64 MB in float32)

}  // namespace

DecodedAudio decode_audio(const std::string& path) {
  SF_INFO info{};
  std::unique_ptr<SNDFILE, SndfileCloser> file(sf_open(path.c_str(), SFM_READ, &info));
  if (!file) {
    const int code = sf_error(nullptr);
    const std::string reason = sf_strerror(nullptr);
    if (code == SF_ERR_UNRECOGNISED_FORMAT) throw AudioError(path, "unsupported or unrecognised audio format (" + reason + ")");
    throw AudioError(path, "cannot decode: " + reason);
  }
  if (info.channels < 1 || info.samplerate < 1)
    throw AudioError(path, "invalid header (" + std::to_string(info.channels) + " channels, " +
                               std::to_string(info.samplerate) + " Hz)");
  const std::int64_t channels = info.channels;
  std::vector<float> data;
  // Read in blocks: a header's frame count is not trusted (a truncated file has fewer frames).
  constexpr sf_count_t kBlock = 1 << 16;
  std::vector<float> block(static_cast<std::size_t>(kBlock * channels));
  while (true) {
    const sf_count_t got = sf_readf_float(file.get(), block.data(), kBlock);
    if (got <= 0) break;
    data.insert(data.end(), block.begin(), block.begin() + got * channels);
    if (got < kBlock) break;
  }
  if (sf_error(file.get()) != SF_ERR_NO_ERROR && data.empty())
    throw AudioError(path, std::string("corrupt audio data: ") + sf_strerror(file.get()));
  const auto frames = static_cast<std::int64_t>(data.size()) / channels;
  if (frames == 0) throw AudioError(path, "no audio samples (zero-length audio)");
  DecodedAudio out;
  out.samples = torch::from_blob(data.data(), {frames, channels}, torch::kFloat32).clone();
  out.sample_rate = info.samplerate;
  return out;
}

torch::Tensor to_mono(const torch::Tensor& x) { return x.size(1) == 1 ? x.select(1, 0) : x.mean(1); }

// torchaudio.functional._get_sinc_resample_kernel and _apply_sinc_resample_kernel, op for op.
torch::Tensor resample(const torch::Tensor& waveform, std::int64_t orig_freq, std::int64_t new_freq,
                       std::int64_t lowpass_filter_width, double rolloff, const std::string& what) {
  if (orig_freq <= 0 || new_freq <= 0)
    throw UsageError(what, "sample rates must be positive, got " + std::to_string(orig_freq) + " -> " +
                               std::to_string(new_freq) + " Hz");
  if (lowpass_filter_width <= 0) throw UsageError(what, "lowpass_filter_width must be positive");
  if (!waveform.is_floating_point()) throw UsageError(what, "waveform must be floating point");
  if (orig_freq == new_freq) return waveform;
  const std::int64_t gcd = std::gcd(orig_freq, new_freq);
  const std::int64_t orig = orig_freq / gcd, target = new_freq / gcd;
  const double base_freq = static_cast<double>(std::min(orig, target)) * rolloff;
  const auto width = static_cast<std::int64_t>(std::ceil(static_cast<double>(lowpass_filter_width * orig) / base_freq));
  if (target * (2 * width + orig) > kMaxKernel)
    throw UsageError(what, "cannot resample " + std::to_string(orig_freq) + " Hz to " + std::to_string(new_freq) +
                               " Hz: the rates' ratio " + std::to_string(orig) + ":" + std::to_string(target) +
                               " needs a kernel of more than 16 M coefficients");
  const auto opts = torch::TensorOptions().dtype(waveform.scalar_type());
  const torch::Tensor idx = torch::arange(-width, width + orig, opts).unsqueeze(0).unsqueeze(0) / orig;
  torch::Tensor t = torch::arange(0, -target, -1, opts).unsqueeze(1).unsqueeze(2) / target + idx;
  t = t * base_freq;
  t = t.clamp(-static_cast<double>(lowpass_filter_width), static_cast<double>(lowpass_filter_width));
  const torch::Tensor window = torch::cos(t * M_PI / static_cast<double>(lowpass_filter_width) / 2).pow(2);
  t = t * M_PI;
  const double scale = base_freq / static_cast<double>(orig);
  torch::Tensor kernels = torch::where(t == 0, torch::ones({}, opts), t.sin() / t);
  kernels = kernels * (window * scale);

  const auto shape = waveform.sizes().vec();
  const torch::Tensor flat = waveform.reshape({-1, shape.back()});
  const std::int64_t num_wavs = flat.size(0), length = flat.size(1);
  const torch::Tensor padded = torch::constant_pad_nd(flat, {width, width + orig});
  torch::Tensor out = torch::conv1d(padded.unsqueeze(1), kernels, {}, orig).transpose(1, 2).reshape({num_wavs, -1});
  const std::int64_t target_length = (target * length + orig - 1) / orig;
  out = out.narrow(-1, 0, std::min(target_length, out.size(-1)));
  auto out_shape = shape;
  out_shape.back() = out.size(-1);
  return out.reshape(out_shape);
}

torch::Tensor load_waveform(const std::string& path, std::int64_t sample_rate) {
  const DecodedAudio audio = decode_audio(path);
  const torch::Tensor mono = to_mono(audio.samples);
  try {
    return resample(mono, audio.sample_rate, sample_rate, 6, 0.99, path);
  } catch (const UsageError& e) {
    throw AudioError(path, e.reason());
  }
}

std::vector<std::int64_t> ctc_greedy_ids(const torch::Tensor& emissions) {
  if (emissions.dim() != 2) throw UsageError("emissions", "must be [frames, labels], got " + c10::str(emissions.sizes()));
  const torch::Tensor best = emissions.argmax(-1).to(torch::kInt64).contiguous();
  return {best.data_ptr<std::int64_t>(), best.data_ptr<std::int64_t>() + best.numel()};
}

std::string ctc_greedy_text(const std::vector<std::int64_t>& ids, const std::vector<std::string>& labels,
                            std::int64_t blank) {
  std::string joined;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i > 0 && ids[i] == ids[i - 1]) continue;
    if (ids[i] == blank) continue;
    if (ids[i] < 0 || ids[i] >= static_cast<std::int64_t>(labels.size()))
      throw UsageError("labels", "label id " + std::to_string(ids[i]) + " out of range (" +
                                     std::to_string(labels.size()) + " labels)");
    joined += labels[static_cast<std::size_t>(ids[i])] == "|" ? std::string(" ") : labels[static_cast<std::size_t>(ids[i])];
  }
  std::istringstream words(joined);
  std::string word, text;
  while (words >> word) text += (text.empty() ? "" : " ") + word;
  return text;
}

}  // namespace mz::audio
