// The lane convolution of qconv.h on AVX-512 (F, BW) and VNNI, compiled with their flags and
// called (qconv.cpp) only for plans built for that ISA.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "engine/kernels/qconv_kernels.h"

namespace qdm::kernels {
namespace {

constexpr int kLanes = 16;
constexpr int kVectors = 4;                    // pixel vectors per micro-block: 64 pixels
constexpr int kBlockPixels = kLanes * kVectors;
constexpr int kChannels = 4;                   // output channels per micro-kernel

inline __mmask16 lanes_below(int count) {
  return count >= kLanes ? static_cast<__mmask16>(0xFFFF) : count <= 0 ? 0 : static_cast<__mmask16>((1u << count) - 1);
}

// acc (kVectors x NC) over `groups` groups of 4 K: a_t holds, per group, kVectors vectors of
// 16 pixels x 4 bytes; rows: the NC channels' int8 weight rows. Named accumulators: GCC
// copies array-held ones between registers around every vpdpbusd.
#define QDM_DP4(c0, c1, c2, c3, b) \
  c0 = _mm512_dpbusd_epi32(c0, a0, b); \
  c1 = _mm512_dpbusd_epi32(c1, a1, b); \
  c2 = _mm512_dpbusd_epi32(c2, a2, b); \
  c3 = _mm512_dpbusd_epi32(c3, a3, b)

inline __m512i broadcast_word(const int8_t* p) {
  int32_t word;
  std::memcpy(&word, p, 4);
  return _mm512_set1_epi32(word);
}

// Group g (K values 4g .. 4g + 3) of a packed int4 row (kRows: per 64-wide K block, byte j
// holds w'[j] in its low and w'[j + 32] in its high nibble): the 4 codes as bytes.
inline __m512i broadcast_nibbles(const int8_t* row, int g) {
  const int block = g >> 4, j = (g & 15) * 4;  // 16 groups per 64-wide block
  int32_t word;
  std::memcpy(&word, row + block * 32 + (j & 31), 4);
  const uint32_t u = static_cast<uint32_t>(word) >> (j >= 32 ? 4 : 0);
  return _mm512_set1_epi32(static_cast<int32_t>(u & 0x0F0F0F0Fu));
}

template <bool kNibbles>
void micro_kernel_4(const uint8_t* a_t, int groups, const int8_t* const* rows, __m512i (&acc)[kVectors][kChannels]) {
  __m512i c00 = _mm512_setzero_si512(), c10 = c00, c20 = c00, c30 = c00, c01 = c00, c11 = c00, c21 = c00, c31 = c00;
  __m512i c02 = c00, c12 = c00, c22 = c00, c32 = c00, c03 = c00, c13 = c00, c23 = c00, c33 = c00;
  const int8_t *w0 = rows[0], *w1 = rows[1], *w2 = rows[2], *w3 = rows[3];
  for (int g = 0; g < groups; ++g) {
    const uint8_t* ag = a_t + static_cast<size_t>(g) * kBlockPixels * 4;
    const __m512i a0 = _mm512_loadu_si512(ag), a1 = _mm512_loadu_si512(ag + 64), a2 = _mm512_loadu_si512(ag + 128),
                  a3 = _mm512_loadu_si512(ag + 192);
    const size_t k = 4 * static_cast<size_t>(g);
    __m512i b0, b1, b2, b3;
    if constexpr (kNibbles) {
      b0 = broadcast_nibbles(w0, g), b1 = broadcast_nibbles(w1, g), b2 = broadcast_nibbles(w2, g), b3 = broadcast_nibbles(w3, g);
    } else {
      b0 = broadcast_word(w0 + k), b1 = broadcast_word(w1 + k), b2 = broadcast_word(w2 + k), b3 = broadcast_word(w3 + k);
    }
    QDM_DP4(c00, c10, c20, c30, b0);
    QDM_DP4(c01, c11, c21, c31, b1);
    QDM_DP4(c02, c12, c22, c32, b2);
    QDM_DP4(c03, c13, c23, c33, b3);
  }
  acc[0][0] = c00, acc[1][0] = c10, acc[2][0] = c20, acc[3][0] = c30;
  acc[0][1] = c01, acc[1][1] = c11, acc[2][1] = c21, acc[3][1] = c31;
  acc[0][2] = c02, acc[1][2] = c12, acc[2][2] = c22, acc[3][2] = c32;
  acc[0][3] = c03, acc[1][3] = c13, acc[2][3] = c23, acc[3][3] = c33;
}

template <bool kNibbles>
void micro_kernel_1(const uint8_t* a_t, int groups, const int8_t* row, __m512i (&acc)[kVectors][kChannels]) {
  __m512i c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0;
  for (int g = 0; g < groups; ++g) {
    const uint8_t* ag = a_t + static_cast<size_t>(g) * kBlockPixels * 4;
    const __m512i a0 = _mm512_loadu_si512(ag), a1 = _mm512_loadu_si512(ag + 64), a2 = _mm512_loadu_si512(ag + 128),
                  a3 = _mm512_loadu_si512(ag + 192);
    const __m512i b = kNibbles ? broadcast_nibbles(row, g) : broadcast_word(row + 4 * static_cast<size_t>(g));
    QDM_DP4(c0, c1, c2, c3, b);
  }
  acc[0][0] = c0, acc[1][0] = c1, acc[2][0] = c2, acc[3][0] = c3;
}

#undef QDM_DP4

// r[i] (16 floats) -> r[j] = column j of the input rows: a 16 x 16 transpose in registers.
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
    r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
    r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xdd);
  }
}

}  // namespace

