#include "engine/kernels/fused.h"

#include "engine/kernels/fused_kernels.h"
#include "engine/kernels/kernel_table.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

// Each element-wise kernel is compiled for AVX-512, AVX2 and the baseline; the loader picks one.
#define QDM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

namespace qdm {
namespace {

// x / scale rounded half to even plus the zero point, clamped to [0, qmax]: the formula of
// quantize_rows (and the simulation), branch-free so loops vectorize.
__attribute__((always_inline)) inline float code_of(float x, float scale, float zero, float qmax) {
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23: (v + magic) - magic rounds to nearest even
  float v = x / scale;
  v = v > 4096.0f ? 4096.0f : v;
  v = v < -4096.0f ? -4096.0f : v;
  v = (v + kMagic) - kMagic + zero;
  v = v < 0.0f ? 0.0f : v;
  return v > qmax ? qmax : v;
}

// exp(x) to about 1 ulp, branch-free so loops over it vectorize (libm's expf is a call per
// element): 2^n * p(r) with n = round(x / ln 2), r = x - n ln 2 in two parts, p of degree 6.
__attribute__((always_inline)) inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  constexpr float kMagic = 12582912.0f;
  const float n = (x * 1.44269504088896341f + kMagic) - kMagic;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t e = (static_cast<int32_t>(n) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &e, 4);
  return p * two_n;
}

// fast_exp on 16 lanes: its operations in its order (separate multiplies and adds), so each lane
// gives fast_exp's bits.
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"), always_inline)) inline __m512 fast_exp16(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  x = _mm512_min_ps(x, _mm512_set1_ps(88.0f));
  const __m512 magic = _mm512_set1_ps(12582912.0f);
  const __m512 n = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), magic), magic);
  __m512 r = _mm512_sub_ps(x, _mm512_mul_ps(n, _mm512_set1_ps(0.693359375f)));
  r = _mm512_sub_ps(r, _mm512_mul_ps(n, _mm512_set1_ps(-2.12194440e-4f)));
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_add_ps(_mm512_mul_ps(p, r), _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_add_ps(_mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(p, r), r), r), _mm512_set1_ps(1.0f));
  const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

__attribute__((always_inline)) inline float silu(float v) { return v / (1.0f + fast_exp(-v)); }

// Abramowitz & Stegun 7.1.26: |error| <= 1.5e-7 (plus fast_exp's ulp), odd by the sign copied.
__attribute__((always_inline)) inline float erf_approx(float x) {
  const float a = x < 0.0f ? -x : x;
  const float t = 1.0f / (1.0f + 0.3275911f * a);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  const float y = 1.0f - p * t * fast_exp(-a * a);
  return x < 0.0f ? -y : y;
}

}  // namespace

float fast_erf(float x) { return erf_approx(x); }

QDM_CLONES
void geglu_rows(const float* in, int64_t ld_in, int64_t rows, int c, float* out, int64_t ld_out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = in + r * ld_in;
    float* d = out + r * ld_out;
    for (int j = 0; j < c; ++j) {
      const float g = s[c + j];
      d[j] = s[j] * 0.5f * g * (1.0f + erf_approx(g * 0.70710678118654752f));
    }
  }
}

QDM_CLONES
void group_norm_sums(const float* x, int64_t ld, int64_t p0, int64_t p1, int c, int groups, double* sums) {
  // Per channel across the pixels (vectorized over the contiguous channels), in double.
  double s[4096], s2[4096];
  for (int ch = 0; ch < c; ++ch) s[ch] = s2[ch] = 0.0;
  for (int64_t p = p0; p < p1; ++p) {
    const float* row = x + p * ld;
    for (int ch = 0; ch < c; ++ch) {
      const double v = row[ch];
      s[ch] += v;
      s2[ch] += v * v;
    }
  }
  const int cpg = c / groups;
  for (int g = 0; g < groups; ++g)
    for (int i = 0; i < cpg; ++i) {
      sums[2 * g] += s[g * cpg + i];
      sums[2 * g + 1] += s2[g * cpg + i];
    }
}

