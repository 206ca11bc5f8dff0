// Audio decoding (libsndfile), mono mix-down, torchaudio 0.13's sinc resampling and greedy CTC decoding.
#include "modelzoo/audio/io.h"

#include <sndfile.h>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <numeric>
#include <sstream>
#include <tuple>

#include "modelzoo/errors.h"

namespace mz::audio {
namespace {

struct SndfileCloser {
  void operator()(SNDFILE* f) const { sf_close(f); }
};

// The resampling loops are inlined into one function that GCC compiles twice on x86-64, for AVX2 and for any
// x86-64, and picks between when the library loads. The arithmetic is the same in both (no FMA).
#if defined(__GNUC__)
#define MZ_INLINE inline __attribute__((always_inline))
#else
#define MZ_INLINE inline
#endif
// Not under GCC's ThreadSanitizer: the loader runs the ifunc resolver while it relocates the library, before the
// sanitizer's runtime is initialised, and the instrumented resolver crashes there.
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define MZ_AVX2_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define MZ_AVX2_CLONES
#endif

constexpr std::int64_t kMaxKernel = std::int64_t{16} << 20;  // resampling coefficients (64 MB in float32)

// x.mean(1) of float32 [frames, channels] as ATen computes it (the channels' sum times 1 / channels), in one pass:
// ATen's reduction over a dimension of 2 costs more than decoding the file. dst may be src (frame i's mean goes
// to element i, which no later frame reads).
void mix_down(const float* src, float* dst, std::int64_t frames, std::int64_t channels) {
  const float factor = 1.0f / static_cast<float>(channels);
  std::int64_t i = 0;
  if (channels == 2) {  // four frames at a time: both loads come before the store, so dst may be src
    using v4 = float __attribute__((vector_size(16)));
    for (; i + 4 <= frames; i += 4) {
      v4 a, b;
      std::memcpy(&a, src + 2 * i, sizeof a);
      std::memcpy(&b, src + 2 * i + 4, sizeof b);
      const v4 mean = (__builtin_shufflevector(a, b, 0, 2, 4, 6) + __builtin_shufflevector(a, b, 1, 3, 5, 7)) * factor;
      std::memcpy(dst + i, &mean, sizeof mean);
    }
  }
  for (src += i * channels; i < frames; ++i, src += channels) {
    float sum = 0;
    for (std::int64_t c = 0; c < channels; ++c) sum += src[c];
    dst[i] = sum * factor;
  }
}

// sum_k h[k] * x[k]: four (float: sixteen) independent chains, so the multiply-adds overlap.
template <typename T>
MZ_INLINE T dot(const T* h, const T* x, std::int64_t n) {
  T acc[4] = {0, 0, 0, 0};
  std::int64_t k = 0;
  for (; k + 4 <= n; k += 4)
    for (int u = 0; u < 4; ++u) acc[u] += h[k + u] * x[k + u];
  for (; k < n; ++k) acc[0] += h[k] * x[k];
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

template <>
MZ_INLINE float dot(const float* h, const float* x, std::int64_t n) {
  using v4 = float __attribute__((vector_size(16)));  // SSE on any x86-64, NEON on arm64 (GCC and Clang)
  v4 acc[4] = {};
  std::int64_t k = 0;
  for (; k + 16 <= n; k += 16)
    for (int u = 0; u < 4; ++u) {
      v4 hv, xv;
      std::memcpy(&hv, h + k + 4 * u, sizeof hv);
      std::memcpy(&xv, x + k + 4 * u, sizeof xv);
      acc[u] += hv * xv;
    }
  const v4 sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  float total = (sum[0] + sum[1]) + (sum[2] + sum[3]);
  for (; k < n; ++k) total += h[k] * x[k];
  return total;
}

// The same n-tap dot product at four places, x + i * step (n a multiple of 16): four independent sums in flight.
template <typename T>
MZ_INLINE void dot4(const T* h, const T* x, std::int64_t step, std::int64_t n, T out[4]) {
  for (int i = 0; i < 4; ++i) out[i] = dot(h, x + i * step, n);
}

template <>
MZ_INLINE void dot4(const float* h, const float* x, std::int64_t step, std::int64_t n, float out[4]) {
  // Eight lanes: two SSE registers each on any x86-64, one AVX register in the AVX2 clone; the same sums either way.
  using v8 = float __attribute__((vector_size(32)));
  v8 acc[4] = {};
  for (std::int64_t k = 0; k < n; k += 8) {
    v8 hv;
    std::memcpy(&hv, h + k, sizeof hv);
    for (int i = 0; i < 4; ++i) {
      v8 xv;
      std::memcpy(&xv, x + i * step + k, sizeof xv);
      acc[i] += hv * xv;
    }
  }
  for (int i = 0; i < 4; ++i)
    out[i] = ((acc[i][0] + acc[i][4]) + (acc[i][1] + acc[i][5])) + ((acc[i][2] + acc[i][6]) + (acc[i][3] + acc[i][7]));
}

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
  // Read in blocks of up to 64 K samples (as many as the file has bytes, at least 4 K) straight into the result.
  // A header's frame count is not trusted (a truncated file has fewer frames): it only sizes the first
  // allocation, to at most 64 M samples, and not at all when it claims more than 64 samples per byte of the
  // file (a few bytes claiming hours).
  std::error_code size_error;
  const auto bytes = static_cast<sf_count_t>(std::filesystem::file_size(path, size_error));
  const sf_count_t plausible = size_error ? 0 : bytes * 64;
  const sf_count_t block =
      std::max<sf_count_t>(1, std::clamp<sf_count_t>(size_error ? 0 : bytes, 1 << 12, 1 << 16) / channels);
  const sf_count_t claimed_samples = info.frames > plausible / channels ? 0 : info.frames * channels;
  const sf_count_t claimed = std::clamp<sf_count_t>(claimed_samples, 0, sf_count_t{1} << 26) / channels;
  // malloc'd, not zero-filled (every sample kept is written by libsndfile), and grown with realloc
  std::unique_ptr<float, decltype(&std::free)> data(nullptr, &std::free);
  std::size_t capacity = 0, done = 0;
  const auto grow = [&](std::size_t samples) {
    float* grown = static_cast<float*>(std::realloc(data.get(), samples * sizeof(float)));
    if (!grown) throw AudioError(path, "out of memory for " + std::to_string(samples) + " samples");
    data.release();
    data.reset(grown);
    capacity = samples;
  };
  grow(static_cast<std::size_t>((claimed + block) * channels));
  while (true) {
    const std::size_t need = done + static_cast<std::size_t>(block * channels);
    if (need > capacity) grow(std::max(need, capacity + capacity / 2));
    const sf_count_t got = sf_readf_float(file.get(), data.get() + done, block);
    done += static_cast<std::size_t>(std::max<sf_count_t>(got, 0) * channels);
    if (got < block) break;
  }
  if (sf_error(file.get()) != SF_ERR_NO_ERROR && done == 0)
    throw AudioError(path, std::string("corrupt audio data: ") + sf_strerror(file.get()));
  const auto frames = static_cast<std::int64_t>(done) / channels;
  if (frames == 0) throw AudioError(path, "no audio samples (zero-length audio)");
  DecodedAudio out;
  float* samples = data.release();
  out.samples = torch::from_blob(samples, {frames, channels}, [](void* p) { std::free(p); }, torch::kFloat32);
  out.sample_rate = info.samplerate;
  return out;
}

torch::Tensor to_mono(const torch::Tensor& x) {
  if (x.dim() != 2) throw UsageError("audio", "expected [frames, channels], got " + c10::str(x.sizes()));
  if (x.size(1) == 1) return x.select(1, 0);
  if (x.scalar_type() != torch::kFloat32) return x.mean(1);
  const torch::Tensor in = x.contiguous();
  torch::Tensor out = torch::empty({in.size(0)}, in.options());
  mix_down(in.data_ptr<float>(), out.data_ptr<float>(), in.size(0), in.size(1));
  return out;
}

namespace {

// torchaudio.functional._get_sinc_resample_kernel, op for op: one kernel of 2 * width + orig taps per output phase.
// Outside |t| < lowpass_filter_width a kernel is clamped to (almost exactly) zero. Kept here: for phase j, the taps
// inside, [first[j], last[j]) (about 2 * width of them), as row j of `inside`, zero-filled to a multiple of 16 so
// that a dot product runs in whole vectors.
struct SincKernel {
  torch::Tensor inside;  // [target, stride]
  std::vector<std::int64_t> first, last;
  std::vector<std::int64_t> whole;  // last - first rounded up to a multiple of 16 (<= stride)
  std::int64_t width = 0, stride = 0;
  std::int64_t min_first = 0, max_reach = 0;  // min of first, max of first + whole: a block's span on the signal
};

SincKernel make_sinc_kernel(std::int64_t orig, std::int64_t target, std::int64_t lowpass_filter_width, double rolloff,
                            torch::ScalarType dtype) {
  const double base_freq = static_cast<double>(std::min(orig, target)) * rolloff;
  SincKernel k;
  k.width = static_cast<std::int64_t>(std::ceil(static_cast<double>(lowpass_filter_width * orig) / base_freq));
  const auto opts = torch::TensorOptions().dtype(dtype);
  const torch::Tensor idx = torch::arange(-k.width, k.width + orig, opts).unsqueeze(0).unsqueeze(0) / orig;
  torch::Tensor t = torch::arange(0, -target, -1, opts).unsqueeze(1).unsqueeze(2) / target + idx;
  t = t * base_freq;
  t = t.clamp(-static_cast<double>(lowpass_filter_width), static_cast<double>(lowpass_filter_width));
  const torch::Tensor window = torch::cos(t * M_PI / static_cast<double>(lowpass_filter_width) / 2).pow(2);
  t = t * M_PI;
  const double scale = base_freq / static_cast<double>(orig);
  const torch::Tensor kernels =
      (torch::where(t == 0, torch::ones({}, opts), t.sin() / t) * (window * scale)).squeeze(1);  // [target, taps]
  const std::int64_t taps = kernels.size(1);
  for (std::int64_t j = 0; j < target; ++j) {
    std::int64_t lo = taps, hi = 0;
    for (std::int64_t i = 0; i < taps; ++i) {
      const double ti = (static_cast<double>(i - k.width) / static_cast<double>(orig) -
                         static_cast<double>(j) / static_cast<double>(target)) * base_freq;
      if (std::abs(ti) < static_cast<double>(lowpass_filter_width) + 1e-9) lo = std::min(lo, i), hi = i + 1;
    }
    k.first.push_back(std::min(lo, hi));
    k.last.push_back(hi);
    k.whole.push_back((hi - k.first.back() + 15) / 16 * 16);
    k.stride = std::max(k.stride, k.whole.back());
    k.max_reach = std::max(k.max_reach, k.first.back() + k.whole.back());
  }
  k.min_first = *std::min_element(k.first.begin(), k.first.end());
  k.inside = torch::zeros({target, k.stride}, opts);
  for (std::int64_t j = 0; j < target; ++j) {
    const auto j_ = static_cast<std::size_t>(j);
    k.inside[j].narrow(0, 0, k.last[j_] - k.first[j_]).copy_(kernels[j].narrow(0, k.first[j_], k.last[j_] - k.first[j_]));
  }
  return k;
}

// A file's rate is one of a handful: the last few kernels are kept (as torchaudio's Resample transform keeps its one).
std::shared_ptr<const SincKernel> sinc_kernel(std::int64_t orig, std::int64_t target, std::int64_t lowpass_filter_width,
                                              double rolloff, torch::ScalarType dtype) {
  using Key = std::tuple<std::int64_t, std::int64_t, std::int64_t, double, torch::ScalarType>;
  static std::mutex mutex;
  static std::vector<std::pair<Key, std::shared_ptr<const SincKernel>>> recent;
  const Key key{orig, target, lowpass_filter_width, rolloff, dtype};
  {
    std::lock_guard<std::mutex> lock(mutex);
    for (const auto& [k, kernel] : recent)
      if (k == key) return kernel;
  }
  auto kernel = std::make_shared<const SincKernel>(make_sinc_kernel(orig, target, lowpass_filter_width, rolloff, dtype));
  std::lock_guard<std::mutex> lock(mutex);
  if (recent.size() == 8) recent.erase(recent.begin());
  recent.emplace_back(key, kernel);
  return kernel;
}

}  // namespace

// torchaudio.functional.resample: the padded signal convolved with every phase's kernel (conv1d, stride orig), the
// phases interleaved, cut to ceil(target * length / orig). Each output here sums only its kernel's taps inside the
// window: the same products in another order.
// One signal's resampling job: conv1d over the signal padded with width zeros before and width + orig after, cut
// to out_length. The padding is not materialised: an output near an edge sums the taps that fall on the signal.
template <typename T>
struct Blocks {
  const SincKernel& k;
  std::int64_t orig, target;
  const T* in;
  std::int64_t length;
  T* dst;
  std::int64_t out_length;
};

// The outputs of blocks [begin, end): output n is phase n % target of block n / target (no division per sample).
template <typename T>
MZ_INLINE void resample_blocks(const Blocks<T>& job, std::int64_t begin, std::int64_t end) {
  const SincKernel& k = job.k;
  const std::int64_t orig = job.orig, target = job.target, length = job.length, out_length = job.out_length;
  const T* in = job.in;
  T* dst = job.dst;
  const T* inside = k.inside.data_ptr<T>();
  for (std::int64_t b = begin; b < end;) {
    const std::int64_t start = b * orig - k.width;  // tap 0's position in the signal
    if (b + 4 <= end && (b + 4) * target <= out_length && start + k.min_first >= 0 &&
        start + 3 * orig + k.max_reach <= length) {
      // Four blocks away from the edges: phase j of blocks b..b+3 shares a kernel row.
      for (std::int64_t j = 0; j < target; ++j) {
        const auto j_ = static_cast<std::size_t>(j);
        T r[4];
        dot4(inside + j * k.stride, in + start + k.first[j_], orig, k.whole[j_], r);
        for (int i = 0; i < 4; ++i) dst[(b + i) * target + j] = r[i];
      }
      b += 4;
      continue;
    }
    // One block: each phase's taps on the signal, in whole vectors inside.
    for (std::int64_t j = 0, phases = std::min(target, out_length - b * target); j < phases; ++j) {
      const auto j_ = static_cast<std::size_t>(j);
      const std::int64_t f = k.first[j_], l = k.last[j_];
      const T* h = inside + j * k.stride;
      T value = 0;
      if (start + f >= 0 && start + f + k.whole[j_] <= length) {
        value = dot(h, in + start + f, k.whole[j_]);
      } else {
        const std::int64_t lo = std::max(f, -start), hi = std::min(l, length - start);
        if (hi > lo) value = dot(h + (lo - f), in + start + lo, hi - lo);
      }
      dst[b * target + j] = value;
    }
    b += 1;
  }
}
#undef MZ_INLINE  // this file's own: a unity batch may hold another file that defines it

MZ_AVX2_CLONES void resample_blocks_f32(const Blocks<float>& job, std::int64_t begin, std::int64_t end) {
  resample_blocks(job, begin, end);
}

template <typename T>
void resample_range(const Blocks<T>& job, std::int64_t begin, std::int64_t end) {
  resample_blocks(job, begin, end);
}
template <>
void resample_range(const Blocks<float>& job, std::int64_t begin, std::int64_t end) {
  resample_blocks_f32(job, begin, end);
}

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
  if (target * (2 * std::ceil(static_cast<double>(lowpass_filter_width * orig) / base_freq) + orig) > kMaxKernel)
    throw UsageError(what, "cannot resample " + std::to_string(orig_freq) + " Hz to " + std::to_string(new_freq) +
                               " Hz: the rates' ratio " + std::to_string(orig) + ":" + std::to_string(target) +
                               " needs a kernel of more than 16 M coefficients");
  const auto sinc = sinc_kernel(orig, target, lowpass_filter_width, rolloff, waveform.scalar_type());
  const auto opts = torch::TensorOptions().dtype(waveform.scalar_type());

