#include "builders/layers/amx.h"

#include <algorithm>
#include <cstring>

#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include "builders/layers/onednn.h"

namespace mz::amx {
namespace {

using c10::BFloat16;

constexpr std::int64_t kBlock = 32;  // rows and columns of the output a kernel call makes, and the k of one step
constexpr std::int64_t kTile = 16 * 32;  // bfloat16 elements of one tile: 16 rows of 64 bytes
constexpr std::int64_t kMaxBlockSteps = 32;  // steps of 32 inputs in a block of the inputs, with many of them

std::int64_t round_up(std::int64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }

// A row's split: hi = bf16(x), lo = bf16(x - hi), both rounded to nearest even.
void split_row(const float* x, BFloat16* hi, BFloat16* lo, std::int64_t in) {
  for (std::int64_t j = 0; j < in; ++j) {
    hi[j] = BFloat16(x[j]);
    lo[j] = BFloat16(x[j] - static_cast<float>(hi[j]));
  }
}

// The same with AVX-512's bfloat16 conversion (also round to nearest even; it flushes denormal floats to zero, below
// 1.2e-38, where the scalar loop keeps them).
__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) void split_row_avx512(const float* x, BFloat16* hi,
                                                                                     BFloat16* lo, std::int64_t in) {
  for (std::int64_t j = 0; j < in; j += 16) {
    const __mmask16 mask = in - j >= 16 ? __mmask16(0xffff) : __mmask16((1u << (in - j)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(mask, x + j);
    const __m256i h = reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v));
    const __m512 h_float = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    const __m256i l = reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(_mm512_sub_ps(v, h_float)));
    _mm256_mask_storeu_epi16(hi + j, mask, h);
    _mm256_mask_storeu_epi16(lo + j, mask, l);
  }
}

// Splits x, `rows` rows of `in` floats, `stride` apart, into parts [2, rows_out, in_out] (rows_out >= rows,
// in_out >= in), zero beyond x.
void split_rows(const float* x, std::int64_t stride, std::int64_t rows, std::int64_t in, BFloat16* parts,
                std::int64_t rows_out, std::int64_t in_out, bool portable) {
  static const bool avx512 = __builtin_cpu_supports("avx512bf16");
  const auto row = avx512 && !portable ? split_row_avx512 : split_row;
  BFloat16* lo_part = parts + rows_out * in_out;
  at::parallel_for(0, rows_out, std::max<std::int64_t>(1, 16384 / std::max<std::int64_t>(in_out, 1)),
                   [&](std::int64_t begin, std::int64_t end) {
                     for (std::int64_t r = begin; r < end; ++r) {
                       BFloat16 *hi = parts + r * in_out, *lo = lo_part + r * in_out;
                       const std::int64_t done = r < rows ? in : 0;
                       if (done) row(x + r * stride, hi, lo, in);
                       std::memset(static_cast<void*>(hi + done), 0, (in_out - done) * sizeof(BFloat16));
                       std::memset(static_cast<void*>(lo + done), 0, (in_out - done) * sizeof(BFloat16));
                     }
                   });
}

// The activations the kernel applies to its output blocks itself; others go after, on the whole output.
enum class Epilogue { kNone, kReLU, kGELU };

// GCC 12's AVX-512 intrinsics pass an undefined vector as the unused source of their unmasked forms, which
// -Wuninitialized reports (GCC bug 105593) in the three below that use them.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"

// e^x for x <= 0 (to 2e-7 relative): 2^n e^r with |r| <= ln(2) / 2, e^r by its Taylor series to r^7.
__attribute__((target("avx512f"))) __m512 exp_negative(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.f));  // e^-87 = 1.6e-38, as good as e^x below it (denormal or 0)
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145752f), x);  // ln 2 in two parts, the first exact in float
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860677e-6f), r);
  __m512 p = _mm512_set1_ps(1.f / 5040);
  for (float c : {1.f / 720, 1.f / 120, 1.f / 24, 1.f / 6, 0.5f, 1.f, 1.f})
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
  return _mm512_scalef_ps(p, n);
}

