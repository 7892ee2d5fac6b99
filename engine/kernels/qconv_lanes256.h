// The lane convolution of qconv.h on 256-bit vectors: 8 output pixels per vector, a block of
// 32 pixels (4 vectors) times 2 output channels per micro-kernel (8 accumulators: AVX2 has 16
// vector registers). Included by qconv_avxvnni.cpp and qconv_avx2.cpp, each compiled with its
// ISA's flags and supplying the exact u8 x s8 dot product of 4 bytes per 32-bit lane (`Dot`).
// Everything here has internal linkage, so the two copies never mix.
#pragma once

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "engine/kernels/qconv.h"

namespace qdm::kernels {
namespace {

constexpr int kLanes = 8;
constexpr int kVectors = 4;
constexpr int kBlockPixels = kLanes * kVectors;  // 32
constexpr int kChannels = 2;

inline __m256i broadcast_word(const int8_t* p) {
  int32_t word;
  std::memcpy(&word, p, 4);
  return _mm256_set1_epi32(word);
}

// Group g (K values 4g .. 4g + 3) of a packed int4 row (kRows): the 4 codes as bytes.
inline __m256i broadcast_nibbles(const int8_t* row, int g) {
  const int block = g >> 4, j = (g & 15) * 4;
  int32_t word;
  std::memcpy(&word, row + block * 32 + (j & 31), 4);
  const uint32_t u = static_cast<uint32_t>(word) >> (j >= 32 ? 4 : 0);
  return _mm256_set1_epi32(static_cast<int32_t>(u & 0x0F0F0F0Fu));
}

// acc (kVectors x 2 channels) over `groups` groups of 4 K; kNibbles: packed int4 rows; kSmall:
// weights in 0..15, where Dot may use vpmaddubsw's saturating product.
template <class Dot, bool kNibbles, bool kSmall>
void micro_kernel_2(const uint8_t* a_t, int groups, const int8_t* w0, const int8_t* w1,
                    __m256i (&acc)[kVectors][kChannels]) {
  __m256i c00 = _mm256_setzero_si256(), c10 = c00, c20 = c00, c30 = c00, c01 = c00, c11 = c00,
          c21 = c00, c31 = c00;
  for (int g = 0; g < groups; ++g) {
    const uint8_t* ag = a_t + static_cast<size_t>(g) * kBlockPixels * 4;
    const __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ag));
    const __m256i a1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ag + 32));
    const __m256i a2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ag + 64));
    const __m256i a3 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ag + 96));
    const size_t k = 4 * static_cast<size_t>(g);
    const __m256i b0 = kNibbles ? broadcast_nibbles(w0, g) : broadcast_word(w0 + k);
    const __m256i b1 = kNibbles ? broadcast_nibbles(w1, g) : broadcast_word(w1 + k);
    c00 = Dot::template dp<kSmall>(c00, a0, b0), c10 = Dot::template dp<kSmall>(c10, a1, b0);
    c20 = Dot::template dp<kSmall>(c20, a2, b0), c30 = Dot::template dp<kSmall>(c30, a3, b0);
    c01 = Dot::template dp<kSmall>(c01, a0, b1), c11 = Dot::template dp<kSmall>(c11, a1, b1);
    c21 = Dot::template dp<kSmall>(c21, a2, b1), c31 = Dot::template dp<kSmall>(c31, a3, b1);
  }
  acc[0][0] = c00, acc[1][0] = c10, acc[2][0] = c20, acc[3][0] = c30;
  acc[0][1] = c01, acc[1][1] = c11, acc[2][1] = c21, acc[3][1] = c31;
}

template <class Dot, bool kNibbles, bool kSmall>
void micro_kernel_1(const uint8_t* a_t, int groups, const int8_t* w0,
                    __m256i (&acc)[kVectors][kChannels]) {
  __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0;
  for (int g = 0; g < groups; ++g) {
    const uint8_t* ag = a_t + static_cast<size_t>(g) * kBlockPixels * 4;
    const __m256i b =
        kNibbles ? broadcast_nibbles(w0, g) : broadcast_word(w0 + 4 * static_cast<size_t>(g));
    c0 =
        Dot::template dp<kSmall>(c0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ag)), b);
    c1 = Dot::template dp<kSmall>(
        c1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ag + 32)), b);
    c2 = Dot::template dp<kSmall>(
        c2, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ag + 64)), b);
    c3 = Dot::template dp<kSmall>(
        c3, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ag + 96)), b);
  }
  acc[0][0] = c0, acc[1][0] = c1, acc[2][0] = c2, acc[3][0] = c3;
}

