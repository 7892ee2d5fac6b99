// AVX-512 VNNI on the 16-channel panel layout: for a tile of 4 activation rows and one
// panel, each step broadcasts 4 activation bytes per row and multiplies them with the
// panel's 64 weight bytes (16 channels x 4 K) by vpdpbusd, accumulating 16 outputs per row
// in registers. Compiled with -mavx512f -mavx512bw -mavx512vnni; called only when the CPU
// has them.
#include <immintrin.h>

#include <cstring>

#include "engine/kernels/qgemm_kernels.h"

namespace qdm::kernels {
namespace {

inline __m512i bcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

}  // namespace

void qgemm_s32_avx512vnni(const uint8_t* a, int m, const PackedWeights& w, int32_t* acc) {
  const int kp = w.k_padded, groups = kp / 4, panels = (w.n + 15) / 16;
  const bool int4 = w.bits <= 4;
  const size_t panel_bytes = static_cast<size_t>(groups) * (int4 ? 32 : 64);
  const __m512i nib = _mm512_set1_epi8(0x0F);
  for (int r0 = 0; r0 < m; r0 += 4) {
    const int rows = std::min(4, m - r0);
    const uint8_t* ar[4];
    for (int i = 0; i < 4; ++i) ar[i] = a + static_cast<size_t>(r0 + std::min(i, rows - 1)) * kp;
    for (int p = 0; p < panels; ++p) {
      const uint8_t* wp = w.data.data() + static_cast<size_t>(p) * panel_bytes;
      __m512i c0 = _mm512_setzero_si512(), c1 = c0, c2 = c0, c3 = c0;
      if (int4) {
        for (int h = 0; h < groups / 2; ++h) {
          const __m512i v = _mm512_loadu_si512(wp + static_cast<size_t>(h) * 64);
          const __m512i lo = _mm512_and_si512(v, nib), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
          const size_t k0 = static_cast<size_t>(h) * 8;
          c0 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(c0, bcast4(ar[0] + k0), lo), bcast4(ar[0] + k0 + 4), hi);
          c1 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(c1, bcast4(ar[1] + k0), lo), bcast4(ar[1] + k0 + 4), hi);
          c2 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(c2, bcast4(ar[2] + k0), lo), bcast4(ar[2] + k0 + 4), hi);
          c3 = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(c3, bcast4(ar[3] + k0), lo), bcast4(ar[3] + k0 + 4), hi);
        }
      } else {
        for (int g = 0; g < groups; ++g) {
          const __m512i v = _mm512_loadu_si512(wp + static_cast<size_t>(g) * 64);
          const size_t k0 = static_cast<size_t>(g) * 4;
          c0 = _mm512_dpbusd_epi32(c0, bcast4(ar[0] + k0), v);
          c1 = _mm512_dpbusd_epi32(c1, bcast4(ar[1] + k0), v);
          c2 = _mm512_dpbusd_epi32(c2, bcast4(ar[2] + k0), v);
          c3 = _mm512_dpbusd_epi32(c3, bcast4(ar[3] + k0), v);
        }
      }
      const int n0 = p * 16, count = std::min(16, w.n - n0);
      const __mmask16 mask = static_cast<__mmask16>((1u << count) - 1);
      const __m512i c[4] = {c0, c1, c2, c3};
      for (int i = 0; i < rows; ++i) _mm512_mask_storeu_epi32(acc + static_cast<size_t>(r0 + i) * w.n + n0, mask, c[i]);
    }
  }
}

void quantize_rows_avx512(const float* x, int m, int k, ActQuant q, uint8_t* out, int32_t* row_sums) {
  const int kp = padded_k(k);
  const __m512 scale = _mm512_set1_ps(q.scale), zero = _mm512_set1_ps(static_cast<float>(q.zero));
  const __m512 lo = _mm512_setzero_ps(), hi = _mm512_set1_ps(static_cast<float>(q.qmax));
  for (int r = 0; r < m; ++r) {
    const float* xr = x + static_cast<size_t>(r) * k;
    uint8_t* o = out + static_cast<size_t>(r) * kp;
    __m512i sum = _mm512_setzero_si512();
    for (int c = 0; c < k; c += 16) {
      const __mmask16 mask = k - c >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (k - c)) - 1);
      const __m512 v = _mm512_maskz_loadu_ps(mask, xr + c);
      __m512 t = _mm512_roundscale_ps(_mm512_div_ps(v, scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      t = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(t, zero), lo), hi);
      const __m512i codes = _mm512_cvtps_epi32(t);
      sum = _mm512_mask_add_epi32(sum, mask, sum, codes);
      _mm512_mask_cvtepi32_storeu_epi8(o + c, mask, codes);
    }
    std::memset(o + k, 0, static_cast<size_t>(kp - k));
    row_sums[r] = _mm512_reduce_add_epi32(sum);
  }
}

}  // namespace qdm::kernels
