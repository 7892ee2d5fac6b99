// The portable reference: the oracle every SIMD path must match exactly.
#include "engine/kernels/qgemm_kernels.h"

namespace qdm::kernels {

void qgemm_s32_scalar(const uint8_t* a, int m, const PackedWeights& w, int32_t* acc) {
  std::vector<int8_t> row(static_cast<size_t>(w.k_padded));
  for (int n = 0; n < w.n; ++n) {
    for (int k = 0; k < w.k_padded; ++k) row[static_cast<size_t>(k)] = k < w.k ? w.weight(n, k) : 0;
    for (int r = 0; r < m; ++r) {
      const uint8_t* ar = a + static_cast<size_t>(r) * w.k_padded;
      int32_t sum = 0;
      for (int k = 0; k < w.k; ++k) sum += static_cast<int32_t>(ar[k]) * row[static_cast<size_t>(k)];
      acc[static_cast<size_t>(r) * w.n + n] = sum;
    }
  }
}

}  // namespace qdm::kernels
