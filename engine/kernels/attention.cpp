#include "engine/kernels/attention.h"

#include <algorithm>
#include <vector>

#include "engine/kernels/fused.h"
#include "engine/kernels/scratch.h"

namespace qdm {
namespace {

// The B operand of an attention product: x (rows, cols) quantized with one table, packed.
void pack_operand(const float* x, int rows, int cols, ActQuant q, QGemmIsa isa, PackedWeights& out, std::vector<uint8_t>& codes,
                  std::vector<float>& scale, std::vector<float>& zero) {
  const int count = rows * cols;
  codes.resize(static_cast<size_t>(padded_k(count)));
  int32_t unused = 0;
  quantize_rows_ld(x, count, 0, 1, count, q, codes.data(), &unused);
  scale.assign(static_cast<size_t>(rows), q.scale);
  zero.assign(static_cast<size_t>(rows), static_cast<float>(q.zero));
  pack_weights_into(out, codes.data(), rows, cols, 8, scale.data(), zero.data(), layout_for(isa));
}

// Partial sums of a product of centred codes stay exact in fp32 below this.
constexpr double kExactBelow = 16777216.0;  // 2^24

bool exact(const CodeBounds& a, const CodeBounds& b) {
  return static_cast<double>(a.max_row_sum) * static_cast<double>(b.max_abs) < kExactBelow;
}

// y = y * s + 0 over rows of ld: dequantize_output's rounding of an exact sum (its bias term
// included, which turns -0 into +0).
void scale_rows(float* y, int64_t ld, int rows, int cols, float s) {
  for (int r = 0; r < rows; ++r) {
    float* row = y + r * ld;
    for (int j = 0; j < cols; ++j) row[j] = row[j] * s + 0.0f;
  }
}

}  // namespace

void attention_head_int(QGemmIsa isa, const float* q, const float* k, const float* v, int len, int len_kv, int d,
                        const AttentionTables& t, float scale, float* out, int64_t ldo) {
  thread_local std::vector<float> vt, logits, o, s, z;
  thread_local std::vector<uint8_t> a, codes;
  thread_local std::vector<int32_t> sums, acc;
  thread_local PackedWeights b;
  float* vp = scratch(vt, static_cast<size_t>(d) * len_kv);  // V^T: rows of the head's channels
  for (int i = 0; i < len_kv; ++i)
    for (int j = 0; j < d; ++j) vp[j * len_kv + i] = v[static_cast<int64_t>(i) * d + j];
  // Q K^T
  const int widest = std::max(d, len_kv);
  uint8_t* ap8 = scratch(a, static_cast<size_t>(len) * padded_k(widest));
  int32_t* sp = scratch(sums, static_cast<size_t>(len));
  int32_t* cp = scratch(acc, static_cast<size_t>(len) * widest);
  quantize_rows_ld(q, d, 0, len, d, t.q, ap8, sp);
  pack_operand(k, len_kv, d, t.k, isa, b, codes, s, z);
  qgemm_s32(isa, ap8, len, b, cp);
  float* lp = scratch(logits, static_cast<size_t>(len) * len_kv);
  dequantize_output(cp, len, b, t.q, sp, nullptr, lp);
  softmax_rows(isa, lp, len_kv, len, len_kv, scale);
  // P V
  quantize_rows_ld(lp, len_kv, 0, len, len_kv, t.p, ap8, sp);
  pack_operand(vp, d, len_kv, t.v, isa, b, codes, s, z);
  qgemm_s32(isa, ap8, len, b, cp);
  float* op = scratch(o, static_cast<size_t>(len) * d);
  dequantize_output(cp, len, b, t.p, sp, nullptr, op);
  for (int i = 0; i < len; ++i) std::copy(op + static_cast<int64_t>(i) * d, op + static_cast<int64_t>(i + 1) * d, out + i * ldo);
}

bool attention_exact_pays(int len, int len_kv, int d) {
  return len_kv >= 16 && static_cast<int64_t>(len) * len_kv * d <= (int64_t{1} << 19);
}

bool attention_head_exact(QGemmIsa isa, const float* q, const float* k, const float* v, int len, int len_kv, int d,
                          const AttentionTables& t, float scale, float* out, int64_t ldo) {
  thread_local std::vector<float> qc, kc, kt, vc, pc, logits;
  // Q K^T
  float* qp = scratch(qc, static_cast<size_t>(len) * d);
  float* kp = scratch(kc, static_cast<size_t>(len_kv) * d);
  const CodeBounds bq = centred_codes(q, d, len, d, t.q, qp), bk = centred_codes(k, d, len_kv, d, t.k, kp);
  if (!exact(bq, bk)) return false;
  float* ktp = scratch(kt, static_cast<size_t>(d) * len_kv);  // K^T: gemm_f32's B is (K, N)
  for (int i = 0; i < len_kv; ++i)
    for (int j = 0; j < d; ++j) ktp[static_cast<int64_t>(j) * len_kv + i] = kp[static_cast<int64_t>(i) * d + j];
  float* lp = scratch(logits, static_cast<size_t>(len) * len_kv);
  gemm_f32(qp, d, len, d, ktp, len_kv, nullptr, lp, len_kv);
  scale_rows(lp, len_kv, len, len_kv, t.q.scale * t.k.scale);
  softmax_rows(isa, lp, len_kv, len, len_kv, scale);
  // P V
  float* pp = scratch(pc, static_cast<size_t>(len) * len_kv);
  float* vp = scratch(vc, static_cast<size_t>(len_kv) * d);
  const CodeBounds bp = centred_codes(lp, len_kv, len, len_kv, t.p, pp), bv = centred_codes(v, d, len_kv, d, t.v, vp);
  if (!exact(bp, bv)) return false;
  gemm_f32(pp, len_kv, len, len_kv, vp, d, nullptr, out, ldo);
  scale_rows(out, ldo, len, d, t.p.scale * t.v.scale);
  return true;
}

}  // namespace qdm
