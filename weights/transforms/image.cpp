// JPEG and PNG decoding to RGB as PIL's Image.open(...).convert("RGB") does it. LibTorch-free (the
// fuzzer builds this file on its own). libjpeg and libpng report errors through callbacks that
// must not return; ours longjmp back into a frame that holds no C++ objects with destructors, and
// the error becomes an mz::ImageError naming the file.
#include "modelzoo/transforms/image.h"

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>

#include <sys/stat.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

namespace mz {
namespace {

constexpr std::uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

// PIL's MULDIV255 and cmyk2rgb (libImaging/Convert.c).
inline std::uint8_t muldiv255(int a, int b) {
  const int tmp = a * b + 128;
  return static_cast<std::uint8_t>(((tmp >> 8) + tmp) >> 8);
}
inline std::uint8_t clip8(int v) { return v <= 0 ? 0 : v >= 255 ? 255 : static_cast<std::uint8_t>(v); }

// Shared by both decoders: everything that must survive a longjmp lives here, owned by the caller.
struct DecodeState {
  const std::uint8_t* data;
  std::size_t size;
  std::size_t pos;  // PNG read position
  std::uint64_t max_pixels;
  std::vector<std::uint8_t>* pixels;
  std::unique_ptr<std::uint8_t[]>* scratch;  // not zero-filled: always written before it is read
  std::vector<std::uint8_t*>* rows;
  const std::function<std::array<int, 4>(int, int)>* region;
  int width, height;
  char message[JMSG_LENGTH_MAX + 64];
};

void check_size(DecodeState& s, std::uint64_t w, std::uint64_t h, const char** err) {
  if (w == 0 || h == 0) *err = "image has zero width or height";
  else if (w * h > s.max_pixels) *err = "image too large (more pixels than the decompression-bomb limit)";
}

// ---- JPEG -------------------------------------------------------------------------------------
struct JpegError {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  DecodeState* state;
};

[[noreturn]] void jpeg_fail(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  char buffer[JMSG_LENGTH_MAX];
  (*cinfo->err->format_message)(cinfo, buffer);
  std::snprintf(err->state->message, sizeof err->state->message, "%s", buffer);
  std::longjmp(err->jump, 1);
}

// Warnings are silent, except a premature end of data: PIL refuses truncated JPEGs, and so do we
// (libjpeg would pad the image with grey).
void jpeg_message(j_common_ptr cinfo, int level) {
  if (level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) {
    auto* err = reinterpret_cast<JpegError*>(cinfo->err);
    std::snprintf(err->state->message, sizeof err->state->message, "truncated JPEG data");
    std::longjmp(err->jump, 1);
  }
  if (level == -1) cinfo->err->num_warnings++;
}

void jpeg_silent(j_common_ptr) {}

// Returns nullptr on success, else an error message (in state.message or a literal).
const char* decode_jpeg(DecodeState& s) {
  // Only trivially destructible locals below: longjmp may skip this frame's end.
  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.pub);
  err.pub.error_exit = jpeg_fail;
  err.pub.emit_message = jpeg_message;
  err.pub.output_message = jpeg_silent;
  err.state = &s;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return s.message;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, s.data, static_cast<unsigned long>(s.size));
  jpeg_read_header(&cinfo, TRUE);
  const char* error = nullptr;
  check_size(s, cinfo.image_width, cinfo.image_height, &error);
  if (error) {
    jpeg_destroy_decompress(&cinfo);
    return error;
  }
  // PIL: 1 component -> "L", 3 -> "RGB" (libjpeg's YCbCr->RGB), 4 -> "CMYK" ("CMYK;I" with an
  // Adobe marker); YCCK is converted to CMYK by libjpeg.
  bool inverted = false;
  switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE: cinfo.out_color_space = JCS_GRAYSCALE; break;
    case JCS_CMYK:
    case JCS_YCCK:
      cinfo.out_color_space = JCS_CMYK;
      inverted = cinfo.saw_Adobe_marker;
      break;
    default: cinfo.out_color_space = JCS_RGB; break;
  }
  jpeg_start_decompress(&cinfo);
  const int w = static_cast<int>(cinfo.output_width), h = static_cast<int>(cinfo.output_height);
  const int n = cinfo.output_components;
  if (n != 1 && n != 3 && n != 4) {
    jpeg_destroy_decompress(&cinfo);
    return "unsupported number of JPEG components";
  }
  s.width = w;
  s.height = h;
  s.pixels->resize(static_cast<std::size_t>(w) * h * 3);
  s.scratch->reset(new std::uint8_t[static_cast<std::size_t>(w) * n]);
  // Only the caller's region is decoded, plus a margin so that nothing inside it can differ from a full
  // decode: chroma upsampling reads one block beyond a pixel's own, and the block smoothing libjpeg applies to a
  // progressive image with incomplete scans reads two blocks on each side (a block is 8 pixels times the
  // largest sampling factor). Rows below are still entropy-decoded, so truncation is seen.
  JDIMENSION col0 = 0, cols = static_cast<JDIMENSION>(w);
  int row0 = 0, row1 = h;
  if (s.region && *s.region) {
    const std::array<int, 4> r = (*s.region)(w, h);
    const int mx = 3 * 8 * cinfo.max_h_samp_factor, my = 3 * 8 * cinfo.max_v_samp_factor;
    const int x0 = std::max(0, r[0] - mx), x1 = std::min(w, r[0] + r[2] + mx);
    row0 = std::max(0, r[1] - my);
    row1 = std::min(h, r[1] + r[3] + my);
    if (x0 > 0 || x1 < w) {
      col0 = static_cast<JDIMENSION>(x0);
      cols = static_cast<JDIMENSION>(std::max(1, x1 - x0));
      jpeg_crop_scanline(&cinfo, &col0, &cols);
    }
    if (row0 > 0) jpeg_skip_scanlines(&cinfo, static_cast<JDIMENSION>(row0));
  }
  const int cw = static_cast<int>(cols);
  while (cinfo.output_scanline < static_cast<JDIMENSION>(row1)) {
    const std::size_t y = cinfo.output_scanline;
    std::uint8_t* out = s.pixels->data() + (y * w + col0) * 3;
    JSAMPROW row = n == 3 ? out : s.scratch->get();
    jpeg_read_scanlines(&cinfo, &row, 1);
    if (n == 1) {
      for (int x = 0; x < cw; ++x) out[3 * x] = out[3 * x + 1] = out[3 * x + 2] = row[x];
    } else if (n == 4) {
      for (int x = 0; x < cw; ++x) {
        int c = row[4 * x], m = row[4 * x + 1], yy = row[4 * x + 2], k = row[4 * x + 3];
        if (inverted) c = 255 - c, m = 255 - m, yy = 255 - yy, k = 255 - k;
        const int nk = 255 - k;
        out[3 * x] = clip8(nk - muldiv255(c, nk));
        out[3 * x + 1] = clip8(nk - muldiv255(m, nk));
        out[3 * x + 2] = clip8(nk - muldiv255(yy, nk));
      }
    }
  }
  // The rows below the region are skipped but for the last, which is read: skipping to the end would
  // mark the image finished without reading the rest of the file, so a stray marker after the scan
  // (a second SOF, a bogus DHT: PIL's "broken data stream") would pass unseen.
  if (cinfo.output_scanline + 1 < cinfo.output_height)
    jpeg_skip_scanlines(&cinfo, cinfo.output_height - 1 - cinfo.output_scanline);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = s.scratch->get();
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return nullptr;
}

