// The execution plan's memory-bound kernels, torch-free, over channels-last activations: rows
// of `ld` floats per pixel (a view may be a slice of a wider buffer: a concatenation is two
// slices of one). Element-wise work is written once in plain C++ and compiled for AVX-512,
// AVX2 and the baseline (target_clones, chosen at load); integer results equal the reference
// on every clone, floats agree to rounding. Group norm + SiLU + quantize also has an AVX-512
// path whose SiLU divides by a refined reciprocal estimate (a division was half the pass): its
// codes can differ from the other clones' at a rounding boundary.
//
//   group norm       sums per (image, group) over pixel ranges, then one pass applying the
//                    affine, optionally SiLU, and either quantizing to u8 into a padded
//                    channels-last image (the next convolution's input) or writing fp32
//   quantize         fp32 rows to a padded u8 image, optionally upsampled 2x (nearest: the
//                    codes of the upsampled image are the source's codes repeated)
//   im2col           patches of a padded u8 image (int convolutions off AVX-512) or of an fp32
//                    image with zero padding (fp32 convolutions)
//   gemm_f32         C = A B^T + bias for the layers kept in fp32, B stored (K, N)
//   softmax          rows, scaled, in place
#pragma once

#include <cstddef>
#include <cstdint>

#include "engine/kernels/qgemm.h"