void group_norm_moments(const double* sums, int groups, int channels_per_group, int64_t pixels, double eps,
                        float* mean, float* rstd) {
  const double count = static_cast<double>(pixels) * channels_per_group;
  for (int g = 0; g < groups; ++g) {
    const double m = sums[2 * g] / count;
    const double var = std::max(0.0, sums[2 * g + 1] / count - m * m);
    mean[g] = static_cast<float>(m);
    rstd[g] = static_cast<float>(1.0 / std::sqrt(var + eps));
  }
}

// The quantizing pass on AVX-512 (16 channels per vector, masked tails, the codes stored by a
// narrowing store): the reference's operations in its order, so the same codes bit for bit.
__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"))) void kernels::norm_to_padded_avx512(
    const float* x, int64_t ld, int64_t p0, int64_t p1, const float* mul, const float* add, bool silu, ActQuant q,
    const PaddedShape& s, uint8_t* dst) {
  const int c = s.c;
  const __m512 scale = _mm512_set1_ps(q.scale), zero = _mm512_set1_ps(static_cast<float>(q.zero));
  const __m512 qmax = _mm512_set1_ps(static_cast<float>(q.qmax)), lim = _mm512_set1_ps(4096.0f);
  const __m512 one = _mm512_set1_ps(1.0f), lo = _mm512_setzero_ps();
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t y = p / s.w, xx = p % s.w;
    const float* row = x + p * ld;
    uint8_t* out = dst + ((y + s.pad) * s.wp() + xx + s.pad) * static_cast<int64_t>(c);
    for (int ch = 0; ch < c; ch += 16) {
      const __mmask16 m = c - ch >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << (c - ch)) - 1);
      __m512 v = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, row + ch), _mm512_maskz_loadu_ps(m, mul + ch)),
                               _mm512_maskz_loadu_ps(m, add + ch));
      if (silu) v = _mm512_div_ps(v, _mm512_add_ps(one, fast_exp16(_mm512_sub_ps(lo, v))));
      __m512 c8 = _mm512_div_ps(v, scale);
      c8 = _mm512_max_ps(_mm512_min_ps(c8, lim), _mm512_sub_ps(lo, lim));
      c8 = _mm512_roundscale_ps(c8, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      c8 = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(c8, zero), lo), qmax);
      _mm512_mask_cvtepi32_storeu_epi8(out + ch, m, _mm512_cvtps_epi32(c8));
    }
  }
}


QDM_CLONES
void kernels::norm_to_padded_reference(const float* x, int64_t ld, int64_t p0, int64_t p1, const float* mul,
                                       const float* add, bool apply_silu, ActQuant q, const PaddedShape& s, uint8_t* dst) {
  const int c = s.c;
  const float zero = static_cast<float>(q.zero), qmax = static_cast<float>(q.qmax), scale = q.scale;
  int32_t codes[4096];
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t y = p / s.w, xx = p % s.w;
    const float* row = x + p * ld;
    uint8_t* out = dst + ((y + s.pad) * s.wp() + xx + s.pad) * static_cast<int64_t>(c);
    if (apply_silu) {
      for (int ch = 0; ch < c; ++ch) codes[ch] = static_cast<int32_t>(code_of(silu(row[ch] * mul[ch] + add[ch]), scale, zero, qmax));
    } else {
      for (int ch = 0; ch < c; ++ch) codes[ch] = static_cast<int32_t>(code_of(row[ch] * mul[ch] + add[ch], scale, zero, qmax));
    }
    for (int ch = 0; ch < c; ++ch) out[ch] = static_cast<uint8_t>(codes[ch]);
  }
}