// r[i] (8 floats) -> r[j] = column j of the input rows.
inline void transpose8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0)),
               s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0)),
               s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0)),
               s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0)),
               s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20), r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20), r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31), r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31), r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// Rows [n0, n1) of packed int4 weights (kRows) as int8 rows of k_padded, in 0..15.
inline void unpack_int4_rows(const PackedWeights& w, int n0, int n1, int8_t* out) {
  const __m256i nib = _mm256_set1_epi8(0x0F);
  const size_t blocks = static_cast<size_t>(n1 - n0) * static_cast<size_t>(w.k_padded / kKBlock);
  const uint8_t* src = w.data.data() + static_cast<size_t>(n0) * w.row_bytes();
  for (size_t b = 0; b < blocks; ++b) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + b * 32));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + b * 64), _mm256_and_si256(v, nib));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + b * 64 + 32),
                        _mm256_and_si256(_mm256_srli_epi16(v, 4), nib));
  }
}

// Output pixel m of channel n lands at out + n * channel_stride + (m - origin). With `tile`, the
// weight rows of channels n_begin.. are int8 rows read from there, in 0..15 where `small`.
template <class Dot>
void lanes_impl(const QConvPlan& plan, const uint8_t* padded, int r0, int rows, float* out,
                size_t channel_stride, int origin, int n_begin, int n_end, const int8_t* tile,
                bool small) {
  const QConvShape& s = plan.shape;
  const PackedWeights& w = *plan.weights;
  const float* bias = plan.bias;
  const int c = s.c, stride = s.stride, wo = s.wo(), wp = s.wp();
  const int groups = static_cast<int>(plan.group_offset.size());
  const int8_t* w8 = plan.rows();
  const bool nibbles = plan.nibbles && !tile;
  small = small || (!tile && !plan.unpacked.empty());  // int4 weights unpacked by qconv_plan
  const size_t row_bytes = tile           ? static_cast<size_t>(w.k_padded)
                           : plan.nibbles ? w.row_bytes()
                                          : static_cast<size_t>(w.k_padded);
  thread_local std::vector<uint8_t> a_t;
  a_t.resize(static_cast<size_t>(groups) * kBlockPixels * 4);
  const __m256i ones = _mm256_set1_epi8(1);
  const int* image = reinterpret_cast<const int*>(padded);
  for (int m0 = r0; m0 < r0 + rows; m0 += kBlockPixels) {
    const int count = std::min(kBlockPixels, r0 + rows - m0);
    const int vectors = (count + kLanes - 1) / kLanes;
    // Per pixel: the byte offset of its top-left input (lanes past the block repeat the last).
    alignas(32) int32_t base[kBlockPixels];
    for (int i = 0; i < kBlockPixels; ++i) {
      const int r = m0 + std::min(i, count - 1), oy = r / wo, ox = r % wo;
      base[i] = (oy * stride * wp + ox * stride) * c;
    }
    __m256i vbase[kVectors], row_sum[kVectors];
    for (int v = 0; v < kVectors; ++v) {
      vbase[v] = _mm256_load_si256(reinterpret_cast<const __m256i*>(base + kLanes * v));
      row_sum[v] = _mm256_setzero_si256();
    }
    for (int g = 0; g < groups; ++g) {
      const __m256i off = _mm256_set1_epi32(plan.group_offset[static_cast<size_t>(g)]);
      uint8_t* dst = a_t.data() + static_cast<size_t>(g) * kBlockPixels * 4;
      for (int v = 0; v < kVectors; ++v) {
        const __m256i a = v < vectors
                              ? _mm256_i32gather_epi32(image, _mm256_add_epi32(vbase[v], off), 1)
                              : _mm256_setzero_si256();
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 32 * v), a);
        row_sum[v] = Dot::template dp<true>(row_sum[v], a, ones);
      }
    }
    for (int n0 = n_begin; n0 < n_end; n0 += kChannels) {
      const int nc = std::min(kChannels, n_end - n0);
      const int8_t* wrows[kChannels];
      for (int j = 0; j < kChannels; ++j) {
        const size_t row = static_cast<size_t>(n0 + std::min(j, nc - 1) - (tile ? n_begin : 0));
        wrows[j] = (tile ? tile : w8) + row * row_bytes;
      }
      __m256i acc[kVectors][kChannels];
      auto store = [&](int j, int slot) {
        const size_t n = static_cast<size_t>(n0 + j);
        const __m256i zw = _mm256_set1_epi32(w.zero[n]), ct = _mm256_set1_epi32(plan.col_term[n]);
        const __m256 cs = _mm256_set1_ps(plan.col_scale[n]),
                     b = _mm256_set1_ps(bias ? bias[n] : 0.0f);
        float* dst = out + n * channel_stride + static_cast<size_t>(m0 - origin);
        for (int v = 0; v < vectors; ++v) {
          const __m256i exact = _mm256_add_epi32(
              _mm256_sub_epi32(acc[v][slot], _mm256_mullo_epi32(zw, row_sum[v])), ct);
          // A rounded multiply, then a rounded add (these files build with -ffp-contract=off):
          // dequantize_output's formula.
          const __m256 y = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(exact), cs), b);
          const int valid = count - kLanes * v;
          if (valid >= kLanes) {
            _mm256_storeu_ps(dst + kLanes * v, y);
          } else {
            alignas(32) float part[kLanes];
            _mm256_store_ps(part, y);
            std::memcpy(dst + kLanes * v, part, static_cast<size_t>(valid) * sizeof(float));
          }
        }
      };
      if (nc == kChannels) {
        if (nibbles) micro_kernel_2<Dot, true, true>(a_t.data(), groups, wrows[0], wrows[1], acc);
        else if (small) micro_kernel_2<Dot, false, true>(a_t.data(), groups, wrows[0], wrows[1], acc);
        else micro_kernel_2<Dot, false, false>(a_t.data(), groups, wrows[0], wrows[1], acc);
        store(0, 0);
        store(1, 1);
      } else {
        if (nibbles) micro_kernel_1<Dot, true, true>(a_t.data(), groups, wrows[0], acc);
        else if (small) micro_kernel_1<Dot, false, true>(a_t.data(), groups, wrows[0], acc);
        else micro_kernel_1<Dot, false, false>(a_t.data(), groups, wrows[0], acc);
        store(0, 0);
      }
    }
  }
}

