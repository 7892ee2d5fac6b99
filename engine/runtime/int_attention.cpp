#include "engine/runtime/int_attention.h"

#include <ATen/Parallel.h>

#include <chrono>
#include <cmath>

#include "engine/runtime/int_layers.h"

namespace qdm {
namespace {

// u8 codes of x (rows, cols) with padded rows for the GEMM's A operand, and row sums.
void quantize_matrix(QGemmIsa isa, const float* x, int rows, int cols, ActQuant q, std::vector<uint8_t>& codes,
                     std::vector<int32_t>& sums) {
  codes.resize(static_cast<size_t>(rows) * padded_k(cols));
  sums.resize(static_cast<size_t>(rows));
  quantize_rows(isa, x, rows, cols, q, codes.data(), sums.data());
}

// The B operand: rows of x (rows, cols) quantized with one table, packed as "weights".
PackedWeights pack_operand(const float* x, int rows, int cols, ActQuant q, QGemmIsa isa) {
  const int count = rows * cols;  // quantized as one long row: codes stay (rows, cols)
  thread_local std::vector<uint8_t> codes;
  codes.resize(static_cast<size_t>(padded_k(count)));
  int32_t unused_sum = 0;
  quantize_rows(isa, x, 1, count, q, codes.data(), &unused_sum);
  const std::vector<float> scale(static_cast<size_t>(rows), q.scale), zero(static_cast<size_t>(rows), static_cast<float>(q.zero));
  return pack_weights(codes.data(), rows, cols, 8, scale.data(), zero.data(), layout_for(isa));
}

}  // namespace

IntAttentionCore::IntAttentionCore(std::shared_ptr<const QuantAttentionCore> source, QGemmIsa isa)
    : tables_(std::move(source)), isa_(isa) {}

ActQuant IntAttentionCore::table(const ActQuantizer& a) const {
  const size_t i = a.scale.size() == 1 ? 0 : static_cast<size_t>(tables_->step->step);
  return {a.scale.at(i), static_cast<int32_t>(std::lround(a.zero_point.at(i))), (1 << a.bits) - 1};
}

at::Tensor IntAttentionCore::attend(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in, double scale) {
  const auto start = std::chrono::steady_clock::now();
  struct Timer {
    std::chrono::steady_clock::time_point start;
    ~Timer() {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      IntLayerTime::attention().store(IntLayerTime::attention().load() + s);
    }
  } timer{start};
  // (N, heads, L, d) each
  const at::Tensor q = q_in.contiguous(), k = k_in.contiguous();
  const at::Tensor vt = v_in.transpose(-1, -2).contiguous();  // (N, heads, d, L): rows of V^T
  const int64_t groups = q.size(0) * q.size(1), len = q.size(2), dim = q.size(3);
  const ActQuant tq = table(tables_->q), tk = table(tables_->k), tv = table(tables_->v), tp = table(tables_->probs);
  at::Tensor out = at::empty_like(q);
  at::Tensor logits = at::empty({groups, len, len}, at::kFloat);
  // Q K^T per (image, head): (L, d) x (L, d)^T -> (L, L)
  at::parallel_for(0, groups, 1, [&](int64_t begin, int64_t end) {
    std::vector<uint8_t> a;
    std::vector<int32_t> sums, acc(static_cast<size_t>(len * len));
    for (int64_t g = begin; g < end; ++g) {
      quantize_matrix(isa_, q.data_ptr<float>() + g * len * dim, static_cast<int>(len), static_cast<int>(dim), tq, a, sums);
      const PackedWeights kw = pack_operand(k.data_ptr<float>() + g * len * dim, static_cast<int>(len), static_cast<int>(dim), tk, isa_);
      qgemm_s32(isa_, a.data(), static_cast<int>(len), kw, acc.data());
      dequantize_output(acc.data(), static_cast<int>(len), kw, tq, sums.data(), nullptr, logits.data_ptr<float>() + g * len * len);
    }
  });
  // softmax(logits * scale) per row in fp32 like the simulation, one call for every head
  const at::Tensor probs = at::softmax(logits * scale, -1).contiguous();
  // P V: (L, L) x (d, L)^T -> (L, d)
  at::parallel_for(0, groups, 1, [&](int64_t begin, int64_t end) {
    std::vector<uint8_t> a;
    std::vector<int32_t> sums, acc(static_cast<size_t>(len * dim));
    for (int64_t g = begin; g < end; ++g) {
      quantize_matrix(isa_, probs.data_ptr<float>() + g * len * len, static_cast<int>(len), static_cast<int>(len), tp, a, sums);
      const PackedWeights vw = pack_operand(vt.data_ptr<float>() + g * dim * len, static_cast<int>(dim), static_cast<int>(len), tv, isa_);
      qgemm_s32(isa_, a.data(), static_cast<int>(len), vw, acc.data());
      dequantize_output(acc.data(), static_cast<int>(len), vw, tp, sums.data(), nullptr, out.data_ptr<float>() + g * len * dim);
    }
  });
  return out;
}

}  // namespace qdm