void qconv_quantize_image_avx512(const float* x, const QConvShape& s, ActQuant q, uint8_t* padded) {
  const int c = s.c, w = s.w, p = s.padding, wp = s.wp();
  const int hw = s.h * s.w;
  std::memset(padded, static_cast<uint8_t>(q.zero), s.padded_bytes());  // the border; the inside is overwritten
  const __m512 scale = _mm512_set1_ps(q.scale), zero = _mm512_set1_ps(static_cast<float>(q.zero));
  const __m512 lo = _mm512_setzero_ps(), hi = _mm512_set1_ps(static_cast<float>(q.qmax));
  // Lane i reads channel c0 + i of one pixel: 16 channels gathered, quantized, stored as 16
  // contiguous bytes of the channels-last image.
  const __m512i channel_stride = _mm512_mullo_epi32(
      _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), _mm512_set1_epi32(hw));
  for (int c0 = 0; c0 < c; c0 += kLanes) {
    const __mmask16 mask = lanes_below(c - c0);
    const float* plane = x + static_cast<size_t>(c0) * static_cast<size_t>(hw);
    for (int y = 0; y < s.h; ++y) {
      uint8_t* row = padded + (static_cast<size_t>(y + p) * static_cast<size_t>(wp) + static_cast<size_t>(p)) * c + c0;
      for (int xx = 0; xx < w; ++xx) {
        const __m512 v = _mm512_mask_i32gather_ps(lo, mask, channel_stride, plane + y * w + xx, 4);
        __m512 r = _mm512_roundscale_ps(_mm512_div_ps(v, scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        r = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(r, zero), lo), hi);
        _mm512_mask_cvtepi32_storeu_epi8(row + static_cast<size_t>(xx) * c, mask, _mm512_cvtps_epi32(r));
      }
    }
  }
}

