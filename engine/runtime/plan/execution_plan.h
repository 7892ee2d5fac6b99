// A quantized artifact lowered once, at load, into a static sequence of fused kernels over
// preallocated buffers (plan_ops.h): channels-last activations, group norm + SiLU + quantize in
// one pass into the next convolution's padded u8 input, convolution epilogues with bias, the
// time embedding and the residual, attention fully integer, concatenations as slices written
// in place by their producers, the upsample folded into the next convolution (four 2x2 phase
// convolutions on the low-resolution codes, upsample_fold.h), one parallel region per kernel on
// a persistent thread pool, large batches in chunks of 16 images. No LibTorch in a step: the
// simulation (`sim`) stays the oracle.
//
// Supported: what qdm's UNet2DModel builds with positional time embeddings, default time
// shift, table class embeddings (or none), padded downsampling, quantized activations; other
// artifacts run on the per-layer integer kernels (supports() says why).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/kernels/qgemm.h"
#include "engine/runtime/plan/plan_ops.h"
#include "engine/runtime/thread_pool.h"

namespace qdm {

class QuantizedUNet;

class ExecutionPlan {
 public:
  // Empty when `model` can run on a plan; otherwise why not.
  static std::string unsupported(const QuantizedUNet& model);
  ExecutionPlan(const QuantizedUNet& model, QGemmIsa isa, int threads = 0);
  ~ExecutionPlan();

  // eps (n, C, H, W) for x (n, C, H, W) at training timestep t and schedule step `step`;
  // labels: n class labels of a conditional model (else null). Large batches run in chunks of
  // 16 images (less memory); buffers grow to the largest chunk seen and are reused. Every
  // image's result is independent of the batch, bit for bit.
  void run(const float* x, int n, int t, int step, const int64_t* labels, float* eps);

  // Bytes of resident weights (packed codes, scales, kept fp32 layers, biases, norms, caches).
  size_t weight_bytes() const { return weight_bytes_; }
  QGemmIsa isa() const { return isa_; }
  // Seconds per op kind over the runs since the last reset, for profiles.
  std::vector<std::pair<std::string, double>> profile() const;
  // The same per op ("name [kind]"), in plan order.
  std::vector<std::pair<std::string, double>> profile_ops() const;
  void set_profiling(bool on);

 private:
  friend class PlanBuilder;
  void reserve(int n);
  void run_chunk(const float* x, int n, int t, int step, const int64_t* labels, float* eps);

  QGemmIsa isa_;
  std::unique_ptr<ThreadPool> pool_;
  std::vector<std::unique_ptr<plan::Op>> ops_;
  std::vector<std::unique_ptr<plan::Table>> tables_;
  std::vector<int64_t> buffer_floats_;  // per image
  std::vector<size_t> codes_bytes_;     // per image
  std::vector<std::vector<float>> buffers_;
  std::vector<std::vector<uint8_t>> codes_;
  int capacity_ = 0;
  plan::Value input_, output_;
  int in_channels_ = 0, out_channels_ = 0;
  size_t weight_bytes_ = 0;
  bool profiling_ = false;
  std::vector<double> op_seconds_;
};

}  // namespace qdm
