// AVX-512 VNNI: vpdpbusd multiplies 64 u8 activations by 64 s8 weights into 16 int32 lanes.
// Compiled with -mavx512f -mavx512bw -mavx512vnni; called only when the CPU has them.
#include <immintrin.h>

#include "engine/kernels/qgemm_kernels.h"

namespace qdm::kernels {
namespace {

// 64 weights of K block `b` in K order, as signed bytes.
inline __m512i load_w(const uint8_t* row, int b, bool int4) {
  if (!int4) return _mm512_loadu_si512(row + static_cast<size_t>(b) * 64);
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + static_cast<size_t>(b) * 32));
  const __m256i mask = _mm256_set1_epi8(0x0F);
  const __m256i lo = _mm256_and_si256(v, mask);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask);
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

}  // namespace

void qgemm_s32_avx512vnni(const uint8_t* a, int m, const PackedWeights& w, int32_t* acc) {
  const int blocks = w.k_padded / kKBlock;
  const bool int4 = w.bits <= 4;
  const size_t rb = w.row_bytes();
  for (int r = 0; r < m; ++r) {
    const uint8_t* ar = a + static_cast<size_t>(r) * w.k_padded;
    int32_t* out = acc + static_cast<size_t>(r) * w.n;
    int n = 0;
    for (; n + 4 <= w.n; n += 4) {
      const uint8_t* w0 = w.data.data() + static_cast<size_t>(n) * rb;
      __m512i c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0;
      for (int b = 0; b < blocks; ++b) {
        const __m512i av = _mm512_loadu_si512(ar + static_cast<size_t>(b) * 64);
        c0 = _mm512_dpbusd_epi32(c0, av, load_w(w0, b, int4));
        c1 = _mm512_dpbusd_epi32(c1, av, load_w(w0 + rb, b, int4));
        c2 = _mm512_dpbusd_epi32(c2, av, load_w(w0 + 2 * rb, b, int4));
        c3 = _mm512_dpbusd_epi32(c3, av, load_w(w0 + 3 * rb, b, int4));
      }
      out[n] = _mm512_reduce_add_epi32(c0);
      out[n + 1] = _mm512_reduce_add_epi32(c1);
      out[n + 2] = _mm512_reduce_add_epi32(c2);
      out[n + 3] = _mm512_reduce_add_epi32(c3);
    }
    for (; n < w.n; ++n) {
      const uint8_t* wr = w.data.data() + static_cast<size_t>(n) * rb;
      __m512i c = _mm512_setzero_si512();
      for (int b = 0; b < blocks; ++b) c = _mm512_dpbusd_epi32(c, _mm512_loadu_si512(ar + static_cast<size_t>(b) * 64), load_w(wr, b, int4));
      out[n] = _mm512_reduce_add_epi32(c);
    }
  }
}

}  // namespace qdm::kernels