namespace {

// Output pixel m of channel n lands at out + n * channel_stride + (m - origin).
void qconv_pixels_impl(const QConvPlan& plan, const uint8_t* padded, int r0, int rows, float* out,
                       size_t channel_stride, int origin, int n_begin, int n_end, const int8_t* tile = nullptr) {
  const QConvShape& s = plan.shape;
  const PackedWeights& w = *plan.weights;
  const float* bias = plan.bias;
  const int c = s.c, stride = s.stride, wo = s.wo(), wp = s.wp();
  const size_t pix = channel_stride;
  const int groups = static_cast<int>(plan.group_offset.size());
  const int8_t* w8 = plan.rows();
  const bool nibbles = plan.nibbles && !tile;  // a tile holds int8 rows
  thread_local std::vector<uint8_t> a_t;
  a_t.resize(static_cast<size_t>(groups) * kBlockPixels * 4);
  const __m512i ones = _mm512_set1_epi8(1);
  for (int m0 = r0; m0 < r0 + rows; m0 += kBlockPixels) {
    const int count = std::min(kBlockPixels, r0 + rows - m0);
    // Per pixel: the byte offset of its top-left input in the padded image.
    alignas(64) int32_t base[kBlockPixels];
    for (int i = 0; i < kBlockPixels; ++i) {
      const int r = m0 + std::min(i, count - 1), oy = r / wo, ox = r % wo;
      base[i] = (oy * stride * wp + ox * stride) * c;
    }
    __m512i vbase[kVectors], row_sum[kVectors];
    __mmask16 valid[kVectors];
    for (int v = 0; v < kVectors; ++v) {
      vbase[v] = _mm512_load_si512(base + kLanes * v);
      valid[v] = lanes_below(count - kLanes * v);
      row_sum[v] = _mm512_setzero_si512();
    }
    // a_t: per group, the 4 bytes of each pixel (zeros in lanes past the block).
    for (int g = 0; g < groups; ++g) {
      const __m512i off = _mm512_set1_epi32(plan.group_offset[static_cast<size_t>(g)]);
      uint8_t* dst = a_t.data() + static_cast<size_t>(g) * kBlockPixels * 4;
      for (int v = 0; v < kVectors; ++v) {
        const __m512i a = valid[v] ? _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), valid[v],
                                                                  _mm512_add_epi32(vbase[v], off), padded, 1)
                                   : _mm512_setzero_si512();
        _mm512_storeu_si512(dst + 64 * v, a);
        row_sum[v] = _mm512_dpbusd_epi32(row_sum[v], a, ones);
      }
    }
    for (int n0 = n_begin; n0 < n_end; n0 += kChannels) {
      const int nc = std::min(kChannels, n_end - n0);
      const int8_t* wrows[kChannels];
      const size_t row_bytes = plan.nibbles ? w.row_bytes() : static_cast<size_t>(w.k_padded);
      for (int j = 0; j < kChannels; ++j)
        wrows[j] = tile ? tile + static_cast<size_t>(n0 - n_begin + std::min(j, nc - 1)) * static_cast<size_t>(w.k_padded)
                        : w8 + static_cast<size_t>(n0 + std::min(j, nc - 1)) * row_bytes;
      __m512i acc[kVectors][kChannels];
      // Channel j of the block from acc[.][slot]: zero-point corrections, scales, bias, NCHW row.
      auto store = [&](int j, int slot) {
        const size_t n = static_cast<size_t>(n0 + j);
        const __m512i zw = _mm512_set1_epi32(w.zero[n]), ct = _mm512_set1_epi32(plan.col_term[n]);
        const __m512 cs = _mm512_set1_ps(plan.col_scale[n]), b = _mm512_set1_ps(bias ? bias[n] : 0.0f);
        float* dst = out + n * pix + static_cast<size_t>(m0 - origin);
        for (int v = 0; v < kVectors; ++v) {
          if (!valid[v]) continue;
          const __m512i exact = _mm512_add_epi32(_mm512_sub_epi32(acc[v][slot], _mm512_mullo_epi32(zw, row_sum[v])), ct);
          // Explicitly rounded multiply and add: GCC would contract _mm512_mul_ps + _mm512_add_ps
          // into one FMA and differ from dequantize_output by a rounding.
          constexpr int kRne = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
          const __m512 y = _mm512_add_round_ps(_mm512_mul_round_ps(_mm512_cvtepi32_ps(exact), cs, kRne), b, kRne);
          _mm512_mask_storeu_ps(dst + kLanes * v, valid[v], y);
        }
      };
      if (nc == kChannels) {
        if (nibbles) micro_kernel_4<true>(a_t.data(), groups, wrows, acc);
        else micro_kernel_4<false>(a_t.data(), groups, wrows, acc);
        for (int j = 0; j < kChannels; ++j) store(j, j);
      } else {  // the channel tail, one at a time
        for (int j = 0; j < nc; ++j) {
          if (nibbles) micro_kernel_1<true>(a_t.data(), groups, wrows[j], acc);
          else micro_kernel_1<false>(a_t.data(), groups, wrows[j], acc);
          store(j, 0);
        }
      }
    }
  }
}

}  // namespace

void qconv_pixels_avx512vnni(const QConvPlan& plan, const uint8_t* padded, int r0, int rows, float* out) {
  qconv_pixels_impl(plan, padded, r0, rows, out, static_cast<size_t>(plan.shape.ho()) * static_cast<size_t>(plan.shape.wo()), 0, 0,
                    plan.weights->n);
}

void qconv_pixels_rows_avx512vnni(const QConvPlan& plan, const uint8_t* padded, int r0, int rows, float* out, int64_t ld,
                                  int n0, int n1, const int8_t* weight_tile, const int32_t* dest_rows) {
  const int n = plan.weights->n;
  thread_local std::vector<float> tile;
  tile.resize(static_cast<size_t>(n) * kBlockPixels);
  for (int b0 = r0; b0 < r0 + rows; b0 += kBlockPixels) {
    const int count = std::min(kBlockPixels, r0 + rows - b0);
    // Channel-major tile of this block (pixel m of channel j at tile[j * 64 + m - b0]) ...
    qconv_pixels_impl(plan, padded, b0, count, tile.data(), kBlockPixels, b0, n0, n1, weight_tile);
    // ... transposed into channels-last rows, 16 channels x 16 pixels at a time in registers.
    int j = n0;
    for (; j + 16 <= n1; j += 16)
      for (int i0 = 0; i0 < count; i0 += 16) {
        __m512 r[16];
        for (int c = 0; c < 16; ++c) r[c] = _mm512_loadu_ps(tile.data() + static_cast<size_t>(j + c) * kBlockPixels + i0);
        transpose16(r);
        for (int p = 0; p < 16 && i0 + p < count; ++p) {
          const int64_t d = dest_rows ? dest_rows[b0 + i0 + p] : b0 + i0 + p;
          if (d >= 0) _mm512_storeu_ps(out + d * ld + j, r[p]);
        }
      }
    for (int i = 0; i < count; ++i) {  // channels past the last multiple of 16
      const int64_t d = dest_rows ? dest_rows[b0 + i] : b0 + i;
      if (d < 0) continue;
      float* row = out + d * ld;
      for (int c = j; c < n1; ++c) row[c] = tile[static_cast<size_t>(c) * kBlockPixels + i];
    }
  }
}

}  // namespace qdm::kernels
