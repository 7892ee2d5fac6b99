#include "engine/kernels/qgemm.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

#include "engine/kernels/kernel_table.h"
#include "engine/kernels/qgemm_kernels.h"

namespace qdm {

const char* isa_name(QGemmIsa isa) {
  switch (isa) {
    case QGemmIsa::kScalar: return "scalar";
    case QGemmIsa::kAvx2: return "avx2";
    case QGemmIsa::kAvxVnni: return "avxvnni";
    case QGemmIsa::kAvx512Vnni: return "avx512vnni";
  }
  return "?";
}

std::vector<QGemmIsa> supported_isas() {
  std::vector<QGemmIsa> out = {QGemmIsa::kScalar};
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) out.push_back(QGemmIsa::kAvx2);
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("avxvnni")) out.push_back(QGemmIsa::kAvxVnni);
  // Its fused kernels also use AVX-512 DQ and VL, which every AVX-512 VNNI CPU has.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vnni") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    out.push_back(QGemmIsa::kAvx512Vnni);
#endif
  return out;
}

QGemmIsa parse_isa(const std::string& name) {
  const auto isas = supported_isas();
  std::string have;
  for (QGemmIsa isa : isas) {
    if (name == isa_name(isa)) return isa;
    have += std::string(have.empty() ? "" : ", ") + isa_name(isa);
  }
  for (QGemmIsa isa : {QGemmIsa::kScalar, QGemmIsa::kAvx2, QGemmIsa::kAvxVnni, QGemmIsa::kAvx512Vnni})
    if (name == isa_name(isa))
      throw std::invalid_argument("instruction set " + name + " is not available on this CPU; it has " + have);
  throw std::invalid_argument("unknown instruction set '" + name.substr(0, 32) + "'; use scalar, avx2, avxvnni or avx512vnni");
}

QGemmIsa isa_from_environment() {
  for (const char* var : {"QDM_ISA", "QDM_KERNEL_ISA"})
    if (const char* env = std::getenv(var); env && *env) {
      try {
        return parse_isa(env);
      } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(std::string(var) + ": " + e.what());
      }
    }
  return supported_isas().back();
}

QGemmIsa best_isa() {
  static const QGemmIsa chosen = isa_from_environment();  // throws again on every call when refused
  return chosen;
}

WeightLayout layout_for(QGemmIsa isa) { return kernel_table(isa).layout; }

namespace {

// Byte offset and nibble (0 low, 1 high, -1 whole byte) of w'[row, col] in the panel layout.
std::pair<size_t, int> panel_position(int row, int col, int k_padded, bool int4) {
  const int p = row / 16, j = row % 16, g = col / 4, i = col % 4;
  const size_t panel_bytes = static_cast<size_t>(k_padded / 4) * (int4 ? 32 : 64);
  if (!int4) return {static_cast<size_t>(p) * panel_bytes + static_cast<size_t>(g) * 64 + static_cast<size_t>(4 * j + i), -1};
  return {static_cast<size_t>(p) * panel_bytes + static_cast<size_t>(g / 2) * 64 + static_cast<size_t>(4 * j + i), g % 2};
}

}  // namespace

int8_t PackedWeights::weight(int row, int col) const {
  if (layout == WeightLayout::kPanels16) {
    auto [pos, nibble] = panel_position(row, col, k_padded, bits <= 4);
    if (nibble < 0) return static_cast<int8_t>(data[pos]);
    return static_cast<int8_t>(nibble == 0 ? data[pos] & 15 : data[pos] >> 4);
  }
  const uint8_t* r = data.data() + static_cast<size_t>(row) * row_bytes();
  if (bits > 4) return static_cast<int8_t>(r[col]);
  const int block = col / kKBlock, j = col % kKBlock;
  const uint8_t byte = r[block * (kKBlock / 2) + (j % 32)];
  return static_cast<int8_t>(j < 32 ? byte & 15 : byte >> 4);
}

