// AVX-VNNI (256-bit vpdpbusd) on the 16-channel panel layout: each panel step is two
// 8-channel halves. Compiled with -mavx2 -mavxvnni; called only when the CPU has them.
#include <immintrin.h>

#include <cstring>

#include "engine/kernels/qgemm_kernels.h"

namespace qdm::kernels {
namespace {

inline __m256i bcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

}  // namespace

void qgemm_s32_avxvnni(const uint8_t* a, int m, const PackedWeights& w, int32_t* acc) {
  const int kp = w.k_padded, groups = kp / 4, panels = (w.n + 15) / 16;
  const bool int4 = w.bits <= 4;
  const size_t panel_bytes = static_cast<size_t>(groups) * (int4 ? 32 : 64);
  const __m256i nib = _mm256_set1_epi8(0x0F);
  int32_t tmp[16];
  for (int r0 = 0; r0 < m; r0 += 4) {
    const int rows = std::min(4, m - r0);
    const uint8_t* ar[4];
    for (int i = 0; i < 4; ++i) ar[i] = a + static_cast<size_t>(r0 + std::min(i, rows - 1)) * kp;
    for (int p = 0; p < panels; ++p) {
      const uint8_t* wp = w.data.data() + static_cast<size_t>(p) * panel_bytes;
      __m256i c[4][2];
      for (auto& row : c) row[0] = row[1] = _mm256_setzero_si256();
      auto step = [&](size_t k0, __m256i w0, __m256i w1) {
        for (int i = 0; i < 4; ++i) {
          const __m256i av = bcast4(ar[i] + k0);
          c[i][0] = _mm256_dpbusd_avx_epi32(c[i][0], av, w0);
          c[i][1] = _mm256_dpbusd_avx_epi32(c[i][1], av, w1);
        }
      };
      if (int4) {
        for (int h = 0; h < groups / 2; ++h) {
          const __m256i v0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + static_cast<size_t>(h) * 64));
          const __m256i v1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + static_cast<size_t>(h) * 64 + 32));
          step(static_cast<size_t>(h) * 8, _mm256_and_si256(v0, nib), _mm256_and_si256(v1, nib));
          step(static_cast<size_t>(h) * 8 + 4, _mm256_and_si256(_mm256_srli_epi16(v0, 4), nib),
               _mm256_and_si256(_mm256_srli_epi16(v1, 4), nib));
        }
      } else {
        for (int g = 0; g < groups; ++g)
          step(static_cast<size_t>(g) * 4, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + static_cast<size_t>(g) * 64)),
               _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + static_cast<size_t>(g) * 64 + 32)));
      }
      const int n0 = p * 16, count = std::min(16, w.n - n0);
      for (int i = 0; i < rows; ++i) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(tmp), c[i][0]);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(tmp + 8), c[i][1]);
        std::memcpy(acc + static_cast<size_t>(r0 + i) * w.n + n0, tmp, static_cast<size_t>(count) * 4);
      }
    }
  }
}

}  // namespace qdm::kernels