void group_norm_to_padded(QGemmIsa isa, const float* x, int64_t ld, int64_t p0, int64_t p1, const GroupNormApply& g,
                          ActQuant q, const PaddedShape& s, uint8_t* dst) {
  const int c = g.c, cpg = c / g.groups;
  if (c > 4096) throw std::invalid_argument("group_norm_to_padded: more than 4096 channels");
  float mul[4096], add[4096];  // per channel: rstd * gamma and beta - mean * rstd * gamma
  for (int ch = 0; ch < c; ++ch) {
    const int grp = ch / cpg;
    mul[ch] = g.rstd[grp] * (g.gamma ? g.gamma[ch] : 1.0f);
    add[ch] = (g.beta ? g.beta[ch] : 0.0f) - g.mean[grp] * mul[ch];
  }
  kernel_table(isa).norm_to_padded(x, ld, p0, p1, mul, add, g.silu, q, s, dst);
}

QDM_CLONES
void group_norm_to_f32(const float* x, int64_t ld, int64_t p0, int64_t p1, const GroupNormApply& g, float* out,
                       int64_t ld_out) {
  const int c = g.c, cpg = c / g.groups;
  float mul[4096], add[4096];
  for (int ch = 0; ch < c; ++ch) {
    const int grp = ch / cpg;
    mul[ch] = g.rstd[grp] * (g.gamma ? g.gamma[ch] : 1.0f);
    add[ch] = (g.beta ? g.beta[ch] : 0.0f) - g.mean[grp] * mul[ch];
  }
  for (int64_t p = p0; p < p1; ++p) {
    const float* row = x + p * ld;
    float* o = out + p * ld_out;
    for (int ch = 0; ch < c; ++ch) {
      float v = row[ch] * mul[ch] + add[ch];
      o[ch] = g.silu ? silu(v) : v;
    }
  }
}

void fill_border(const PaddedShape& s, uint8_t zero, uint8_t* dst) {
  if (s.pad == 0) return;
  const size_t row = static_cast<size_t>(s.wp()) * s.c, edge = static_cast<size_t>(s.pad) * s.c;
  for (int y = 0; y < s.hp(); ++y) {
    uint8_t* r = dst + y * row;
    if (y < s.pad || y >= s.pad + s.h) {
      std::memset(r, zero, row);
    } else {
      std::memset(r, zero, edge);
      std::memset(r + row - edge, zero, edge);
    }
  }
}

QDM_CLONES
void quantize_to_padded(const float* x, int64_t ld, int w, int y0, int y1, ActQuant q, bool upsample,
                        const PaddedShape& s, uint8_t* dst) {
  const int c = s.c, f = upsample ? 2 : 1;
  const float zero = static_cast<float>(q.zero), qmax = static_cast<float>(q.qmax), scale = q.scale;
  uint8_t codes[4096];
  int32_t wide[4096];
  for (int y = y0; y < y1; ++y)
    for (int xx = 0; xx < w; ++xx) {
      const float* row = x + (static_cast<int64_t>(y) * w + xx) * ld;
      for (int ch = 0; ch < c; ++ch) wide[ch] = static_cast<int32_t>(code_of(row[ch], scale, zero, qmax));
      for (int ch = 0; ch < c; ++ch) codes[ch] = static_cast<uint8_t>(wide[ch]);
      for (int dy = 0; dy < f; ++dy)
        for (int dx = 0; dx < f; ++dx) {
          const int64_t oy = static_cast<int64_t>(y) * f + dy + s.pad, ox = static_cast<int64_t>(xx) * f + dx + s.pad;
          std::memcpy(dst + (oy * s.wp() + ox) * c, codes, static_cast<size_t>(c));
        }
    }
}

QDM_CLONES
void quantize_rows_ld(const float* x, int64_t ld, int64_t r0, int64_t r1, int c, ActQuant q, uint8_t* out,
                      int32_t* row_sums) {
  const int kp = padded_k(c);
  const float zero = static_cast<float>(q.zero), qmax = static_cast<float>(q.qmax), scale = q.scale;
  for (int64_t r = r0; r < r1; ++r) {
    const float* row = x + r * ld;
    uint8_t* o = out + (r - r0) * kp;
    int32_t wide[4096];
    const int cc = std::min(c, 4096);
    int32_t sum = 0;
    for (int ch = 0; ch < cc; ++ch) wide[ch] = static_cast<int32_t>(code_of(row[ch], scale, zero, qmax));
    for (int ch = 0; ch < cc; ++ch) {
      o[ch] = static_cast<uint8_t>(wide[ch]);
      sum += wide[ch];
    }
    for (int ch = cc; ch < c; ++ch) {  // rows longer than the buffer (attention's packed operands)
      const int code = static_cast<int>(code_of(row[ch], scale, zero, qmax));
      o[ch] = static_cast<uint8_t>(code);
      sum += code;
    }
    std::memset(o + c, 0, static_cast<size_t>(kp - c));
    row_sums[r - r0] = sum;
  }
}

