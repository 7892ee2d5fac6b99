// Per-ISA variants of fused.h's kernels behind the kernel table (kernel_table.h).
#pragma once

#include <cstdint>

#include "engine/kernels/fused.h"

namespace qdm::kernels {

// group_norm_to_padded's quantizing pass: the reference (compiled for the baseline and cloned
// for wider vectors by the loader, the same operations in the same order) and AVX-512's (SiLU's
// reciprocal by rcp14 and a Newton step: within an ulp of the division, so a code can differ
// at a rounding boundary).
void norm_to_padded_reference(const float* x, int64_t ld, int64_t p0, int64_t p1, const float* mul, const float* add,
                              bool silu, ActQuant q, const PaddedShape& s, uint8_t* dst);
void norm_to_padded_avx512(const float* x, int64_t ld, int64_t p0, int64_t p1, const float* mul, const float* add,
                           bool silu, ActQuant q, const PaddedShape& s, uint8_t* dst);

}  // namespace qdm::kernels