// GELU with erf, x/2 (1 + erf(x / sqrt 2)), erf by Abramowitz and Stegun's 7.1.26 (1.5e-7 absolute; LibTorch's
// AVX-512 GELU calls Sleef's erf, 1 ulp: the two differ by 4.4e-7 at most over -12..12, the test says).
__attribute__((target("avx512f"))) __m512 gelu(__m512 x) {
  const __m512 one = _mm512_set1_ps(1.f), z = _mm512_mul_ps(x, _mm512_set1_ps(0.707106781f));
  const __m512 a = _mm512_abs_ps(z);
  const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(a, _mm512_set1_ps(0.3275911f), one));
  __m512 p = _mm512_set1_ps(1.061405429f);
  for (float c : {-1.453152027f, 1.421413741f, -0.284496736f, 0.254829592f})
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(c));
  p = _mm512_mul_ps(p, t);
  const __m512 erf_a = _mm512_fnmadd_ps(p, exp_negative(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), a), a)), one);
  const __mmask16 negative = _mm512_cmp_ps_mask(z, _mm512_setzero_ps(), _CMP_LT_OQ);
  const __m512 erf_z = _mm512_mask_sub_ps(erf_a, negative, _mm512_setzero_ps(), erf_a);
  return _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(0.5f)), _mm512_add_ps(erf_z, one));
}

__attribute__((target("avx512f"))) __m512 finish(__m512 v, Epilogue e) {
  switch (e) {
    case Epilogue::kReLU: return _mm512_max_ps(v, _mm512_setzero_ps());
    case Epilogue::kGELU: return gelu(v);
    case Epilogue::kNone: break;
  }
  return v;
}

#pragma GCC diagnostic pop

struct alignas(64) TileConfig {
  std::uint8_t palette = 1, start_row = 0, reserved[14] = {};
  std::uint16_t colsb[16] = {};
  std::uint8_t rows[16] = {};
};

// One call's operands, for the inputs' steps [step_begin, step_end) of 32. a: x's split, [2, a_rows, a_stride]
// bfloat16 from row a_first_row, column 32 step_begin on; b: Linear::tiles_ (k / 32 steps per 16 columns); y:
// [rows, n] float; partial: [rows_a, n_padded] float, the sums of the steps before (null when there are none);
// rows_a: rows rounded up to 32.
struct Job {
  const BFloat16* a;
  std::int64_t a_first_row, a_rows, a_stride, rows_a, k;
  const BFloat16* b;
  std::int64_t n_padded;
  const float* bias;
  float* y;
  std::int64_t rows, n;
  float* partial;
  std::int64_t chunk;  // rows per task, a multiple of 32
  Epilogue epilogue;
  std::int64_t step_begin, step_end;
};

// The output's blocks of tasks [begin, end) for the input block of job: task t is columns 32 (t % blocks_n) onwards
// for the rows of chunk t / blocks_n.
__attribute__((target("amx-tile,amx-bf16,avx512f"))) void blocks(const Job& job, std::int64_t begin, std::int64_t end) {
  TileConfig config;
  for (int i = 0; i < 8; ++i) config.rows[i] = 16, config.colsb[i] = 64;
  _tile_loadconfig(&config);
  const std::int64_t steps = job.k / kBlock, blocks_n = job.n_padded / kBlock;
  const std::int64_t k = job.a_stride, stride = k * sizeof(BFloat16);
  const std::int64_t a_lo = job.a_rows * k, b_lo = job.n_padded * job.k;  // offsets of the low parts
  const bool first = job.step_begin == 0, last = job.step_end == steps;
  const std::int64_t partial_stride = job.n_padded * sizeof(float);
  alignas(64) float c[kBlock][kBlock];
  for (std::int64_t t = begin; t < end; ++t) {
    const std::int64_t column = t % blocks_n * kBlock, first_row = t / blocks_n * job.chunk;
    const BFloat16* b0 = job.b + column / 16 * steps * kTile;  // the tiles of 16 columns each
    const BFloat16* b1 = b0 + steps * kTile;
    for (std::int64_t r = first_row; r < std::min(first_row + job.chunk, job.rows_a); r += kBlock) {
      // Tiles 0-3: the output block's quarters; 4, 5: its rows' 16 x 32 steps of x (high, then low part); 6, 7: its
      // columns' 32 x 16 steps of w (low, then high part). Each step: x_hi·w_lo, x_hi·w_hi, x_lo·w_hi.
      float* sums = job.partial ? job.partial + r * job.n_padded + column : nullptr;
      if (first) {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
      } else {
        _tile_loadd(0, sums, partial_stride);
        _tile_loadd(1, sums + 16, partial_stride);
        _tile_loadd(2, sums + 16 * job.n_padded, partial_stride);
        _tile_loadd(3, sums + 16 * job.n_padded + 16, partial_stride);
      }
      const BFloat16* x = job.a + (r - job.a_first_row) * k - job.step_begin * kBlock;
      for (std::int64_t s = job.step_begin; s < job.step_end; ++s) {
        _tile_loadd(6, b0 + b_lo + s * kTile, 64);
        _tile_loadd(7, b1 + b_lo + s * kTile, 64);
        _tile_loadd(4, x + s * kBlock, stride);
        _tile_loadd(5, x + 16 * k + s * kBlock, stride);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
        _tile_loadd(6, b0 + s * kTile, 64);
        _tile_loadd(7, b1 + s * kTile, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
        _tile_loadd(4, x + a_lo + s * kBlock, stride);
        _tile_loadd(5, x + a_lo + 16 * k + s * kBlock, stride);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
      }
      if (!last) {  // the sums so far, for the next input block
        _tile_stored(0, sums, partial_stride);
        _tile_stored(1, sums + 16, partial_stride);
        _tile_stored(2, sums + 16 * job.n_padded, partial_stride);
        _tile_stored(3, sums + 16 * job.n_padded + 16, partial_stride);
        continue;
      }
      _tile_stored(0, &c[0][0], sizeof(c[0]));
      _tile_stored(1, &c[0][16], sizeof(c[0]));
      _tile_stored(2, &c[16][0], sizeof(c[0]));
      _tile_stored(3, &c[16][16], sizeof(c[0]));
      // The block's part within the output, plus the bias, then the activation.
      const std::int64_t valid_rows = std::min(kBlock, job.rows - r), cols = std::min(kBlock, job.n - column);
      const __mmask16 left = cols >= 16 ? 0xffff : (1u << cols) - 1;
      const __mmask16 right = cols >= 32 ? 0xffff : cols > 16 ? (1u << (cols - 16)) - 1 : 0;
      const float* bias = job.bias;
      const __m512 bias_left = bias ? _mm512_maskz_loadu_ps(left, bias + column) : _mm512_setzero_ps();
      const __m512 bias_right = bias ? _mm512_maskz_loadu_ps(right, bias + column + 16) : _mm512_setzero_ps();
      for (std::int64_t i = 0; i < valid_rows; ++i) {
        float* out = job.y + (r + i) * job.n + column;
        _mm512_mask_storeu_ps(out, left, finish(_mm512_add_ps(_mm512_load_ps(&c[i][0]), bias_left), job.epilogue));
        _mm512_mask_storeu_ps(out + 16, right,
                              finish(_mm512_add_ps(_mm512_load_ps(&c[i][16]), bias_right), job.epilogue));
      }
    }
  }
  _tile_release();
}

}  // namespace