QDM_CLONES
CodeBounds centred_codes(const float* x, int64_t ld, int rows, int cols, ActQuant q, float* out) {
  const float zero = static_cast<float>(q.zero), qmax = static_cast<float>(q.qmax), scale = q.scale;
  CodeBounds b;
  for (int r = 0; r < rows; ++r) {
    const float* row = x + r * ld;
    float* o = out + static_cast<int64_t>(r) * cols;
    int32_t sum = 0, mx = 0;  // integer reductions vectorize
    for (int j = 0; j < cols; ++j) {
      const float v = code_of(row[j], scale, zero, qmax) - zero;
      o[j] = v;
      const int32_t a = static_cast<int32_t>(v < 0.0f ? -v : v);
      sum += a;
      mx = a > mx ? a : mx;
    }
    b.max_row_sum = std::max(b.max_row_sum, static_cast<int64_t>(sum));
    b.max_abs = std::max(b.max_abs, static_cast<int64_t>(mx));
  }
  return b;
}

QDM_CLONES
void im2col_u8(const uint8_t* padded, const PaddedShape& s, int kernel, int stride, int64_t p0, int64_t p1, int kp,
               uint8_t* rows, int32_t* row_sums) {
  const int c = s.c;
  const int wo = (s.wp() - kernel) / stride + 1;
  const int kreal = kernel * kernel * c;
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t oy = p / wo, ox = p % wo;
    uint8_t* d = rows + (p - p0) * kp;
    for (int ky = 0; ky < kernel; ++ky)
      for (int kx = 0; kx < kernel; ++kx, d += c)
        std::memcpy(d, padded + ((oy * stride + ky) * s.wp() + ox * stride + kx) * c, static_cast<size_t>(c));
    std::memset(d, 0, static_cast<size_t>(kp - kreal));
    const uint8_t* r = rows + (p - p0) * kp;
    uint32_t sum = 0;
    for (int i = 0; i < kreal; ++i) sum += r[i];
    row_sums[p - p0] = static_cast<int32_t>(sum);
  }
}

void im2col_f32(const float* x, int64_t ld, int h, int w, int c, int kernel, int stride, int pad, int64_t p0,
                int64_t p1, float* rows) {
  const int wo = (w + 2 * pad - kernel) / stride + 1;
  const int64_t k = static_cast<int64_t>(kernel) * kernel * c;
  for (int64_t p = p0; p < p1; ++p) {
    const int64_t oy = p / wo, ox = p % wo;
    float* d = rows + (p - p0) * k;
    for (int ky = 0; ky < kernel; ++ky) {
      const int64_t iy = oy * stride - pad + ky;
      for (int kx = 0; kx < kernel; ++kx, d += c) {
        const int64_t ix = ox * stride - pad + kx;
        if (iy < 0 || iy >= h || ix < 0 || ix >= w) std::memset(d, 0, sizeof(float) * static_cast<size_t>(c));
        else std::memcpy(d, x + (iy * w + ix) * ld, sizeof(float) * static_cast<size_t>(c));
      }
    }
  }
}

