// The lane convolution of qconv.h on AVX2 without VNNI, compiled with -mavx2 and called
// (qconv.cpp) only for plans built for that ISA. vpdpbusd's u8 x s8 dot product of 4 bytes per
// 32-bit lane, exactly: for weights in 0..15 (4-bit codes, and the activations' row sums)
// vpmaddubsw's pair sums stay below 2^15 (2 * 255 * 15) and vpmaddwd by ones widens them; for
// int8 weights the bytes are split into 16-bit even and odd halves first and multiplied with
// vpmaddwd, which cannot saturate.
#include "engine/kernels/qconv_kernels.h"
#include "engine/kernels/qconv_lanes256.h"

namespace qdm::kernels {
namespace {

struct Avx2Dot {
  template <bool kSmall>
  static __m256i dp(__m256i c, __m256i a, __m256i b) {
    if constexpr (kSmall) {
      return _mm256_add_epi32(c,
                              _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1)));
    } else {
      const __m256i a_even = _mm256_and_si256(a, _mm256_set1_epi16(0x00FF)),
                    a_odd = _mm256_srli_epi16(a, 8);
      const __m256i b_even = _mm256_srai_epi16(_mm256_slli_epi16(b, 8), 8),
                    b_odd = _mm256_srai_epi16(b, 8);
      return _mm256_add_epi32(
          c, _mm256_add_epi32(_mm256_madd_epi16(a_even, b_even), _mm256_madd_epi16(a_odd, b_odd)));
    }
  }
};

}  // namespace

void qconv_pixels_avx2(const QConvPlan& plan, const uint8_t* padded, int r0, int rows, float* out) {
  lanes_pixels<Avx2Dot>(plan, padded, r0, rows, out);
}

void qconv_pixels_rows_avx2(const QConvPlan& plan, const uint8_t* padded, int r0, int rows,
                            float* out, int64_t ld, int n0, int n1, const int8_t* tile,
                            const int32_t* dest_rows) {
  lanes_pixels_rows<Avx2Dot>(plan, padded, r0, rows, out, ld, n0, n1, tile, dest_rows);
}

}  // namespace qdm::kernels
