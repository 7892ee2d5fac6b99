// Integer GEMM for quantized layers: uint8 activations (per-tensor scale / zero point) times
// int4 or int8 weight codes (per-output-channel scale / zero point), int32 accumulation.
//
//   y[m, n] = s_a s_w[n] * sum_k (a[m, k] - z_a) (w[n, k] - z_w[n]) + bias[n]
//
// Weight codes are stored as signed bytes w' = w - offset (offset 0 for <= 4 bits, 128 for
// 8 bits) so u8 x s8 dot-product instructions apply; the zero points and the column sums
// fold the corrections:
//   sum (a - z_a)(w - z_w) = dot(a, w') - z'_w rowsum(a) - z_a colsum(w') + K z_a z'_w,
// with z'_w = z_w - offset. Paths: a scalar reference, AVX2, AVX-VNNI and AVX-512 VNNI, in the
// kernel table (kernel_table.h); QDM_ISA=scalar|avx2|avxvnni|avx512vnni pins one.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace qdm {

enum class QGemmIsa { kScalar, kAvx2, kAvxVnni, kAvx512Vnni };

const char* isa_name(QGemmIsa isa);
std::vector<QGemmIsa> supported_isas();  // what this CPU and build can run, scalar first
// "scalar", "avx2", "avxvnni", "avx512vnni"; throws std::invalid_argument for a name this CPU
// lacks (listing what it has) or does not know.
QGemmIsa parse_isa(const std::string& name);
// The ISA this process builds its plans and layers for, chosen once: QDM_ISA (or the older
// QDM_KERNEL_ISA) when set, else the best this CPU has. Throws when the variable names a path
// this CPU lacks.
QGemmIsa best_isa();

// K is padded to a multiple of kKBlock; activation rows must be padded the same way (any
// values: padded weights are zero).
constexpr int kKBlock = 64;
constexpr int kMaxK = 16384;  // keeps the zero-point corrections in int32
inline int padded_k(int k) { return (k + kKBlock - 1) / kKBlock * kKBlock; }

// How weights are laid out for a kernel (chosen once, at load).
//  kRows      row n holds K contiguous. bits <= 4: per 64-wide K block 32 bytes, byte j holding
//             w'[j] (low nibble) and w'[j + 32] (high nibble). bits > 4: k_padded bytes.
//  kPanels16  VNNI layout: panels of 16 output channels; per group of 4 K, 64 bytes with
//             byte 4 j + i = w'[16 p + j, 4 g + i]. bits <= 4: groups 2h and 2h + 1 share the
//             64 bytes as low and high nibbles. N is padded to 16 with zero weights.
enum class WeightLayout { kRows, kPanels16 };
WeightLayout layout_for(QGemmIsa isa);

struct PackedWeights {
  int n = 0, k = 0, k_padded = 0, bits = 8;
  WeightLayout layout = WeightLayout::kRows;
  std::vector<uint8_t> data;
  std::vector<int32_t> col_sum;  // sum_k w'[n, k]
  std::vector<int32_t> zero;     // z'_w = z_w - offset
  std::vector<float> scale;      // s_w
  size_t row_bytes() const { return bits <= 4 ? static_cast<size_t>(k_padded) / 2 : static_cast<size_t>(k_padded); }
  size_t bytes() const { return data.size() + 4 * (col_sum.size() + zero.size() + scale.size()); }
  int8_t weight(int row, int col) const;  // w'[row, col], for references and tests
};

// codes: (n, k) row-major in [0, 2^bits - 1]; zero_point: integers in the same range.
PackedWeights pack_weights(const uint8_t* codes, int n, int k, int bits, const float* scale, const float* zero_point,
                           WeightLayout layout = WeightLayout::kRows);
// The same into `w`, reusing its storage (operands packed per call, e.g. attention's K and V).
void pack_weights_into(PackedWeights& w, const uint8_t* codes, int n, int k, int bits, const float* scale,
                       const float* zero_point, WeightLayout layout = WeightLayout::kRows);

// acc (m, n) = a (m, k_padded) . w'^T, exact int32. w must be packed with layout_for(isa).
void qgemm_s32(QGemmIsa isa, const uint8_t* a, int m, const PackedWeights& w, int32_t* acc);

struct ActQuant {
  float scale = 1;
  int32_t zero = 0;
  int32_t qmax = 255;  // 2^bits - 1: codes are clamped to [0, qmax]
};
// Quantizes x (m, k) to u8 rows of padded_k(k) (padding 0), returns row sums over the first k.
// Rounds x / scale half to even, as the fake-quant simulation does; every ISA gives the same bytes.
void quantize_rows(QGemmIsa isa, const float* x, int m, int k, ActQuant q, uint8_t* out, int32_t* row_sums);
// The row-independent parts of the dequantization for activation table q, per output column:
// term[n] = -z_a colsum[n] + K z_a z'_w[n] and scale[n] = s_a s_w[n], so that
// y[m, n] = float(acc[m, n] - z'_w[n] rowsum[m] + term[n]) * scale[n] + bias[n].
void output_columns(const PackedWeights& w, ActQuant q, int32_t* term, float* scale);
// y (m, n) = dequantized product + bias (may be null). acc from qgemm_s32.
void dequantize_output(const int32_t* acc, int m, const PackedWeights& w, ActQuant q, const int32_t* row_sums,
                       const float* bias, float* y);

}  // namespace qdm
