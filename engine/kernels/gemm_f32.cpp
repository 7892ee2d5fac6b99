// gemm_f32 of fused.h: the fp32 layers of an execution plan (the ones a recipe keeps in fp32).
// A register-blocked micro-kernel in GCC vector extensions (4 rows x 32 columns of C in 8
// accumulators, A broadcast, B rows loaded; then 4 x 16, then dot products for the last n % 16), compiled for AVX-512, AVX2 and the baseline; here
// multiply-adds contract into FMAs like every fp32 library's.
#include <algorithm>
#include <cstring>
#include <vector>

#include "engine/kernels/fused.h"

#define QDM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

namespace qdm {
namespace {

typedef float v16 __attribute__((vector_size(64), aligned(4)));

__attribute__((always_inline)) inline v16 load(const float* p) {
  v16 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
__attribute__((always_inline)) inline void store(float* p, v16 v) { std::memcpy(p, &v, sizeof v); }

// C = A B (times `scale` per column when kCodes: B then holds code - zero) + bias.
template <bool kCodes>
__attribute__((always_inline)) inline void gemm_impl(const float* a, int64_t lda, int m, int k, const float* b, int n,
                                                     const float* scale, const float* bias, float* c, int64_t ldc) {
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
      for (int kk = 0; kk < k; ++kk) {
        const float* bp = b + static_cast<int64_t>(kk) * n + j0;
        const v16 b0 = load(bp), b1 = load(bp + 16);
        for (int i = 0; i < kRows; ++i) {
          const float av = ar[i][kk];
          acc[i][0] += av * b0;
          acc[i][1] += av * b1;
        }
      }
      v16 b0 = v16{}, b1 = v16{};
      if (bias) b0 = load(bias + j0), b1 = load(bias + j0 + 16);
      if constexpr (kCodes) {
        const v16 s0 = load(scale + j0), s1 = load(scale + j0 + 16);
        for (int i = 0; i < kRows; ++i) acc[i][0] *= s0, acc[i][1] *= s1;
      }
      for (int i = 0; i < mb; ++i) {
        store(c + (m0 + i) * ldc + j0, acc[i][0] + b0);
        store(c + (m0 + i) * ldc + j0 + 16, acc[i][1] + b1);
      }
    }
    // Sixteen more columns (n = 16, 48, ...: an attention head's values): one accumulator a row.
    const int n_wide = n_main + 16 <= n ? n_main + 16 : n_main;
    if (n_wide > n_main) {
      const int j0 = n_main;
      v16 acc[kRows];
      for (int i = 0; i < kRows; ++i) acc[i] = v16{};
      for (int kk = 0; kk < k; ++kk) {
        const v16 b0 = load(b + static_cast<int64_t>(kk) * n + j0);
        for (int i = 0; i < kRows; ++i) acc[i] += ar[i][kk] * b0;
      }
      const v16 b0 = bias ? load(bias + j0) : v16{};
      if constexpr (kCodes) {
        const v16 s0 = load(scale + j0);
        for (int i = 0; i < kRows; ++i) acc[i] *= s0;
      }
      for (int i = 0; i < mb; ++i) store(c + (m0 + i) * ldc + j0, acc[i] + b0);
    }
    // Column tail (the last n % 16 columns, e.g. conv_out's single channel): dot products of
    // the rows with the tail's columns, gathered contiguous once per call.
    if (n_wide < n) {
      thread_local std::vector<float> cols;
      if (m0 == 0) {
        cols.resize(static_cast<size_t>(n - n_wide) * k);
        for (int j = n_wide; j < n; ++j)
          for (int kk = 0; kk < k; ++kk)
            cols[static_cast<size_t>(j - n_wide) * k + kk] = b[static_cast<int64_t>(kk) * n + j];
      }
      for (int j = n_wide; j < n; ++j) {
        const float* col = cols.data() + static_cast<size_t>(j - n_wide) * k;
        for (int i = 0; i < mb; ++i) {
          v16 acc = v16{};
          int kk = 0;
          for (; kk + 16 <= k; kk += 16) acc += load(ar[i] + kk) * load(col + kk);
          float s = 0.0f;
          for (int l = 0; l < 16; ++l) s += acc[l];
          for (; kk < k; ++kk) s += ar[i][kk] * col[kk];
          c[(m0 + i) * ldc + j] = (kCodes ? s * scale[j] : s) + (bias ? bias[j] : 0.0f);
        }
      }
    }
  }
}


// Horizontal sum as a tree (four levels of adds, not fifteen in a chain).
__attribute__((always_inline)) inline float hsum(v16 v) {
  float s8[8], s4[4];
  for (int l = 0; l < 8; ++l) s8[l] = v[l] + v[l + 8];
  for (int l = 0; l < 4; ++l) s4[l] = s8[l] + s8[l + 4];
  return (s4[0] + s4[2]) + (s4[1] + s4[3]);
}

}  // namespace

