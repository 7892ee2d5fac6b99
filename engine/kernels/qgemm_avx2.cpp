// AVX2 without VNNI. Weights of up to 4 bits (stored 0..15): vpmaddubsw multiplies u8
// activations by them and adds pairs into int16 exactly (2 * 255 * 15 < 2^15), vpmaddwd by ones
// widens to int32; register-blocked 2 rows x 4 columns so each activation and weight vector is
// loaded once per block. 8-bit weights (stored -128..127) would saturate vpmaddubsw: there u8
// and s8 are widened to 16 bits and multiplied with vpmaddwd, which is exact. Compiled with
// -mavx2.
#include <immintrin.h>

#include "engine/kernels/qgemm_kernels.h"

namespace qdm::kernels {
namespace {

inline void load_w(const uint8_t* row, int b, bool int4, __m256i& lo, __m256i& hi) {
  if (!int4) {
    lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + static_cast<size_t>(b) * 64));
    hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + static_cast<size_t>(b) * 64 + 32));
    return;
  }
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + static_cast<size_t>(b) * 32));
  const __m256i mask = _mm256_set1_epi8(0x0F);
  lo = _mm256_and_si256(v, mask);
  hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
}

// c += dot of 32 u8 activations with 32 s8 weights, in 8 int32 lanes.
inline __m256i dot32(__m256i c, __m256i a, __m256i w) {
  const __m256i a_lo = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(a));
  const __m256i a_hi = _mm256_cvtepu8_epi16(_mm256_extracti128_si256(a, 1));
  const __m256i w_lo = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(w));
  const __m256i w_hi = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(w, 1));
  c = _mm256_add_epi32(c, _mm256_madd_epi16(a_lo, w_lo));
  return _mm256_add_epi32(c, _mm256_madd_epi16(a_hi, w_hi));
}

inline int32_t hsum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

}  // namespace

namespace {

constexpr int kRowsBlock = 2, kColsBlock = 4;

// acc[i][j] += the 64-wide K block b of rows ar[i] and weight rows wr[j] (int4, no saturation).
template <int R, int C>
inline void int4_block(const uint8_t* const* ar, const uint8_t* const* wr, int b, __m256i (&acc)[kRowsBlock][kColsBlock]) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256i a_lo[R], a_hi[R];
  for (int i = 0; i < R; ++i) {
    a_lo[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ar[i] + static_cast<size_t>(b) * 64));
    a_hi[i] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ar[i] + static_cast<size_t>(b) * 64 + 32));
  }
  for (int j = 0; j < C; ++j) {
    __m256i lo, hi;
    load_w(wr[j], b, true, lo, hi);
    for (int i = 0; i < R; ++i) {
      const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(a_lo[i], lo), _mm256_maddubs_epi16(a_hi[i], hi));
      // both halves' pair sums together stay below 2^15: 4 * 255 * 15
      acc[i][j] = _mm256_add_epi32(acc[i][j], _mm256_madd_epi16(p, ones));
    }
  }
}

template <int R, int C>
inline void int4_tile(const uint8_t* a, int r0, const PackedWeights& w, int n0, int blocks, int32_t* out) {
  const uint8_t* ar[kRowsBlock];
  const uint8_t* wr[kColsBlock];
  for (int i = 0; i < R; ++i) ar[i] = a + static_cast<size_t>(r0 + i) * w.k_padded;
  for (int j = 0; j < C; ++j) wr[j] = w.data.data() + static_cast<size_t>(n0 + j) * w.row_bytes();
  __m256i acc[kRowsBlock][kColsBlock];
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < C; ++j) acc[i][j] = _mm256_setzero_si256();
  for (int b = 0; b < blocks; ++b) int4_block<R, C>(ar, wr, b, acc);
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < C; ++j) out[static_cast<size_t>(r0 + i) * w.n + n0 + j] = hsum(acc[i][j]);
}

void qgemm_int4(const uint8_t* a, int m, const PackedWeights& w, int32_t* acc) {
  const int blocks = w.k_padded / kKBlock;
  int r = 0;
  for (; r + kRowsBlock <= m; r += kRowsBlock) {
    int n = 0;
    for (; n + kColsBlock <= w.n; n += kColsBlock) int4_tile<2, 4>(a, r, w, n, blocks, acc);
    for (; n < w.n; ++n) int4_tile<2, 1>(a, r, w, n, blocks, acc);
  }
  for (; r < m; ++r) {
    int n = 0;
    for (; n + kColsBlock <= w.n; n += kColsBlock) int4_tile<1, 4>(a, r, w, n, blocks, acc);
    for (; n < w.n; ++n) int4_tile<1, 1>(a, r, w, n, blocks, acc);
  }
}

}  // namespace

void qgemm_s32_avx2(const uint8_t* a, int m, const PackedWeights& w, int32_t* acc) {
  if (w.bits <= 4) return qgemm_int4(a, m, w, acc);
  const int blocks = w.k_padded / kKBlock;
  const size_t rb = w.row_bytes();
  for (int r = 0; r < m; ++r) {
    const uint8_t* ar = a + static_cast<size_t>(r) * w.k_padded;
    int32_t* out = acc + static_cast<size_t>(r) * w.n;
    for (int n = 0; n < w.n; ++n) {
      const uint8_t* wr = w.data.data() + static_cast<size_t>(n) * rb;
      __m256i c = _mm256_setzero_si256();
      for (int b = 0; b < blocks; ++b) {
        __m256i lo, hi;
        load_w(wr, b, false, lo, hi);
        c = dot32(c, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ar + static_cast<size_t>(b) * 64)), lo);
        c = dot32(c, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ar + static_cast<size_t>(b) * 64 + 32)), hi);
      }
      out[n] = hsum(c);
    }
  }
}

}  // namespace qdm::kernels