// ---- PNG --------------------------------------------------------------------------------------
[[noreturn]] void png_fail(png_structp png, png_const_charp message) {
  auto* s = static_cast<DecodeState*>(png_get_error_ptr(png));
  std::snprintf(s->message, sizeof s->message, "%s", message);
  png_longjmp(png, 1);
}
void png_warn(png_structp, png_const_charp) {}

void png_read_memory(png_structp png, png_bytep out, png_size_t n) {
  auto* s = static_cast<DecodeState*>(png_get_io_ptr(png));
  if (n > s->size - s->pos) png_error(png, "truncated PNG data");
  std::memcpy(out, s->data + s->pos, n);
  s->pos += n;
}

const char* decode_png(DecodeState& s) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &s, png_fail, png_warn);
  if (!png) return "out of memory";
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_read_struct(&png, nullptr, nullptr);
    return "out of memory";
  }
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, &info, nullptr);
    return s.message;
  }
  png_set_read_fn(png, &s, png_read_memory);
  // Only IHDR, PLTE and IDAT make the pixels: every other chunk is skipped as it streams past, never
  // buffered, so a 57-byte file claiming a 1 GiB text chunk costs nothing. The cap bounds what is left.
  static constexpr png_byte ignored[] = "bKGD\0cHRM\0eXIf\0gAMA\0hIST\0iCCP\0iTXt\0oFFs\0pCAL\0pHYs\0sBIT\0"
                                        "sCAL\0sPLT\0sRGB\0tEXt\0tIME\0tRNS\0zTXt";
  png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, nullptr, 0);
  png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, ignored, static_cast<int>(sizeof ignored / 5));
  png_set_chunk_malloc_max(png, 1 << 20);
  png_read_info(png, info);
  png_uint_32 w = 0, h = 0;
  int depth = 0, color = 0;
  png_get_IHDR(png, info, &w, &h, &depth, &color, nullptr, nullptr, nullptr);
  const char* error = nullptr;
  check_size(s, w, h, &error);
  if (error) {
    png_destroy_read_struct(&png, &info, nullptr);
    return error;
  }
  // PIL: palette -> lookup (transparency dropped); 1/2/4-bit grey scaled to 8 bits; 16-bit samples
  // keep their high byte, except 16-bit grey (mode "I") which PIL clips to 255 on convert("RGB").
  // Palette images are read as indices and looked up below, as PIL does: an index past the end of
  // the palette gives PIL's grey ramp (i, i, i) where libpng's expansion would give black.
  const bool palette = color == PNG_COLOR_TYPE_PALETTE;
  std::uint8_t table[256][3];
  if (palette) {
    png_set_packing(png);
    for (int i = 0; i < 256; ++i) table[i][0] = table[i][1] = table[i][2] = static_cast<std::uint8_t>(i);
    png_colorp entries = nullptr;
    int entry_count = 0;
    if (png_get_PLTE(png, info, &entries, &entry_count) == PNG_INFO_PLTE)
      for (int i = 0; i < entry_count && i < 256; ++i)
        table[i][0] = entries[i].red, table[i][1] = entries[i].green, table[i][2] = entries[i].blue;
  }
  if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  const bool grey16 = color == PNG_COLOR_TYPE_GRAY && depth == 16;
  if (depth == 16 && !grey16) png_set_strip_16(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const int n = png_get_channels(png, info);
  const std::size_t rowbytes = png_get_rowbytes(png, info);
  if (rowbytes != static_cast<std::size_t>(w) * n * (grey16 ? 2 : 1)) png_error(png, "unexpected PNG row layout");
  s.width = static_cast<int>(w);
  s.height = static_cast<int>(h);
  // 8-bit RGB is read straight into the result, other layouts into scratch and converted below.
  const bool rgb8 = n == 3 && !grey16;
  std::uint8_t* buffer;
  if (rgb8) {
    s.pixels->resize(static_cast<std::size_t>(w) * h * 3);
    buffer = s.pixels->data();
  } else {
    s.scratch->reset(new std::uint8_t[rowbytes * h]);
    buffer = s.scratch->get();
  }
  s.rows->resize(h);
  for (png_uint_32 y = 0; y < h; ++y) (*s.rows)[y] = buffer + y * rowbytes;
  png_read_image(png, s.rows->data());
  png_read_end(png, nullptr);
  png_destroy_read_struct(&png, &info, nullptr);
  if (rgb8) return nullptr;

  s.pixels->resize(static_cast<std::size_t>(w) * h * 3);
  const std::uint8_t* in = s.scratch->get();
  std::uint8_t* out = s.pixels->data();
  const std::size_t count = static_cast<std::size_t>(w) * h;
  if (palette) {
    for (std::size_t i = 0; i < count; ++i) std::memcpy(out + 3 * i, table[in[i]], 3);
  } else if (grey16) {
    for (std::size_t i = 0; i < count; ++i) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = clip8((in[2 * i] << 8) | in[2 * i + 1]);
  } else if (n == 1 || n == 2) {
    for (std::size_t i = 0; i < count; ++i) out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = in[n * i];
  } else {
    for (std::size_t i = 0; i < count; ++i)
      out[3 * i] = in[4 * i], out[3 * i + 1] = in[4 * i + 1], out[3 * i + 2] = in[4 * i + 2];
  }
  return nullptr;
}

}  // namespace