template <class Dot>
void lanes_pixels(const QConvPlan& plan, const uint8_t* padded, int r0, int rows, float* out) {
  lanes_impl<Dot>(plan, padded, r0, rows, out,
                  static_cast<size_t>(plan.shape.ho()) * static_cast<size_t>(plan.shape.wo()), 0, 0,
                  plan.weights->n, nullptr, false);
}

template <class Dot>
void lanes_pixels_rows(const QConvPlan& plan, const uint8_t* padded, int r0, int rows, float* out,
                       int64_t ld, int n0, int n1, const int8_t* weight_tile,
                       const int32_t* dest_rows) {
  const int n = plan.weights->n;
  thread_local std::vector<float> tile;
  tile.resize(static_cast<size_t>(n) * kBlockPixels);
  // Resident int4 weights: the call's rows unpacked to bytes once (broadcasting nibbles per
  // group and channel costs more scalar work than the 8-pixel multiply-adds it feeds).
  bool small = weight_tile && plan.small_tile;
  thread_local std::vector<int8_t> unpacked;
  if (!weight_tile && plan.nibbles) {
    unpacked.resize(static_cast<size_t>(n1 - n0) * static_cast<size_t>(plan.weights->k_padded));
    unpack_int4_rows(*plan.weights, n0, n1, unpacked.data());
    weight_tile = unpacked.data();
    small = true;
  }
  for (int b0 = r0; b0 < r0 + rows; b0 += kBlockPixels) {
    const int count = std::min(kBlockPixels, r0 + rows - b0);
    // Channel-major tile of this block (pixel m of channel j at tile[j * 32 + m - b0]) ...
    lanes_impl<Dot>(plan, padded, b0, count, tile.data(), kBlockPixels, b0, n0, n1, weight_tile,
                    small);
    // ... transposed into channels-last rows, 8 channels x 8 pixels at a time in registers.
    int j = n0;
    for (; j + 8 <= n1; j += 8)
      for (int i0 = 0; i0 < count; i0 += 8) {
        __m256 r[8];
        for (int c = 0; c < 8; ++c)
          r[c] = _mm256_loadu_ps(tile.data() + static_cast<size_t>(j + c) * kBlockPixels + i0);
        transpose8(r);
        for (int p = 0; p < 8 && i0 + p < count; ++p) {
          const int64_t d = dest_rows ? dest_rows[b0 + i0 + p] : b0 + i0 + p;
          if (d >= 0) _mm256_storeu_ps(out + d * ld + j, r[p]);
        }
      }
    for (int i = 0; i < count; ++i) {  // channels past the last multiple of 8
      const int64_t d = dest_rows ? dest_rows[b0 + i] : b0 + i;
      if (d < 0) continue;
      float* row = out + d * ld;
      for (int c = j; c < n1; ++c) row[c] = tile[static_cast<size_t>(c) * kBlockPixels + i];
    }
  }
}

}  // namespace
}  // namespace qdm::kernels
