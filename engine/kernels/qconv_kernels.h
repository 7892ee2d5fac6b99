// Per-ISA lane convolutions behind qconv.h; each lives in its own file compiled with its ISA's
// flags and is called (qconv.cpp) only for a plan built for that ISA.
#pragma once

#include "engine/kernels/qconv.h"

namespace qdm::kernels {

// qconv_pixels / qconv_pixels_rows of qconv.h on one ISA.
void qconv_pixels_avx512vnni(const QConvPlan& plan, const uint8_t* padded, int r0, int rows,
                             float* out);
void qconv_pixels_rows_avx512vnni(const QConvPlan& plan, const uint8_t* padded, int r0, int rows,
                                  float* out, int64_t ld, int n0, int n1, const int8_t* tile,
                                  const int32_t* dest_rows);
void qconv_pixels_avxvnni(const QConvPlan& plan, const uint8_t* padded, int r0, int rows,
                          float* out);
void qconv_pixels_rows_avxvnni(const QConvPlan& plan, const uint8_t* padded, int r0, int rows,
                               float* out, int64_t ld, int n0, int n1, const int8_t* tile,
                               const int32_t* dest_rows);
void qconv_pixels_avx2(const QConvPlan& plan, const uint8_t* padded, int r0, int rows, float* out);
void qconv_pixels_rows_avx2(const QConvPlan& plan, const uint8_t* padded, int r0, int rows,
                            float* out, int64_t ld, int n0, int n1, const int8_t* tile,
                            const int32_t* dest_rows);

// qconv_quantize_image: the scalar reference and AVX-512's.
void quantize_image_reference(const float* x, const QConvShape& s, ActQuant q, uint8_t* padded);
void qconv_quantize_image_avx512(const float* x, const QConvShape& s, ActQuant q, uint8_t* padded);

}  // namespace qdm::kernels