void pack_weights_into(PackedWeights& w, const uint8_t* codes, int n, int k, int bits, const float* scale,
                       const float* zero_point, WeightLayout layout) {
  if (bits < 2 || bits > 8) throw std::invalid_argument("pack_weights: bits must be 2..8");
  // |a w|, |z_a colsum|, |K z_a z_w|, |z_w rowsum| are each at most K * 255 * 128: four such
  // terms stay below 2^31 (the epilogues' int32 sums) for K up to 16384.
  if (k < 1 || k > kMaxK)
    throw std::invalid_argument("integer kernels: a layer with K = " + std::to_string(k) + " inputs per output is outside 1.." +
                                std::to_string(kMaxK) + " (int32 accumulation); run it with --kernels sim");
  w.n = n;
  w.k = k;
  w.k_padded = padded_k(k);
  w.bits = bits;
  w.layout = layout;
  const int offset = bits <= 4 ? 0 : 128;  // <= 4-bit codes already fit a signed byte
  const int rows_stored = layout == WeightLayout::kPanels16 ? (n + 15) / 16 * 16 : n;
  w.data.assign(static_cast<size_t>(rows_stored) * w.row_bytes(), 0);
  w.col_sum.assign(static_cast<size_t>(n), 0);
  w.zero.resize(static_cast<size_t>(n));
  w.scale.assign(scale, scale + n);
  if (bits == 8 && layout == WeightLayout::kPanels16) {  // every code is valid: w' = code ^ 0x80
    const size_t panel_bytes = static_cast<size_t>(w.k_padded / 4) * 64;
    for (int r = 0; r < n; ++r) {
      uint8_t* panel = w.data.data() + static_cast<size_t>(r / 16) * panel_bytes + 4 * static_cast<size_t>(r % 16);
      const uint8_t* src = codes + static_cast<size_t>(r) * k;
      int32_t sum = 0;
      for (int c = 0; c < k; ++c) {
        panel[static_cast<size_t>(c / 4) * 64 + static_cast<size_t>(c % 4)] = src[c] ^ 0x80;
        sum += src[c];
      }
      w.col_sum[static_cast<size_t>(r)] = sum - 128 * k;
      w.zero[static_cast<size_t>(r)] = static_cast<int32_t>(std::lround(zero_point[r])) - offset;
    }
    return;
  }
  for (int r = 0; r < n; ++r) {
    uint8_t* row = w.data.data() + static_cast<size_t>(r) * w.row_bytes();
    w.zero[static_cast<size_t>(r)] = static_cast<int32_t>(std::lround(zero_point[r])) - offset;
    for (int c = 0; c < k; ++c) {
      const int v = static_cast<int>(codes[static_cast<size_t>(r) * k + c]) - offset;
      if (v < -128 || v > 127 || (bits <= 4 && v > 15)) throw std::invalid_argument("pack_weights: code out of range");
      w.col_sum[static_cast<size_t>(r)] += v;
      if (layout == WeightLayout::kPanels16) {
        auto [pos, nibble] = panel_position(r, c, w.k_padded, bits <= 4);
        w.data[pos] |= static_cast<uint8_t>(nibble < 0 ? static_cast<uint8_t>(static_cast<int8_t>(v)) : nibble == 0 ? v : v << 4);
      } else if (bits > 4) {
        row[c] = static_cast<uint8_t>(static_cast<int8_t>(v));
      } else {
        const int block = c / kKBlock, j = c % kKBlock;
        uint8_t& byte = row[block * (kKBlock / 2) + (j % 32)];
        byte |= static_cast<uint8_t>(j < 32 ? v : v << 4);
      }
    }
  }
}

PackedWeights pack_weights(const uint8_t* codes, int n, int k, int bits, const float* scale, const float* zero_point,
                           WeightLayout layout) {
  PackedWeights w;
  pack_weights_into(w, codes, n, k, bits, scale, zero_point, layout);
  return w;
}

void qgemm_s32(QGemmIsa isa, const uint8_t* a, int m, const PackedWeights& w, int32_t* acc) {
  const KernelTable& k = kernel_table(isa);
  if (w.layout != k.layout && isa != QGemmIsa::kScalar)
    throw std::invalid_argument(std::string("qgemm_s32: weights are not packed for ") + isa_name(isa));
  k.qgemm_s32(a, m, w, acc);
}

void quantize_rows(QGemmIsa isa, const float* x, int m, int k, ActQuant q, uint8_t* out, int32_t* row_sums) {
  kernel_table(isa).quantize_rows(x, m, k, q, out, row_sums);
}

void kernels::quantize_rows_generic(const float* x, int m, int k, ActQuant q, uint8_t* out, int32_t* row_sums) {
  const int kp = padded_k(k);
  // x / scale rounded half to even by (v + 1.5 * 2^23) - 1.5 * 2^23 (the FPU's default mode,
  // |v| clamped below 2^22 first): branch-free, so the loop vectorizes.
  constexpr float kMagic = 12582912.0f;
  const float zero = static_cast<float>(q.zero), qmax = static_cast<float>(q.qmax);
  for (int r = 0; r < m; ++r) {
    const float* xr = x + static_cast<size_t>(r) * k;
    uint8_t* o = out + static_cast<size_t>(r) * kp;
    int32_t sum = 0;
    for (int c = 0; c < k; ++c) {
      float v = xr[c] / q.scale;
      v = v > 4096.0f ? 4096.0f : v;
      v = v < -4096.0f ? -4096.0f : v;
      v = (v + kMagic) - kMagic + zero;
      v = v < 0.0f ? 0.0f : v;
      v = v > qmax ? qmax : v;
      const int code = static_cast<int>(v);
      o[c] = static_cast<uint8_t>(code);
      sum += code;
    }
    std::fill(o + k, o + kp, 0);
    row_sums[r] = sum;
  }
}

// Sums stay in int32: pack_weights bounds K so that every term is below 2^31.
void output_columns(const PackedWeights& w, ActQuant q, int32_t* term, float* scale) {
  for (int c = 0; c < w.n; ++c) {
    const size_t i = static_cast<size_t>(c);
    term[i] = -q.zero * w.col_sum[i] + w.k * q.zero * w.zero[i];
    scale[i] = q.scale * w.scale[i];
  }
}

void dequantize_output(const int32_t* acc, int m, const PackedWeights& w, ActQuant q, const int32_t* row_sums,
                       const float* bias, float* y) {
  std::vector<int32_t> col_term(static_cast<size_t>(w.n));
  std::vector<float> col_scale(static_cast<size_t>(w.n)), col_bias(static_cast<size_t>(w.n), 0.0f);
  output_columns(w, q, col_term.data(), col_scale.data());
  if (bias) col_bias.assign(bias, bias + w.n);
  const int32_t* zw = w.zero.data();
  for (int r = 0; r < m; ++r) {
    const int32_t* a = acc + static_cast<size_t>(r) * w.n;
    float* out = y + static_cast<size_t>(r) * w.n;
    const int32_t rs = row_sums[r];
    for (int c = 0; c < w.n; ++c)
      out[c] = static_cast<float>(a[c] - zw[c] * rs + col_term[static_cast<size_t>(c)]) * col_scale[static_cast<size_t>(c)] +
               col_bias[static_cast<size_t>(c)];
  }
}

}  // namespace qdm
