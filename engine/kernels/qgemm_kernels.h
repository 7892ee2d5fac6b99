// Per-ISA kernels behind qgemm_s32; each lives in its own file compiled with its ISA flags.
#pragma once

#include "engine/kernels/qgemm.h"

namespace qdm::kernels {

void qgemm_s32_scalar(const uint8_t* a, int m, const PackedWeights& w, int32_t* acc);
void qgemm_s32_avx2(const uint8_t* a, int m, const PackedWeights& w, int32_t* acc);
void qgemm_s32_avxvnni(const uint8_t* a, int m, const PackedWeights& w, int32_t* acc);
void qgemm_s32_avx512vnni(const uint8_t* a, int m, const PackedWeights& w, int32_t* acc);

void quantize_rows_generic(const float* x, int m, int k, ActQuant q, uint8_t* out, int32_t* row_sums);
void quantize_rows_avx512(const float* x, int m, int k, ActQuant q, uint8_t* out, int32_t* row_sums);

}  // namespace qdm::kernels
