// The integer kernels of each instruction set, one table per ISA, filled once (as ONNX Runtime's
// MLAS fills its platform table): every caller dispatches through kernel_table(isa) with the ISA
// its plan or layer was built for; nothing switches on the ISA per call or reads a process-wide
// choice. The scalar table is the reference the others equal bit for bit (tests over every ISA
// this CPU has; ctest runs the kernel and plan tests once per path with QDM_ISA).
//
// Which ISA a process builds its plans for: QDM_ISA=scalar|avx2|avxvnni|avx512vnni (or the older
// QDM_KERNEL_ISA), else the best this CPU has; a path the CPU lacks is refused (best_isa(),
// qgemm.h).
#pragma once

#include <cstdint>

#include "engine/kernels/fused.h"
#include "engine/kernels/qconv.h"
#include "engine/kernels/qgemm.h"

namespace qdm {

struct KernelTable {
  QGemmIsa isa = QGemmIsa::kScalar;
  WeightLayout layout = WeightLayout::kRows;  // how qgemm_s32 wants its weights packed
  // acc (m, n) = a (m, k_padded) . w'^T, exact int32 (qgemm.h).
  void (*qgemm_s32)(const uint8_t* a, int m, const PackedWeights& w, int32_t* acc) = nullptr;
  // fp32 rows to u8 codes of padded_k(k) and their sums (qgemm.h's quantize_rows).
  void (*quantize_rows)(const float* x, int m, int k, ActQuant q, uint8_t* out, int32_t* row_sums) = nullptr;
  // One NCHW image to padded channels-last codes (qconv.h's qconv_quantize_image).
  void (*quantize_image)(const float* x, const QConvShape& s, ActQuant q, uint8_t* padded) = nullptr;
  // Pixels [p0, p1): x * mul + add per channel (group norm's affine), SiLU when asked, quantized
  // into padded codes (fused.h's group_norm_to_padded).
  void (*norm_to_padded)(const float* x, int64_t ld, int64_t p0, int64_t p1, const float* mul, const float* add,
                         bool silu, ActQuant q, const PaddedShape& s, uint8_t* dst) = nullptr;
  // Rows of x: softmax(x * scale) in place (fused.h's softmax_rows).
  void (*softmax_rows)(float* x, int64_t ld, int rows, int n, float scale) = nullptr;
  // The lane convolution (qconv.h); null where this ISA has none.
  void (*qconv_pixels)(const QConvPlan& plan, const uint8_t* padded, int r0, int rows, float* out) = nullptr;
  void (*qconv_pixels_rows)(const QConvPlan& plan, const uint8_t* padded, int r0, int rows, float* out, int64_t ld,
                            int n0, int n1, const int8_t* tile, const int32_t* dest_rows) = nullptr;
  // Whether the lane convolution beats patches through the GEMM on whole layers (qconv_preferred).
  bool prefer_lane_conv = false;
};

// The table of `isa` (throws std::invalid_argument when this CPU or build lacks it).
const KernelTable& kernel_table(QGemmIsa isa);

}  // namespace qdm
