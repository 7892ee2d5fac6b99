#include "engine/kernels/kernel_table.h"

#include <array>
#include <stdexcept>
#include <string>

#include "engine/kernels/fused_kernels.h"
#include "engine/kernels/qconv_kernels.h"
#include "engine/kernels/qgemm_kernels.h"

namespace qdm {
namespace {

std::array<KernelTable, 4> fill_tables() {
  std::array<KernelTable, 4> t;
  // Scalar: the references every other table equals.
  KernelTable& scalar = t[static_cast<size_t>(QGemmIsa::kScalar)];
  scalar.isa = QGemmIsa::kScalar;
  scalar.layout = WeightLayout::kRows;
  scalar.qgemm_s32 = kernels::qgemm_s32_scalar;
  scalar.quantize_rows = kernels::quantize_rows_generic;
  scalar.quantize_image = kernels::quantize_image_reference;
  scalar.norm_to_padded = kernels::norm_to_padded_reference;
  scalar.softmax_rows = kernels::softmax_rows_reference;

  KernelTable& avx2 = t[static_cast<size_t>(QGemmIsa::kAvx2)];
  avx2 = scalar;
  avx2.isa = QGemmIsa::kAvx2;
  avx2.qgemm_s32 = kernels::qgemm_s32_avx2;
  avx2.qconv_pixels = kernels::qconv_pixels_avx2;
  avx2.qconv_pixels_rows = kernels::qconv_pixels_rows_avx2;

  KernelTable& avxvnni = t[static_cast<size_t>(QGemmIsa::kAvxVnni)];
  avxvnni = scalar;
  avxvnni.isa = QGemmIsa::kAvxVnni;
  avxvnni.layout = WeightLayout::kPanels16;
  avxvnni.qgemm_s32 = kernels::qgemm_s32_avxvnni;
  avxvnni.qconv_pixels = kernels::qconv_pixels_avxvnni;
  avxvnni.qconv_pixels_rows = kernels::qconv_pixels_rows_avxvnni;

  KernelTable& avx512 = t[static_cast<size_t>(QGemmIsa::kAvx512Vnni)];
  avx512.isa = QGemmIsa::kAvx512Vnni;
  avx512.layout = WeightLayout::kPanels16;
  avx512.qgemm_s32 = kernels::qgemm_s32_avx512vnni;
  avx512.quantize_rows = kernels::quantize_rows_avx512;
  avx512.quantize_image = kernels::qconv_quantize_image_avx512;
  avx512.norm_to_padded = kernels::norm_to_padded_avx512;
  avx512.softmax_rows = kernels::softmax_rows_avx512;
  avx512.qconv_pixels = kernels::qconv_pixels_avx512vnni;
  avx512.qconv_pixels_rows = kernels::qconv_pixels_rows_avx512vnni;
  // Measured on the shipped model: the 256-bit lane convolutions tie with the AVX-VNNI GEMM and
  // lose to the AVX2 one on whole layers (they serve the upsample fold); AVX-512's wins.
  avx512.prefer_lane_conv = true;
  return t;
}

// Which tables this CPU can run, decided with the tables.
std::array<bool, 4> fill_available() {
  std::array<bool, 4> out{};
  for (QGemmIsa isa : supported_isas()) out[static_cast<size_t>(isa)] = true;
  return out;
}

}  // namespace

const KernelTable& kernel_table(QGemmIsa isa) {
  static const std::array<KernelTable, 4> tables = fill_tables();
  static const std::array<bool, 4> available = fill_available();
  const auto i = static_cast<size_t>(isa);
  if (i >= tables.size() || !available[i])
    throw std::invalid_argument(std::string("kernel table: ") + isa_name(isa) + " is not available on this CPU");
  return tables[i];
}

}  // namespace qdm