  const auto shape = waveform.sizes().vec();
  const torch::Tensor flat = waveform.reshape({-1, shape.back()});
  const std::int64_t num_wavs = flat.size(0), length = flat.size(1);
  const torch::Tensor in_all = flat.contiguous();
  // cut to ceil(target * length / orig) as torchaudio does
  const std::int64_t blocks = length / orig + 1;  // (padded length - taps) / orig + 1
  const std::int64_t out_length = std::min((target * length + orig - 1) / orig, blocks * target);
  torch::Tensor out = torch::empty({num_wavs, out_length}, opts);
  AT_DISPATCH_FLOATING_TYPES(waveform.scalar_type(), "resample", [&] {
    for (std::int64_t w = 0; w < num_wavs; ++w) {
      const scalar_t* in = in_all.data_ptr<scalar_t>() + w * length;
      scalar_t* dst = out.data_ptr<scalar_t>() + w * out_length;
      const Blocks<scalar_t> job{*sinc, orig, target, in, length, dst, out_length};
      const std::int64_t used_blocks = (out_length + target - 1) / target;
      at::parallel_for(0, used_blocks, std::max<std::int64_t>(4, 4096 / target),
                       [&](std::int64_t begin, std::int64_t end) { resample_range(job, begin, end); });
    }
  });
  auto out_shape = shape;
  out_shape.back() = out_length;
  return out.reshape(out_shape);
}

torch::Tensor load_waveform(const std::string& path, std::int64_t sample_rate) {
  const DecodedAudio audio = decode_audio(path);
  const std::int64_t frames = audio.samples.size(0);
  float* samples = audio.samples.data_ptr<float>();
  if (audio.samples.size(1) > 1) mix_down(samples, samples, frames, audio.samples.size(1));  // in the decoded buffer
  const torch::Tensor mono = audio.samples.view({-1}).narrow(0, 0, frames);
  // A header's sample rate is untrusted: a few seconds "at 1 Hz" would resample to billions of samples.
  constexpr std::int64_t kMaxSamples = std::int64_t{1} << 28;  // 1 GiB of float32, 4.6 hours at 16 kHz
  if (sample_rate > 0 && static_cast<double>(frames) * sample_rate / audio.sample_rate > kMaxSamples)
    throw AudioError(path, std::to_string(frames) + " frames at " + std::to_string(audio.sample_rate) + " Hz would be over " +
                               std::to_string(kMaxSamples) + " samples at " + std::to_string(sample_rate) + " Hz");
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