// The maximum and the sum run in 16 independent lanes (a float reduction in one accumulator does
// not vectorize: each add waits for the last; a 1,024-token self-attention's softmax was 60% of
// the attention core): the maximum is exact in any order, the sum rounds as 16 partial sums.
QDM_CLONES
void kernels::softmax_rows_reference(float* x, int64_t ld, int rows, int n, float scale) {
  constexpr int kLanes = 16;
  const int whole = n - n % kLanes;
  for (int r = 0; r < rows; ++r) {
    float* row = x + r * ld;
    float lane_max[kLanes];
    for (int l = 0; l < kLanes; ++l) lane_max[l] = -INFINITY;
    for (int j = 0; j < whole; j += kLanes)
      for (int l = 0; l < kLanes; ++l) {
        const float v = row[j + l] * scale;
        row[j + l] = v;
        lane_max[l] = v > lane_max[l] ? v : lane_max[l];
      }
    float mx = -INFINITY;
    for (int j = whole; j < n; ++j) {
      row[j] *= scale;
      mx = row[j] > mx ? row[j] : mx;
    }
    for (int l = 0; l < kLanes; ++l) mx = lane_max[l] > mx ? lane_max[l] : mx;
    float lane_sum[kLanes] = {};
    for (int j = 0; j < whole; j += kLanes)
      for (int l = 0; l < kLanes; ++l) {
        const float e = fast_exp(row[j + l] - mx);
        row[j + l] = e;
        lane_sum[l] += e;
      }
    float sum = 0;
    for (int j = whole; j < n; ++j) {
      row[j] = fast_exp(row[j] - mx);
      sum += row[j];
    }
    for (int l = 0; l < kLanes; ++l) sum += lane_sum[l];
    const float inv = 1.0f / sum;
    for (int j = 0; j < n; ++j) row[j] *= inv;
  }
}

__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl"))) void kernels::softmax_rows_avx512(float* x, int64_t ld, int rows, int n,
                                                                                            float scale) {
  const int whole = n - n % 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (n - whole)) - 1);
  const __m512 s = _mm512_set1_ps(scale);
  for (int r = 0; r < rows; ++r) {
    float* row = x + r * ld;
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < whole; j += 16) {
      const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(row + j), s);
      _mm512_storeu_ps(row + j, v);
      vmax = _mm512_max_ps(vmax, v);
    }
    const __m512 vt = _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, row + whole), s);
    _mm512_mask_storeu_ps(row + whole, tail, vt);
    // The maximum is exact in any order.
    const float mx = std::max(_mm512_reduce_max_ps(vmax), _mm512_mask_reduce_max_ps(tail, vt));
    const __m512 m = _mm512_set1_ps(mx);
    __m512 vsum = _mm512_setzero_ps();
    for (int j = 0; j < whole; j += 16) {
      const __m512 e = fast_exp16(_mm512_sub_ps(_mm512_loadu_ps(row + j), m));
      _mm512_storeu_ps(row + j, e);
      vsum = _mm512_add_ps(vsum, e);
    }
    _mm512_mask_storeu_ps(row + whole, tail, fast_exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, row + whole), m)));
    float sum = 0;  // the reference's order: the tail, then the lanes
    for (int j = whole; j < n; ++j) sum += row[j];
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, vsum);
    for (int l = 0; l < 16; ++l) sum += lanes[l];
    const __m512 inv = _mm512_set1_ps(1.0f / sum);
    for (int j = 0; j < whole; j += 16) _mm512_storeu_ps(row + j, _mm512_mul_ps(_mm512_loadu_ps(row + j), inv));
    _mm512_mask_storeu_ps(row + whole, tail, _mm512_mul_ps(_mm512_maskz_loadu_ps(tail, row + whole), inv));
  }
}

void softmax_rows(QGemmIsa isa, float* x, int64_t ld, int rows, int n, float scale) { kernel_table(isa).softmax_rows(x, ld, rows, n, scale); }

QDM_CLONES
void add_rows(float* out, int64_t ld_out, const float* add, int64_t ld_add, int64_t rows, int n, float factor) {
  for (int64_t r = 0; r < rows; ++r) {
    float* o = out + r * ld_out;
    const float* a = add + r * ld_add;
    for (int j = 0; j < n; ++j) o[j] = o[j] + a[j];
    if (factor != 1.0f)
      for (int j = 0; j < n; ++j) o[j] = o[j] / factor;
  }
}

}  // namespace qdm
