// Additive-quantization weights (recipe vq) as the integer kernels read them: every group of
// `group` consecutive K values (K in the kernels' order: (ky, kx, c) for a conv) of row n is
// the sum of `codebooks` int8 codewords, an exact int8 vector (the codebooks' largest
// magnitudes sum to at most 127), times the row's scale. The weights are never stored
// decoded: a convolution or linear layer decodes a tile of rows per call into a
// cache-resident buffer in the layout the GEMM or lane convolution reads (w' = the int8 sums,
// 8-bit weights with zero point 0), and runs it over every pixel of the call.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/kernels/qgemm.h"

namespace qdm {

struct VqWeights {
  int n = 0, k = 0, codebooks = 0, bits = 8, group = 8;
  std::vector<uint8_t> codes;     // (n, k / group, codebooks)
  std::vector<int8_t> codewords;  // (codebooks, 2^bits, group)
  std::vector<float> scale;       // (n)
  // What output_columns() and the epilogues need of the whole layer: k_padded, per-row sums of
  // the decoded weights, zero points (0), scales; no weight data.
  PackedWeights columns;
  size_t bytes() const { return codes.size() + codewords.size() + 4 * scale.size() + 4 * columns.col_sum.size(); }
};

// Checks sizes and the int8 bound, computes `columns` (layout: what tiles will be packed in).
// Throws std::invalid_argument saying what is wrong.
VqWeights make_vq_weights(int n, int k, int codebooks, int bits, int group, std::vector<uint8_t> codes,
                          std::vector<int8_t> codewords, std::vector<float> scale, WeightLayout layout);

// Rows [n0, n1) decoded as int8 rows of `ld` bytes (K values, the rest left as is). The fast
// path adds 8 codeword bytes at a time in a 64-bit register (carry-free byte adds); the
// reference adds one value at a time. They agree exactly.
void vq_decode_rows(const VqWeights& w, int n0, int n1, int8_t* out, size_t ld);
void vq_decode_rows_reference(const VqWeights& w, int n0, int n1, int8_t* out, size_t ld);

// Rows [n0, n1) as 8-bit PackedWeights in w.columns' layout (kRows: int8 rows of k_padded;
// kPanels16: panels of 16 rows, zero rows past n1), reusing tile's storage. Only data, n, k,
// k_padded, bits and layout are set: the epilogue terms come from w.columns.
void vq_decode_tile(const VqWeights& w, int n0, int n1, PackedWeights& tile);

}  // namespace qdm
