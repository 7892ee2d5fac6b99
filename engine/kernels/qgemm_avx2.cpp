// AVX2 without VNNI: u8 and s8 widened to 16 bits and multiplied with vpmaddwd, which is
// exact (vpmaddubsw would saturate for 8-bit weights). Compiled with -mavx2.
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

void qgemm_s32_avx2(const uint8_t* a, int m, const PackedWeights& w, int32_t* acc) {
  const int blocks = w.k_padded / kKBlock;
  const bool int4 = w.bits <= 4;
  const size_t rb = w.row_bytes();
  for (int r = 0; r < m; ++r) {
    const uint8_t* ar = a + static_cast<size_t>(r) * w.k_padded;
    int32_t* out = acc + static_cast<size_t>(r) * w.n;
    for (int n = 0; n < w.n; ++n) {
      const uint8_t* wr = w.data.data() + static_cast<size_t>(n) * rb;
      __m256i c = _mm256_setzero_si256();
      for (int b = 0; b < blocks; ++b) {
        __m256i lo, hi;
        load_w(wr, b, int4, lo, hi);
        c = dot32(c, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ar + static_cast<size_t>(b) * 64)), lo);
        c = dot32(c, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ar + static_cast<size_t>(b) * 64 + 32)), hi);
      }
      out[n] = hsum(c);
    }
  }
}

}  // namespace qdm::kernels