Image decode_image(const std::uint8_t* data, std::size_t size, const std::string& name, const DecodeOptions& options) {
  Image image;
  std::unique_ptr<std::uint8_t[]> scratch;
  std::vector<std::uint8_t*> rows;
  DecodeState s{};
  s.data = data;
  s.size = size;
  s.max_pixels = options.max_pixels;
  s.pixels = &image.pixels;
  s.scratch = &scratch;
  s.rows = &rows;
  s.region = &options.region;
  const char* error;
  if (size == 0) {
    throw ImageError(name, "empty file, not an image");
  } else if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) {
    error = decode_jpeg(s);
    if (error) throw ImageError(name, std::string("corrupt JPEG: ") + error);
  } else if (size >= 8 && std::memcmp(data, kPngSignature, 8) == 0) {
    error = decode_png(s);
    if (error) throw ImageError(name, std::string("corrupt PNG: ") + error);
  } else {
    throw ImageError(name, "not a JPEG or PNG image (unrecognised signature)");
  }
  image.width = s.width;
  image.height = s.height;
  image.channels = 3;
  return image;
}

Image decode_image(const std::string& path, const DecodeOptions& options) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw ImageError(path, std::string("cannot open: ") + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw ImageError(path, "not a regular file");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ImageError(path, std::string("cannot open: ") + std::strerror(errno));
  const std::size_t size = static_cast<std::size_t>(st.st_size);
  std::unique_ptr<std::uint8_t[]> bytes(new std::uint8_t[size]);  // not zero-filled: read over
  if (size > 0 && !f.read(reinterpret_cast<char*>(bytes.get()), static_cast<std::streamsize>(size)))
    throw ImageError(path, "cannot read the whole file");
  return decode_image(bytes.get(), size, path, options);
}

