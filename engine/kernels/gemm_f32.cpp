// gemm_f32 of fused.h: the fp32 layers of an execution plan (the ones a recipe keeps in fp32).
// A register-blocked micro-kernel in GCC vector extensions (4 rows x 32 columns of C in 8
// accumulators, A broadcast, B rows loaded), compiled for AVX-512, AVX2 and the baseline; here
// multiply-adds contract into FMAs like every fp32 library's.
#include <algorithm>
#include <cstring>

#include "engine/kernels/fused.h"

#define QDM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

namespace qdm {
namespace {

typedef float v16 __attribute__((vector_size(64), aligned(4)));

inline v16 load(const float* p) {
  v16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, v16 v) { std::memcpy(p, &v, sizeof v); }

}  // namespace

QDM_CLONES
void gemm_f32(const float* a, int64_t lda, int m, int k, const float* b, int n, const float* bias, float* c,
              int64_t ldc) {
  constexpr int kRows = 4, kCols = 32;
  const int n_main = n / kCols * kCols;
  int m0 = 0;
  for (; m0 < m; m0 += kRows) {
    const int mb = std::min(kRows, m - m0);
    const float* ar[kRows];
    for (int i = 0; i < kRows; ++i) ar[i] = a + (m0 + std::min(i, mb - 1)) * lda;
    for (int j0 = 0; j0 < n_main; j0 += kCols) {
      v16 acc[kRows][2];
      for (int i = 0; i < kRows; ++i) acc[i][0] = acc[i][1] = v16{};
      const float* bp = b + j0;
      for (int kk = 0; kk < k; ++kk, bp += n) {
        const v16 b0 = load(bp), b1 = load(bp + 16);
        for (int i = 0; i < kRows; ++i) {
          const float av = ar[i][kk];
          acc[i][0] += av * b0;
          acc[i][1] += av * b1;
        }
      }
      v16 b0 = v16{}, b1 = v16{};
      if (bias) b0 = load(bias + j0), b1 = load(bias + j0 + 16);
      for (int i = 0; i < mb; ++i) {
        store(c + (m0 + i) * ldc + j0, acc[i][0] + b0);
        store(c + (m0 + i) * ldc + j0 + 16, acc[i][1] + b1);
      }
    }
    // Column tail (n not a multiple of 32, e.g. conv_out's single channel).
    for (int j = n_main; j < n; ++j)
      for (int i = 0; i < mb; ++i) {
        float s = 0.0f;
        for (int kk = 0; kk < k; ++kk) s += ar[i][kk] * b[static_cast<int64_t>(kk) * n + j];
        c[(m0 + i) * ldc + j] = s + (bias ? bias[j] : 0.0f);
      }
  }
}

}  // namespace qdm
