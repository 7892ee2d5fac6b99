#include "engine/kernels/upsample_fold.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

// The per-call folding is element-wise int16 work: compiled for AVX-512, AVX2 and the baseline.
#define QDM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))

namespace qdm {
namespace {

// Row r of w as (code - zero point) for its k values.
__attribute__((always_inline)) inline void signed_row(const PackedWeights& w, int r, int16_t* out) {
  const uint8_t* row = w.data.data() + static_cast<size_t>(r) * w.row_bytes();
  const int16_t zero = static_cast<int16_t>(w.zero[static_cast<size_t>(r)]);
  if (w.bits > 4) {
    for (int c = 0; c < w.k; ++c) out[c] = static_cast<int16_t>(static_cast<int8_t>(row[c]) - zero);
    return;
  }
  // kRows int4: per 64-wide K block, byte j holds w'[j] (low nibble) and w'[j + 32] (high)
  for (int b = 0; b * kKBlock < w.k; ++b) {
    const uint8_t* bytes = row + b * (kKBlock / 2);
    int16_t* o = out + b * kKBlock;
    const int n = std::min(kKBlock, w.k - b * kKBlock);
    if (n == kKBlock) {  // whole blocks: fixed trip counts, vectorized
      for (int j = 0; j < 32; ++j) o[j] = static_cast<int16_t>((bytes[j] & 15) - zero);
      for (int j = 0; j < 32; ++j) o[32 + j] = static_cast<int16_t>((bytes[j] >> 4) - zero);
      continue;
    }
    for (int j = 0; j < 32 && j < n; ++j) o[j] = static_cast<int16_t>((bytes[j] & 15) - zero);
    for (int j = 32; j < n; ++j) o[j] = static_cast<int16_t>((bytes[j - 32] >> 4) - zero);
  }
}

// The taps of the 3x3 kernel summed by phase p's tap t along one axis.
constexpr int kFirst[2][2] = {{0, 1}, {0, 2}};  // [phase][tap]: first 3x3 tap
constexpr int kLast[2][2] = {{0, 2}, {1, 2}};   // last 3x3 tap (inclusive)

void check(const PackedWeights& w, int channels) {
  if (w.layout != WeightLayout::kRows || w.k != 9 * channels)
    throw std::invalid_argument("upsample_fold: needs 3x3 weights in rows");
}

// Phase (py, px)'s folded row (ty, tx, c) from a signed 3x3 row s (ky, kx, c).
__attribute__((always_inline)) inline void fold_row(const int16_t* s, int c, int py, int px, int16_t* out) {
  for (int ty = 0; ty < 2; ++ty)
    for (int tx = 0; tx < 2; ++tx) {
      int16_t* o = out + (ty * 2 + tx) * c;
      std::fill(o, o + c, 0);
      for (int ky = kFirst[py][ty]; ky <= kLast[py][ty]; ++ky)
        for (int kx = kFirst[px][tx]; kx <= kLast[px][tx]; ++kx) {
          const int16_t* tap = s + (ky * 3 + kx) * c;
          for (int ch = 0; ch < c; ++ch) o[ch] = static_cast<int16_t>(o[ch] + tap[ch]);
        }
    }
}

}  // namespace

bool upsample_fold_fits(const PackedWeights& w, int channels) {
  check(w, channels);
  std::vector<int16_t> s(static_cast<size_t>(w.k)), f(static_cast<size_t>(4 * channels));
  for (int r = 0; r < w.n; ++r) {
    signed_row(w, r, s.data());
    for (int p = 0; p < 4; ++p) {
      fold_row(s.data(), channels, p / 2, p % 2, f.data());
      for (int16_t v : f)
        if (v < -128 || v > 127) return false;
    }
  }
  return true;
}

PackedWeights upsample_fold_header(const PackedWeights& w, int channels, int phase) {
  check(w, channels);
  PackedWeights o;
  o.n = w.n;
  o.k = 4 * channels;
  o.k_padded = padded_k(o.k);
  o.bits = 8;
  o.layout = WeightLayout::kRows;
  o.col_sum.resize(static_cast<size_t>(o.n));
  o.zero.assign(static_cast<size_t>(o.n), 0);
  o.scale = w.scale;
  std::vector<int8_t> row(static_cast<size_t>(o.k_padded));
  for (int r = 0; r < w.n; ++r) {
    upsample_fold_rows(w, channels, phase, r, r + 1, row.data());
    int32_t sum = 0;
    for (int i = 0; i < o.k; ++i) sum += row[static_cast<size_t>(i)];
    o.col_sum[static_cast<size_t>(r)] = sum;
  }
  return o;
}

QDM_CLONES
void upsample_fold_rows(const PackedWeights& w, int channels, int phase, int n0, int n1, int8_t* rows) {
  check(w, channels);
  const int k = 4 * channels, kp = padded_k(k);
  thread_local std::vector<int16_t> s, f;
  s.resize(static_cast<size_t>(w.k));
  f.resize(static_cast<size_t>(k));
  for (int r = n0; r < n1; ++r) {
    signed_row(w, r, s.data());
    fold_row(s.data(), channels, phase / 2, phase % 2, f.data());
    int8_t* row = rows + static_cast<size_t>(r - n0) * static_cast<size_t>(kp);
    const int16_t* fv = f.data();
    int16_t lo = 0, hi = 0;
    for (int i = 0; i < k; ++i) {
      lo = std::min(lo, fv[i]);
      hi = std::max(hi, fv[i]);
      row[i] = static_cast<int8_t>(fv[i]);
    }
    if (lo < -128 || hi > 127) throw std::invalid_argument("upsample_fold: folded weights leave int8");
    std::fill(row + k, row + kp, static_cast<int8_t>(0));
  }
}

}  // namespace qdm
