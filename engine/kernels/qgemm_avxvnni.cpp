// AVX-VNNI (256-bit vpdpbusd, e.g. Alder Lake and later client CPUs). Compiled with
// -mavx2 -mavxvnni; called only when the CPU has them.
#include <immintrin.h>

#include "engine/kernels/qgemm_kernels.h"

namespace qdm::kernels {
namespace {

// The two 32-weight halves of K block `b` as signed bytes.
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

inline int32_t hsum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

}  // namespace

void qgemm_s32_avxvnni(const uint8_t* a, int m, const PackedWeights& w, int32_t* acc) {
  const int blocks = w.k_padded / kKBlock;
  const bool int4 = w.bits <= 4;
  const size_t rb = w.row_bytes();
  for (int r = 0; r < m; ++r) {
    const uint8_t* ar = a + static_cast<size_t>(r) * w.k_padded;
    int32_t* out = acc + static_cast<size_t>(r) * w.n;
    int n = 0;
    for (; n + 4 <= w.n; n += 4) {
      const uint8_t* w0 = w.data.data() + static_cast<size_t>(n) * rb;
      __m256i c[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256()};
      for (int b = 0; b < blocks; ++b) {
        const __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ar + static_cast<size_t>(b) * 64));
        const __m256i a1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ar + static_cast<size_t>(b) * 64 + 32));
        for (int j = 0; j < 4; ++j) {
          __m256i lo, hi;
          load_w(w0 + j * rb, b, int4, lo, hi);
          c[j] = _mm256_dpbusd_avx_epi32(c[j], a0, lo);
          c[j] = _mm256_dpbusd_avx_epi32(c[j], a1, hi);
        }
      }
      for (int j = 0; j < 4; ++j) out[n + j] = hsum(c[j]);
    }
    for (; n < w.n; ++n) {
      const uint8_t* wr = w.data.data() + static_cast<size_t>(n) * rb;
      __m256i c = _mm256_setzero_si256();
      for (int b = 0; b < blocks; ++b) {
        __m256i lo, hi;
        load_w(wr, b, int4, lo, hi);
        c = _mm256_dpbusd_avx_epi32(c, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ar + static_cast<size_t>(b) * 64)), lo);
        c = _mm256_dpbusd_avx_epi32(c, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ar + static_cast<size_t>(b) * 64 + 32)), hi);
      }
      out[n] = hsum(c);
    }
  }
}

}  // namespace qdm::kernels
