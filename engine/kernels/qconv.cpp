// The lane convolution's plans and dispatch (qconv.h): what every ISA shares, compiled without
// ISA flags; the kernels are in qconv_<isa>.cpp.
#include "engine/kernels/qconv.h"

#include "engine/kernels/kernel_table.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "engine/kernels/qconv_kernels.h"

namespace qdm {
namespace {

// int4 weight rows (kRows: per 64-wide K block, 32 bytes with w'[j] in the low and w'[j + 32]
// in the high nibble) as int8 rows of k_padded.
std::vector<int8_t> unpack_int4_rows(const PackedWeights& w) {
  std::vector<int8_t> out(static_cast<size_t>(w.n) * static_cast<size_t>(w.k_padded));
  const size_t blocks = static_cast<size_t>(w.n) * static_cast<size_t>(w.k_padded / kKBlock);
  for (size_t b = 0; b < blocks; ++b) {
    const uint8_t* src = w.data.data() + b * 32;
    int8_t* dst = out.data() + b * 64;
    for (int j = 0; j < 32; ++j) {
      dst[j] = static_cast<int8_t>(src[j] & 0x0F);
      dst[j + 32] = static_cast<int8_t>(src[j] >> 4);
    }
  }
  return out;
}


}  // namespace

void kernels::quantize_image_reference(const float* x, const QConvShape& s, ActQuant q, uint8_t* padded) {
  const int c = s.c, p = s.padding, wp = s.wp(), hw = s.h * s.w;
  std::memset(padded, static_cast<uint8_t>(q.zero), s.padded_bytes());
  const float hi = static_cast<float>(q.qmax), zero = static_cast<float>(q.zero);
  for (int ch = 0; ch < c; ++ch)
    for (int y = 0; y < s.h; ++y)
      for (int xx = 0; xx < s.w; ++xx) {
        // The same operations as the vector path: x / scale rounded half to even, plus the zero
        // point, clamped.
        const float r = std::min(
            std::max(
                std::nearbyint(x[static_cast<size_t>(ch) * hw + y * s.w + xx] / q.scale) + zero,
                0.0f),
            hi);
        padded[(static_cast<size_t>(y + p) * wp + static_cast<size_t>(xx + p)) * c + ch] =
            static_cast<uint8_t>(static_cast<int>(r));
      }
}

namespace {

std::vector<int32_t> group_offsets(const QConvShape& s) {
  const int groups = s.kernel * s.kernel * s.c / 4;  // the real K; padded weights are never read
  std::vector<int32_t> out(static_cast<size_t>(groups));
  for (int g = 0; g < groups; ++g) {
    const int kpos = 4 * g / s.c, c4 = (4 * g) % s.c;
    out[static_cast<size_t>(g)] = ((kpos / s.kernel) * s.wp() + kpos % s.kernel) * s.c + c4;
  }
  return out;
}

void check_isa(QGemmIsa isa, int c) {
  if (!qconv_available(isa, c))
    throw std::invalid_argument(std::string("qconv: no lane convolution on ") + isa_name(isa) +
                                " for " + std::to_string(c) + " input channels");
}

}  // namespace

bool qconv_available(QGemmIsa isa, int c) {
  return c > 0 && c % 4 == 0 && kernel_table(isa).qconv_pixels != nullptr;
}

bool qconv_preferred(QGemmIsa isa, int c) { return kernel_table(isa).prefer_lane_conv && qconv_available(isa, c); }

void qconv_quantize_image(QGemmIsa isa, const float* x, const QConvShape& s, ActQuant q, uint8_t* padded) {
  kernel_table(isa).quantize_image(x, s, q, padded);
}

QConvPlan qconv_resident_plan(QGemmIsa isa, const QConvShape& s, const PackedWeights& w,
                              const float* bias) {
  check_isa(isa, s.c);
  QConvPlan plan;
  plan.isa = isa;
  plan.shape = s;
  plan.weights = &w;
  plan.bias = bias;
  plan.nibbles = w.bits <= 4;
  plan.group_offset = group_offsets(s);
  plan.col_term.resize(static_cast<size_t>(w.n));
  plan.col_scale.resize(static_cast<size_t>(w.n));
  return plan;
}

void qconv_set_table(QConvPlan& plan, ActQuant q) {
  plan.act = q;
  output_columns(*plan.weights, q, plan.col_term.data(), plan.col_scale.data());
}

QConvPlan qconv_plan(QGemmIsa isa, const QConvShape& s, const PackedWeights& w, ActQuant q, const float* bias) {
  QConvPlan plan = qconv_resident_plan(isa, s, w, bias);
  if (plan.nibbles) {  // unpacked once for this call instead of per group in the kernel
    plan.unpacked = unpack_int4_rows(w);
    plan.nibbles = false;
  }
  qconv_set_table(plan, q);
  return plan;
}

float qconv_reference(const QConvPlan& plan, const uint8_t* padded, int r, int j, const int8_t* tile_row) {
  const QConvShape& s = plan.shape;
  const PackedWeights& w = *plan.weights;
  const int oy = r / s.wo(), ox = r % s.wo();
  int64_t acc = 0, sum = 0;
  for (int ky = 0; ky < s.kernel; ++ky)
    for (int kx = 0; kx < s.kernel; ++kx)
      for (int ch = 0; ch < s.c; ++ch) {
        const int a = padded[(static_cast<size_t>(oy * s.stride + ky) * s.wp() + ox * s.stride + kx) * s.c + ch];
        const int kk = (ky * s.kernel + kx) * s.c + ch;
        acc += a * (tile_row ? tile_row[kk] : w.weight(j, kk));
        sum += a;
      }
  const int64_t exact = acc - static_cast<int64_t>(w.zero[static_cast<size_t>(j)]) * sum + plan.col_term[static_cast<size_t>(j)];
  const float y = static_cast<float>(exact) * plan.col_scale[static_cast<size_t>(j)];
  return plan.bias ? y + plan.bias[j] : y;
}

void qconv_pixels(const QConvPlan& plan, const uint8_t* padded, int r0, int rows, float* out) {
  check_isa(plan.isa, plan.shape.c);
  kernel_table(plan.isa).qconv_pixels(plan, padded, r0, rows, out);
}

void qconv_pixels_rows(const QConvPlan& plan, const uint8_t* padded, int r0, int rows, float* out,
                       int64_t ld, int n0, int n1, const int8_t* tile, const int32_t* dest_rows) {
  const int n = plan.weights->n;
  if (n1 < 0 || n1 > n) n1 = n;
  check_isa(plan.isa, plan.shape.c);
  kernel_table(plan.isa).qconv_pixels_rows(plan, padded, r0, rows, out, ld, n0, n1, tile, dest_rows);
}

}  // namespace qdm