// ---- Resampling (PIL's libImaging/Resample.c for 8-bit images) -------------------------------
// Per axis, the filter support grows with the downscale factor (antialiasing); coefficients are
// normalised in double and rounded to 22-bit fixed point; the horizontal pass runs first and both
// passes round to uint8. Only the requested output window is computed.
namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}
double bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

struct Coeffs {
  int ksize = 0;
  std::vector<int> xmin, count;    // per output index in the window
  std::vector<std::int32_t> k;     // ksize per output index, fixed point
};

// PIL's precompute_coeffs + normalize_coeffs_8bpc for output indices [o0, o0 + n).
Coeffs precompute(int in_size, int out_size, int o0, int n, double (*filter)(double), double support0) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = support0 * filterscale;
  Coeffs c;
  c.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.xmin.resize(n);
  c.count.resize(n);
  c.k.assign(static_cast<std::size_t>(n) * c.ksize, 0);
  std::vector<double> w(c.ksize);
  for (int i = 0; i < n; ++i) {
    const int xx = o0 + i;
    const double center = (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[x] = filter((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? w[x] / ww : w[x];
      c.k[static_cast<std::size_t>(i) * c.ksize + x] =
          static_cast<std::int32_t>(v < 0 ? -0.5 + v * (1 << kPrecisionBits) : 0.5 + v * (1 << kPrecisionBits));
    }
    c.xmin[i] = xmin;
    c.count[i] = xmax;
  }
  return c;
}

// PIL's clip8 for a fixed-point sum (which starts at one half, so the shift rounds). Branch-free, so
// that it vectorises.
inline std::uint8_t clip_fixed(std::int32_t in) {
  return static_cast<std::uint8_t>(std::min(std::max(in >> kPrecisionBits, 0), 255));
}

// The helpers of resample() are always inlined, so that they are compiled for its target (below).
#define MZ_INLINE [[gnu::always_inline]] inline

// The inner loop of both passes: out[i] = clip(sum_j src[j * stride + i] * k[j]) for i < W, i.e.
// PIL's sum over the filter taps, done at once for W samples that share the coefficients. Integer
// sums do not depend on the order, so the result is PIL's. The W accumulators stay in registers.
template <int W>
MZ_INLINE void convolve_lanes(const std::uint8_t* src, std::size_t stride, const std::int32_t* k, int taps,
                              std::uint8_t* out) {
  std::int32_t acc[W];
  for (int i = 0; i < W; ++i) acc[i] = 1 << (kPrecisionBits - 1);
  for (int j = 0; j < taps; ++j, src += stride)
    for (int i = 0; i < W; ++i) acc[i] += src[i] * k[j];
  for (int i = 0; i < W; ++i) out[i] = clip_fixed(acc[i]);
}

constexpr int kBlockRows = 32;          // rows per block of the horizontal pass (see resample)
constexpr int kLanes = 3 * kBlockRows;  // the bytes of one pixel column of a block

// convolve_lanes for i < len, in runs of kLanes (the last run may overlap the one before it and
// rewrite the same bytes), or lane by lane when len is shorter.
MZ_INLINE void convolve(const std::uint8_t* src, std::size_t stride, const std::int32_t* k, int taps, std::size_t len,
                        std::uint8_t* out) {
  if (len < kLanes) {
    for (std::size_t i = 0; i < len; ++i) convolve_lanes<1>(src + i, stride, k, taps, out + i);
    return;
  }
  for (std::size_t i = 0; i < len; i += kLanes) {
    const std::size_t at = std::min(i, len - kLanes);
    convolve_lanes<kLanes>(src + at, stride, k, taps, out + at);
  }
}

// dst[c * dst_stride + r] = src[r * src_stride + c] for r < rows, c < cols: in 16 x 16 byte tiles with
// vector shuffles (the last tile of a row or column overlaps the one before it and rewrites the same
// bytes), byte by byte when rows or cols < 16. In a tile, interleaving rows i and i + 8 into rows 2i
// and 2i + 1 rotates the 8-bit (row, column) index left by one bit: four rounds swap row and column.
MZ_INLINE void transpose(const std::uint8_t* src, std::size_t src_stride, std::uint8_t* dst, std::size_t dst_stride,
                         std::size_t rows, std::size_t cols) {
#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)  // GCC >= 12, Clang
  if (rows >= 16 && cols >= 16) {
    typedef std::uint8_t Bytes16 __attribute__((vector_size(16)));
    for (std::size_t r = 0; r < rows; r += 16)
      for (std::size_t c = 0; c < cols; c += 16) {
        const std::size_t r0 = std::min(r, rows - 16), c0 = std::min(c, cols - 16);
        Bytes16 t[16], u[16];
        for (int i = 0; i < 16; ++i) std::memcpy(&t[i], src + (r0 + i) * src_stride + c0, 16);
        for (int round = 0; round < 4; ++round) {
          for (int i = 0; i < 8; ++i) {
            u[2 * i] = __builtin_shufflevector(t[i], t[i + 8], 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
            u[2 * i + 1] =
                __builtin_shufflevector(t[i], t[i + 8], 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
          }
          std::memcpy(t, u, sizeof t);
        }
        for (int i = 0; i < 16; ++i) std::memcpy(dst + (c0 + i) * dst_stride + r0, &t[i], 16);
      }
    return;
  }
#endif
#endif
  for (std::size_t r = 0; r < rows; ++r)
    for (std::size_t c = 0; c < cols; ++c) dst[c * dst_stride + r] = src[r * src_stride + c];
}
#undef MZ_INLINE  // this file's own: a unity batch may hold another file that defines it

// The int32 multiplies vectorise far better with AVX2 (vpmulld) than with baseline x86-64's SSE2, so
// resample() is also compiled for AVX2, and the loader picks the version the CPU runs (ifunc). Not under GCC's
// ThreadSanitizer, whose instrumented ifunc resolver would run before its runtime is initialised.
#if defined(__x86_64__) && defined(__GLIBC__) && !defined(__SANITIZE_THREAD__)
#define MZ_TARGET_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define MZ_TARGET_CLONES
#endif

// Both passes, reading input columns [xa, xb) of rows [ya, yb).
MZ_TARGET_CLONES
void resample(const Image& in, const Coeffs& h, const Coeffs& v, int xa, int xb, int ya, int yb, Image& out) {
  const std::size_t in_line = in.width * std::size_t{3}, line = out.width * std::size_t{3};
  // Horizontal pass, on blocks of n rows (the last block overlaps the one before it) transposed:
  // block[b * n + r] = byte b of row r, so that an input pixel column is the 3n contiguous bytes at
  // (x - xa) * 3n, and an output pixel column is convolve() over them. Then transposed back into tmp.
  const int n = std::min(kBlockRows, yb - ya);
  const std::size_t len = 3 * n;
  const std::size_t cols = static_cast<std::size_t>(xb - xa) * 3;  // bytes of an input row
  std::unique_ptr<std::uint8_t[]> block(new std::uint8_t[cols * n]);  // none of these is zero-filled
  std::unique_ptr<std::uint8_t[]> block_out(new std::uint8_t[line * n]);
  std::unique_ptr<std::uint8_t[]> tmp(new std::uint8_t[line * (yb - ya)]);  // rows [ya, yb), resampled
  for (int y = ya; y < yb; y += n) {
    const int y0 = std::min(y, yb - n);
    transpose(in.pixels.data() + y0 * in_line + xa * 3, in_line, block.get(), n, n, cols);
    for (std::size_t x = 0; x < static_cast<std::size_t>(out.width); ++x) {
      const std::uint8_t* from = block.get() + (h.xmin[x] - xa) * len;
      convolve(from, len, &h.k[x * h.ksize], h.count[x], len, block_out.get() + x * len);
    }
    transpose(block_out.get(), n, tmp.get() + (y0 - ya) * line, line, line, n);
  }
  // Vertical pass: an output row is convolve() over rows of tmp.
  for (int y = 0; y < out.height; ++y)
    convolve(tmp.get() + (v.xmin[y] - ya) * line, line, &v.k[static_cast<std::size_t>(y) * v.ksize], v.count[y], line,
             out.pixels.data() + y * line);
}

// The input indices [first, last) that the coefficients read ({in_size, 0} for none).
std::pair<int, int> span(const Coeffs& c, int in_size) {
  int first = in_size, last = 0;
  for (std::size_t i = 0; i < c.xmin.size(); ++i)
    first = std::min(first, c.xmin[i]), last = std::max(last, c.xmin[i] + c.count[i]);
  return {first, last};
}

// PIL's NEAREST resize (ImagingScaleAffine): source coordinates accumulate `scale` from the first
// pixel center in double, exactly as PIL steps through them, and truncate.
std::vector<int> nearest_table(int in_size, int new_size, int o0, int n) {
  const double scale = static_cast<double>(in_size) / new_size;
  std::vector<int> table(n);
  double pos = scale * 0.5;
  for (int i = 0; i < o0 + n; ++i, pos += scale)
    if (i >= o0) table[i - o0] = std::min(in_size - 1, pos < 0.0 ? 0 : static_cast<int>(pos));
  return table;
}

Image resize_nearest(const Image& in, int new_w, int new_h, int x0, int y0, int out_w, int out_h) {
  Image out{out_w, out_h, 3, std::vector<std::uint8_t>(static_cast<std::size_t>(out_w) * out_h * 3)};
  const std::vector<int> xs = nearest_table(in.width, new_w, x0, out_w), ys = nearest_table(in.height, new_h, y0, out_h);
  for (int y = 0; y < out_h; ++y)
    for (int x = 0; x < out_w; ++x)
      std::copy_n(&in.pixels[(static_cast<std::size_t>(ys[y]) * in.width + xs[x]) * 3], 3,
                  &out.pixels[(static_cast<std::size_t>(y) * out_w + x) * 3]);
  return out;
}

}  // namespace

std::array<int, 4> resize_input_region(int in_w, int in_h, int new_w, int new_h, int x0, int y0, int out_w,
                                       int out_h, const std::string& filter) {
  if (filter != "bilinear" && filter != "bicubic") return {0, 0, in_w, in_h};
  double (*f)(double) = filter == "bilinear" ? bilinear_filter : bicubic_filter;
  const double support = filter == "bilinear" ? 1.0 : 2.0;
  const auto [xa, xb] = span(precompute(in_w, new_w, x0, out_w, f, support), in_w);
  const auto [ya, yb] = span(precompute(in_h, new_h, y0, out_h, f, support), in_h);
  return {xa, ya, std::max(0, xb - xa), std::max(0, yb - ya)};
}

Image resize_window(const Image& in, int new_w, int new_h, int x0, int y0, int out_w, int out_h,
                    const std::string& filter) {
  if (in.channels != 3) throw UsageError("resize", "expects an RGB image");
  if (filter == "nearest") return resize_nearest(in, new_w, new_h, x0, y0, out_w, out_h);
  double (*f)(double) = nullptr;
  double support = 0;
  if (filter == "bilinear") f = bilinear_filter, support = 1.0;
  else if (filter == "bicubic") f = bicubic_filter, support = 2.0;
  else throw UsageError(filter, "unsupported interpolation (bilinear, bicubic, nearest)");

  const Coeffs h = precompute(in.width, new_w, x0, out_w, f, support);
  const Coeffs v = precompute(in.height, new_h, y0, out_h, f, support);
  Image out{out_w, out_h, 3, std::vector<std::uint8_t>(static_cast<std::size_t>(out_w) * out_h * 3)};
  if (out_w <= 0 || out_h <= 0) return out;
  const auto [xa, xb] = span(h, in.width);
  const auto [ya, yb] = span(v, in.height);
  resample(in, h, v, xa, xb, ya, yb, out);
  return out;
}

}  // namespace mz
