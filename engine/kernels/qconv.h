// Integer convolution with the output pixels in the vector lanes (AVX-512 VNNI, AVX-VNNI, AVX2).
//
// The GEMM of qgemm.h puts output channels in the lanes, so a convolution through it needs
// patches gathered per pixel and its (pixels, channels) result transposed to NCHW. Here the
// lanes hold 16 output pixels instead: for every group of 4 K values (4 input channels at
// one kernel offset), one dword gather from the channels-last, padded u8 image gives the
// 16 pixels' 4 bytes, and vpdpbusd multiplies them with the channel's 4 weight bytes
// broadcast. Each accumulator is then 16 consecutive pixels of one output channel: the
// epilogue (zero-point corrections, scales, bias) writes NCHW rows directly. The 256-bit paths
// hold 8 pixels per vector: AVX-VNNI with vpdpbusd, AVX2 with vpmaddubsw (4-bit weights, whose
// pair sums cannot saturate) or 16-bit vpmaddwd (int8 weights), all exact.
//
//   padded   (hp, wp, C) u8 codes of one image, border = activation zero point
//   weights  (N, K) with K in (ky, kx, c) order, WeightLayout::kRows, C % 4 == 0
//   out      (N, ho * wo) fp32 of one image
//
// The integer sums equal qgemm_s32's and the epilogue computes dequantize_output's formula,
// so results are bit-identical to the GEMM path (tests check it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "engine/kernels/qgemm.h"

namespace qdm {

struct QConvShape {
  int c = 0, h = 0, w = 0, kernel = 1, stride = 1, padding = 0;
  int ho() const { return (h + 2 * padding - kernel) / stride + 1; }
  int wo() const { return (w + 2 * padding - kernel) / stride + 1; }
  int hp() const { return h + 2 * padding; }
  int wp() const { return w + 2 * padding; }
  size_t padded_bytes() const { return static_cast<size_t>(hp()) * static_cast<size_t>(wp()) * static_cast<size_t>(c); }
};

// Whether this build and `isa` run the lane convolution for a layer with `c` input channels.
bool qconv_available(QGemmIsa isa, int c);
// Whether it beats channels-last patches through the GEMM on a whole layer: only on AVX-512
// VNNI (measured on the shipped model; the 256-bit paths tie with the AVX-VNNI GEMM and lose to
// the AVX2 one, and serve the upsample fold, where they save 2.25x of the multiply-adds).
bool qconv_preferred(QGemmIsa isa, int c);

// One image (C, H, W) fp32 to `padded` (s.padded_bytes()), x / scale rounded half to even
// plus the zero point, clamped to [0, 255], as the simulation does, on `isa`'s kernel (every
// ISA gives the same bytes).
void qconv_quantize_image(QGemmIsa isa, const float* x, const QConvShape& s, ActQuant q, uint8_t* padded);

// What every image of one convolution call shares, computed once per call: the weights as
// int8 rows (int4 unpacked for the call only; the resident weights stay packed), each group of
// 4 K values' gather offset, and the epilogue's per-channel terms for the call's activation table.
struct QConvPlan {
  QGemmIsa isa = QGemmIsa::kAvx512Vnni;   // the kernel that runs it (qconv_available)
  QConvShape shape;
  const PackedWeights* weights = nullptr;
  ActQuant act;
  const float* bias = nullptr;             // may be null
  std::vector<int8_t> unpacked;            // int4 weights as int8 rows (empty for int8, or when nibbles)
  bool nibbles = false;                    // int4 rows read packed, each group's word unpacked in registers
  bool small_tile = false;                 // tiles given to qconv_pixels_rows hold |w| <= 64 (AVX2's
                                           // vpmaddubsw cannot saturate): folded 4-bit weights
  std::vector<int32_t> group_offset;       // (ky * wp + kx) * C + 4 c4 per group
  std::vector<int32_t> col_term;           // output_columns()
  std::vector<float> col_scale;
  const int8_t* rows() const {             // w.n rows of k_padded (of row_bytes() when nibbles)
    return unpacked.empty() ? reinterpret_cast<const int8_t*>(weights->data.data()) : unpacked.data();
  }
};
QConvPlan qconv_plan(QGemmIsa isa, const QConvShape& s, const PackedWeights& w, ActQuant q, const float* bias);
// A plan that keeps int4 weights packed (nibbles) and whose activation table is set per call
// with qconv_set_table(): built once at load by the execution plan.
QConvPlan qconv_resident_plan(QGemmIsa isa, const QConvShape& s, const PackedWeights& w, const float* bias);
void qconv_set_table(QConvPlan& plan, ActQuant q);

// The lane convolution's definition, which every ISA's kernel equals bit for bit (the scalar
// reference beside them; tests compare against it): output channel j of output pixel r, from
// the plan's weights or, when `tile_row` is given, that int8 row of K values (a tile's row, as
// qconv_pixels_rows takes), with the plan's zero-point terms, scale and bias.
float qconv_reference(const QConvPlan& plan, const uint8_t* padded, int r, int j, const int8_t* tile_row = nullptr);

// Output pixels [r0, r0 + rows) of one image (its padded codes) for every output channel.
void qconv_pixels(const QConvPlan& plan, const uint8_t* padded, int r0, int rows, float* out);
// The same pixels written channels-last: row r0 + i at out + (r0 + i) * ld, output channels
// [n0, n1) (multiples of 4 but for the end) at their column. With `tile`, the weight rows of
// channels n0..n1 are read from there (row n at tile + (n - n0) * k_padded: int8, e.g. decoded
// vq weights) instead of the plan's weights, which then only supply the epilogue's terms.
// With `dest_rows`, output pixel r goes to row dest_rows[r] instead of row r, and is dropped
// where that is negative (the phases of an upsampled convolution, upsample_fold.h).
void qconv_pixels_rows(const QConvPlan& plan, const uint8_t* padded, int r0, int rows, float* out, int64_t ld, int n0 = 0,
                       int n1 = -1, const int8_t* tile = nullptr, const int32_t* dest_rows = nullptr);

}  // namespace qdm