bool available() {
  static const bool yes = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
    const bool amx_bf16 = edx & (1u << 22), amx_tile = edx & (1u << 24), avx512f = ebx & (1u << 16);
    constexpr long kRequestPermission = 0x1023, kTileData = 18;  // ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA
    return amx_bf16 && amx_tile && avx512f && syscall(SYS_arch_prctl, kRequestPermission, kTileData) == 0;
  }();
  return yes;
}

torch::Tensor split_bf16x3(const torch::Tensor& x, bool portable) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat && x.is_contiguous() && !x.is_mkldnn(),
              "mz::amx::split_bf16x3 takes a contiguous float matrix");
  torch::Tensor parts = torch::empty({2, x.size(0), x.size(1)}, x.options().dtype(torch::kBFloat16));
  split_rows(x.data_ptr<float>(), x.size(1), x.size(0), x.size(1), parts.data_ptr<BFloat16>(), x.size(0), x.size(1),
             portable);
  return parts;
}

Linear::Linear(const torch::Tensor& weight) : out_features_(weight.size(0)), in_features_(weight.size(1)) {
  TORCH_CHECK(weight.dim() == 2 && weight.scalar_type() == torch::kFloat && weight.numel() > 0,
              "mz::amx::Linear takes a non-empty 2-d float weight");
  TORCH_CHECK(available(), "mz::amx::Linear needs a CPU with AMX's bfloat16 units, which this process may use");
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  const std::int64_t n = round_up(out_features_), k = round_up(in_features_);
  torch::Tensor parts = torch::empty({2, n, k}, weight.options().dtype(torch::kBFloat16));
  const torch::Tensor w = weight.detach().contiguous();
  split_rows(w.data_ptr<float>(), in_features_, out_features_, in_features_, parts.data_ptr<BFloat16>(), n, k, false);
  // Each 16 columns' 32 x 16 steps, the k pairs of a step in VNNI order: [part, n / 16, k / 32, 16 (pair), 16, 2].
  tiles_ = parts.view({2, n / 16, 16, k / kBlock, 16, 2}).permute({0, 1, 3, 4, 2, 5}).contiguous();
}