namespace qdm {

// A padded channels-last u8 image: (h + 2 pad) x (w + 2 pad) x c codes, the border holding
// the activation zero point.
struct PaddedShape {
  int h = 0, w = 0, c = 0, pad = 0;
  int hp() const { return h + 2 * pad; }
  int wp() const { return w + 2 * pad; }
  size_t bytes() const { return static_cast<size_t>(hp()) * static_cast<size_t>(wp()) * static_cast<size_t>(c); }
};

// Adds the sums of pixels [p0, p1) of x (rows of ld, c channels) per group to sums[2 g]
// (sum) and sums[2 g + 1] (sum of squares), in double.
void group_norm_sums(const float* x, int64_t ld, int64_t p0, int64_t p1, int c, int groups, double* sums);
// mean and 1 / sqrt(var + eps) per group from the sums of `pixels` pixels.
void group_norm_moments(const double* sums, int groups, int channels_per_group, int64_t pixels, double eps,
                        float* mean, float* rstd);

struct GroupNormApply {
  int c = 0, groups = 1;
  const float* mean = nullptr;  // per group (this image)
  const float* rstd = nullptr;
  const float* gamma = nullptr;  // per channel
  const float* beta = nullptr;
  bool silu = false;
};
// Pixels [p0, p1) of an image of width w: normalized (and SiLU) values quantized into `dst`,
// on `isa`'s kernel (every ISA gives the same codes).
void group_norm_to_padded(QGemmIsa isa, const float* x, int64_t ld, int64_t p0, int64_t p1, const GroupNormApply& g,
                          ActQuant q, const PaddedShape& s, uint8_t* dst);
// Same, to fp32 rows (ld_out).
void group_norm_to_f32(const float* x, int64_t ld, int64_t p0, int64_t p1, const GroupNormApply& g, float* out,
                       int64_t ld_out);

// The border of a padded image set to the zero point (the inside is written by the producers).
void fill_border(const PaddedShape& s, uint8_t zero, uint8_t* dst);
// Source rows [y0, y1) of an image (h x w pixels, rows of ld) quantized into `dst`; with
// upsample the destination is 2h x 2w (s.h = 2h) and each source pixel fills 2 x 2.
void quantize_to_padded(const float* x, int64_t ld, int w, int y0, int y1, ActQuant q, bool upsample,
                        const PaddedShape& s, uint8_t* dst);
// Rows [r0, r1) of fp32 rows (c wide, rows of ld) to u8 rows of padded_k(c) with row sums.
void quantize_rows_ld(const float* x, int64_t ld, int64_t r0, int64_t r1, int c, ActQuant q, uint8_t* out,
                      int32_t* row_sums);
// x (rows, cols) in rows of ld to out (rows, cols contiguous): each value's code under q (as
// quantize_rows_ld's) minus q's zero point, as a float: an integer of at most qmax in magnitude.
// Returns the largest sum of |code - zero| over a row and the largest |code - zero|, for
// attention_head_exact's bound (rows up to 2^23 values).
struct CodeBounds {
  int64_t max_row_sum = 0, max_abs = 0;
};
CodeBounds centred_codes(const float* x, int64_t ld, int rows, int cols, ActQuant q, float* out);

// Patches of output pixels [p0, p1) of a k x k convolution (stride, with the padding already
// in the image): rows of kp bytes, K in (ky, kx, c) order, the tail past k*k*c zero; row sums.
void im2col_u8(const uint8_t* padded, const PaddedShape& s, int kernel, int stride, int64_t p0, int64_t p1, int kp,
               uint8_t* rows, int32_t* row_sums);
// Patches of fp32 channels-last pixels (h x w x c, rows of ld) with zero padding `pad`:
// rows of k*k*c floats for output pixels [p0, p1).
void im2col_f32(const float* x, int64_t ld, int h, int w, int c, int kernel, int stride, int pad, int64_t p0,
                int64_t p1, float* rows);

// c (m, n) rows of ldc = a (m, k) rows of lda . b (k, n) + bias (may be null).
void gemm_f32(const float* a, int64_t lda, int m, int k, const float* b, int n, const float* bias, float* c,
              int64_t ldc);

// The same with B as u8 codes (k, n) of per-column weights scale[j] (code - zero[j]): the layers
// with fp32 inputs keep 8-bit (or 4-bit) weights resident.
void gemm_f32_codes(const float* a, int64_t lda, int m, int k, const uint8_t* codes, int n, const float* zero,
                    const float* scale, const float* bias, float* c, int64_t ldc);

// A k x k convolution (zero padding `pad`) of fp32 channels-last pixels (h x w x c, rows of
// ld) straight from the image, without patches, for the shapes where patches cost more than
// the arithmetic: few outputs (n < 16, e.g. conv_out: dot products over the channels) or few
// inputs per output (k*k*c <= 64, e.g. conv_in: outputs accumulated in vectors). Output pixels
// [p0, p1) to rows of ld_out; weights (k*k*c, n) with K in (ky, kx, c) order (as gemm_f32's
// B), times scale[j] when scale is not null, plus bias.
bool conv_f32_direct_pays(int kernel, int c, int n);
void conv_f32_direct(const float* x, int64_t ld, int h, int w, int c, int kernel, int stride, int pad, int64_t p0,
                     int64_t p1, const float* weights, int n, const float* scale, const float* bias, float* out,
                     int64_t ld_out);

// Rows of x (n wide, rows of ld): x = softmax(x * scale) in place, through isa's kernel table
// (every ISA gives the reference's bits).
void softmax_rows(QGemmIsa isa, float* x, int64_t ld, int rows, int n, float scale);

// GEGLU (diffusers' feed-forward gate): out[r][j] = a * gelu(g) with a = in[r][j], g = in[r][c + j]
// and gelu's erf form, erf to within 5e-7 in float (Abramowitz & Stegun 7.1.26 over fast_exp, branch-free:
// libm's erff is a call per element, 10x the time).
void geglu_rows(const float* in, int64_t ld_in, int64_t rows, int c, float* out, int64_t ld_out);
// The erf it uses, for tests.
float fast_erf(float x);

// out[r] (n wide) += add[r] (rows of ld_add), or += one row broadcast when ld_add is 0; then
// times `factor` when it is not 1.
void add_rows(float* out, int64_t ld_out, const float* add, int64_t ld_add, int64_t rows, int n, float factor = 1.0f);

}  // namespace qdm
