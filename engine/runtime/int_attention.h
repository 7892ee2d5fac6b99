// Integer attention core: q, k, v quantized to u8 with their activation tables, Q K^T as a
// u8 x s8 integer GEMM per (image, head), softmax in fp32, the probabilities quantized to
// u8 on [0, 1], and P V as a second integer GEMM. Matches QuantAttentionCore's simulation
// to float rounding.
#pragma once

#include <memory>

#include "engine/kernels/qgemm.h"
#include "engine/quant/quant_layers.h"

namespace qdm {

class IntAttentionCore : public AttentionCoreOverride {
 public:
  IntAttentionCore(std::shared_ptr<const QuantAttentionCore> source, QGemmIsa isa);
  at::Tensor attend(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) override;

 private:
  ActQuant table(const ActQuantizer& a) const;
  std::shared_ptr<const QuantAttentionCore> tables_;  // the simulated core: tables and step
  QGemmIsa isa_;
};

}  // namespace qdm