torch::Tensor Linear::operator()(const torch::Tensor& x, const torch::Tensor& bias, std::optional<ops::Act> act) const {
  torch::Tensor y = onednn::packed_linear_output("mz::amx::Linear", x, bias, in_features_, out_features_);
  RECORD_FUNCTION("mz::amx::Linear", std::vector<c10::IValue>());
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  const torch::Tensor in = x.contiguous(), b = bias.defined() ? bias.contiguous() : bias;
  const std::int64_t rows = in.numel() / in_features_;
  if (rows == 0) return y;
  const std::int64_t rows_a = round_up(rows), k = round_up(in_features_), n = round_up(out_features_);
  // The rows in chunks whose split takes about 1 MB: a core's cache holds it while the core walks the columns. With
  // many inputs, the inputs in blocks of at most kMaxBlockSteps steps, whose chunks are a block's rows.
  const auto chunk_rows = [&](std::int64_t width) {
    return std::min(rows_a, std::max(kBlock, (std::int64_t{1} << 20) / (4 * width) / kBlock * kBlock));
  };
  const std::int64_t steps = k / kBlock, input_blocks = (steps + kMaxBlockSteps - 1) / kMaxBlockSteps;
  const std::int64_t block_steps = (steps + input_blocks - 1) / input_blocks, block = block_steps * kBlock;
  const bool blocked = input_blocks > 1 && chunk_rows(block) < rows_a;  // else x's split fits a core's cache
  const std::int64_t chunk = chunk_rows(blocked ? block : k);
  const std::int64_t chunks = (rows_a + chunk - 1) / chunk, blocks_n = n / kBlock;
  const Epilogue epilogue = act == ops::Act::ReLU ? Epilogue::kReLU
                            : act == ops::Act::GELU ? Epilogue::kGELU
                                                    : Epilogue::kNone;
  const float* x_data = in.data_ptr<float>();
  Job job{nullptr, 0, rows_a, k, rows_a, k, tiles_.data_ptr<BFloat16>(), n,
          b.defined() ? b.data_ptr<float>() : nullptr, y.data_ptr<float>(), rows, out_features_, nullptr, chunk,
          epilogue, 0, steps};
  if (!blocked) {  // x split whole, then each task is a chunk's rows by 32 columns
    const torch::Tensor a = torch::empty({2, rows_a, k}, x.options().dtype(torch::kBFloat16));
    split_rows(x_data, in_features_, rows, in_features_, a.data_ptr<BFloat16>(), rows_a, k, false);
    job.a = a.data_ptr<BFloat16>();
    at::parallel_for(0, chunks * blocks_n, 1, [&](std::int64_t begin, std::int64_t end) { blocks(job, begin, end); });
  } else {
    // Many inputs: each task, a chunk's rows by a group of columns, splits its rows' input blocks one at a time as
    // it comes to them, and keeps the sums between blocks in `partial`. Enough groups that the cores share the work
    // evenly.
    const torch::Tensor partial = torch::empty({rows_a, n}, x.options());
    job.partial = partial.data_ptr<float>();
    const std::int64_t groups = std::clamp<std::int64_t>(4 * at::get_num_threads() / chunks, 1, blocks_n);
    at::parallel_for(0, chunks * groups, 1, [&](std::int64_t begin, std::int64_t end) {
      torch::Tensor split = torch::empty({2, chunk, block}, x.options().dtype(torch::kBFloat16));
      BFloat16* parts = split.data_ptr<BFloat16>();
      for (std::int64_t t = begin; t < end; ++t) {
        const std::int64_t first = t / groups * chunk, group = t % groups;
        const std::int64_t valid_rows = std::clamp<std::int64_t>(rows - first, 0, chunk);
        const std::int64_t tasks_begin = t / groups * blocks_n;  // the chunk's first task in blocks()'s numbering
        Job task = job;
        task.a = parts;
        task.a_first_row = first;
        task.a_rows = chunk;
        task.a_stride = block;
        for (std::int64_t s = 0; s < steps; s += block_steps) {
          const std::int64_t column = s * kBlock;
          const std::int64_t valid_inputs = std::clamp<std::int64_t>(in_features_ - column, 0, block);
          split_rows(x_data + first * in_features_ + column, in_features_, valid_rows, valid_inputs, parts, chunk,
                     block, false);
          task.step_begin = s;
          task.step_end = std::min(steps, s + block_steps);
          blocks(task, tasks_begin + group * blocks_n / groups, tasks_begin + (group + 1) * blocks_n / groups);
        }
      }
    });
  }
  return act && epilogue == Epilogue::kNone ? ops::activate(*act, y, /*inplace=*/true) : y;
}

}  // namespace mz::amx
