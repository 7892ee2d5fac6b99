// Per-ISA variants of fused.h's kernels behind the kernel table (kernel_table.h).
#pragma once

#include <cstdint>

#include "engine/kernels/fused.h"

namespace qdm::kernels {

// group_norm_to_padded's quantizing pass: the reference (compiled for the baseline and cloned
// for wider vectors by the loader, the same operations in the same order) and AVX-512's (16
// channels per vector, SiLU's exp on 16 lanes): the same codes bit for bit.
void norm_to_padded_reference(const float* x, int64_t ld, int64_t p0, int64_t p1, const float* mul, const float* add,
                              bool silu, ActQuant q, const PaddedShape& s, uint8_t* dst);
void norm_to_padded_avx512(const float* x, int64_t ld, int64_t p0, int64_t p1, const float* mul, const float* add,
                           bool silu, ActQuant q, const PaddedShape& s, uint8_t* dst);

// softmax_rows: the reference (the maximum and the sum over 16 lanes, the tail past the last whole
// 16 summed first, then the lanes in order; cloned for wider vectors by the loader) and AVX-512's
// (those lanes in one vector, the tail's exponentials in a masked one, summed in the reference's
// order): the same bits.
void softmax_rows_reference(float* x, int64_t ld, int rows, int n, float scale);
void softmax_rows_avx512(float* x, int64_t ld, int rows, int n, float scale);

}  // namespace qdm::kernels
