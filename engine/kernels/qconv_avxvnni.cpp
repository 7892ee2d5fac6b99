// The lane convolution of qconv.h on AVX-VNNI (256-bit vpdpbusd), compiled with -mavx2
// -mavxvnni and called (qconv.cpp) only for plans built for that ISA.
#include "engine/kernels/qconv_kernels.h"
#include "engine/kernels/qconv_lanes256.h"

namespace qdm::kernels {
namespace {

struct VnniDot {
  template <bool kSmall>
  static __m256i dp(__m256i c, __m256i a, __m256i b) {
    return _mm256_dpbusd_avx_epi32(c, a, b);
  }
};

}  // namespace

void qconv_pixels_avxvnni(const QConvPlan& plan, const uint8_t* padded, int r0, int rows,
                          float* out) {
  lanes_pixels<VnniDot>(plan, padded, r0, rows, out);
}

void qconv_pixels_rows_avxvnni(const QConvPlan& plan, const uint8_t* padded, int r0, int rows,
                               float* out, int64_t ld, int n0, int n1, const int8_t* tile,
                               const int32_t* dest_rows) {
  lanes_pixels_rows<VnniDot>(plan, padded, r0, rows, out, ld, n0, n1, tile, dest_rows);
}

}  // namespace qdm::kernels