bool conv_f32_direct_pays(int kernel, int c, int n) { return n < 16 || kernel * kernel * c <= 64; }

namespace {

struct DirectConv {
  const float* x;
  int64_t ld;
  int h, w, c, kernel, stride, pad;
  // body(row, tap) for every tap of output pixel (oy, ox) inside the image (zero padding:
  // taps outside add nothing); row: the input pixel's c channels, tap: ky * kernel + kx.
  template <typename Body>
  __attribute__((always_inline)) void taps(int oy, int ox, Body body) const {
    for (int ky = 0; ky < kernel; ++ky) {
      const int iy = oy * stride - pad + ky;
      if (iy < 0 || iy >= h) continue;
      for (int kx = 0; kx < kernel; ++kx) {
        const int ix = ox * stride - pad + kx;
        if (ix >= 0 && ix < w) body(x + (static_cast<int64_t>(iy) * w + ix) * ld, ky * kernel + kx);
      }
    }
  }
};

__attribute__((always_inline)) inline float finish(float s, const float* scale, const float* bias, int j) {
  return (scale ? s * scale[j] : s) + (bias ? bias[j] : 0.0f);
}

}  // namespace

QDM_CLONES
void conv_f32_direct(const float* x, int64_t ld, int h, int w, int c, int kernel, int stride, int pad, int64_t p0,
                     int64_t p1, const float* weights, int n, const float* scale, const float* bias, float* out,
                     int64_t ld_out) {
  const DirectConv conv{x, ld, h, w, c, kernel, stride, pad};
  const int wo = (w + 2 * pad - kernel) / stride + 1, k = kernel * kernel * c;
  thread_local std::vector<float> by_output;  // (n, k) for the dot products
  if (n < 16) {
    by_output.resize(static_cast<size_t>(n) * k);
    for (int kk = 0; kk < k; ++kk)
      for (int j = 0; j < n; ++j) by_output[static_cast<size_t>(j) * k + kk] = weights[static_cast<int64_t>(kk) * n + j];
  }
  for (int64_t p = p0; p < p1; ++p) {
    const int oy = static_cast<int>(p / wo), ox = static_cast<int>(p % wo);
    float* o = out + (p - p0) * ld_out;
    if (n < 16) {  // per output, a dot product over the taps' channels
      for (int j = 0; j < n; ++j) {
        const float* wj = by_output.data() + static_cast<size_t>(j) * k;
        v16 acc = v16{};
        float tail = 0.0f;
        conv.taps(oy, ox, [&](const float* row, int tap) {
          const float* wt = wj + tap * c;
          int ch = 0;
          for (; ch + 16 <= c; ch += 16) acc += load(row + ch) * load(wt + ch);
          for (; ch < c; ++ch) tail += row[ch] * wt[ch];
        });
        o[j] = finish(hsum(acc) + tail, scale, bias, j);
      }
      continue;
    }
    // few inputs per output: 16 outputs at a time accumulated across the taps
    int j0 = 0;
    for (; j0 + 16 <= n; j0 += 16) {
      v16 acc = v16{};
      conv.taps(oy, ox, [&](const float* row, int tap) {
        const float* wt = weights + static_cast<int64_t>(tap * c) * n + j0;
        for (int ch = 0; ch < c; ++ch) acc += row[ch] * load(wt + static_cast<int64_t>(ch) * n);
      });
      if (scale) acc *= load(scale + j0);
      if (bias) acc += load(bias + j0);
      store(o + j0, acc);
    }
    for (int j = j0; j < n; ++j) {  // outputs past the last multiple of 16
      float acc = 0.0f;
      conv.taps(oy, ox, [&](const float* row, int tap) {
        for (int ch = 0; ch < c; ++ch) acc += row[ch] * weights[static_cast<int64_t>(tap * c + ch) * n + j];
      });
      o[j] = finish(acc, scale, bias, j);
    }
  }
}

QDM_CLONES
void gemm_f32(const float* a, int64_t lda, int m, int k, const float* b, int n, const float* bias, float* c,
              int64_t ldc) {
  gemm_impl<false>(a, lda, m, k, b, n, nullptr, bias, c, ldc);
}

QDM_CLONES
void gemm_f32_codes(const float* a, int64_t lda, int m, int k, const uint8_t* codes, int n, const float* zero,
                    const float* scale, const float* bias, float* c, int64_t ldc) {
  // code - zero as floats (exact), once per call: a plain loop the compiler vectorizes.
  thread_local std::vector<float> values;
  values.resize(static_cast<size_t>(k) * n);
  for (int kk = 0; kk < k; ++kk)
    for (int j = 0; j < n; ++j)
      values[static_cast<size_t>(kk) * n + j] = static_cast<float>(codes[static_cast<size_t>(kk) * n + j]) - zero[j];
  gemm_impl<true>(a, lda, m, k, values.data(), n, scale, bias, c, ldc);
}

}  // namespace qdm
