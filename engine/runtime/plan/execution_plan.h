// A model lowered once, at load, from its description (format/graph) into a static sequence of
// fused kernels over preallocated buffers (plan_ops.h), torch-free: channels-last activations;
// group norm (+ SiLU) fused into the next convolution's input (quantized into its padded u8
// image on integer layers, fp32 otherwise); convolution and linear epilogues with bias, the
// temporal feature and the residual (and its scale); attention integer or fp32; concatenations
// as slices written in place by their producers; the upsample folded into the next integer
// convolution (four 2x2 phase convolutions, upsample_fold.h); sequences and images as the same
// bytes. One parallel region per kernel on a persistent thread pool, large batches in chunks
// of 16 images. The weights come from a WeightSource (an fp32 model, an artifact, a quantized
// model in memory): the same lowering runs FP32 models and quantized ones. The LibTorch
// simulation (`sim`) stays the oracle.
//
// Supported: every UNet2DModel and UNet2DConditionModel config but "identity" class embeddings
// (given as an input); the AutoencoderKL decoder and encoder, the CLIP text encoder (token ids
// in, its causal attention in fp32); quantized models with quantized activations of at most 8
// bits and quantized attention.
// unsupported() says why not.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/kernels/qgemm.h"
#include "engine/runtime/plan/plan_ops.h"
#include "engine/runtime/plan/weight_source.h"
#include "engine/runtime/resident_bytes.h"
#include "engine/runtime/thread_pool.h"
#include "format/graph/graph.h"

namespace qdm {

class ExecutionPlan {
 public:
  // Empty when the model can run on a plan; otherwise why not.
  static std::string unsupported(const graph::Graph& graph, const plan::WeightSource& weights);
  // Throws std::invalid_argument with unsupported()'s reason.
  ExecutionPlan(const graph::Graph& graph, const plan::WeightSource& weights, QGemmIsa isa, int threads = 0);
  ~ExecutionPlan();

  // eps (n, C, H, W) for x (n, C, H, W) at training timestep t and schedule step `step`;
  // labels: n class labels of a conditional model (else null). Large batches run in chunks of
  // 16 images (less memory); buffers grow to the largest chunk seen and are reused. Every
  // image's result is independent of the batch, bit for bit.
  void run(const float* x, int n, int t, int step, const int64_t* labels, float* eps);
  // Text encoders (a token-id input): n x token_length() ids -> n x (length, width) states.
  void run_tokens(const int64_t* ids, int n, float* out);
  int token_length() const { return token_length_; }
  // Text models (UNet2DConditionModel): the request's text states, `entries` of (L, D) floats
  // each, kept by the caller until the last run; each image's label picks its entry (the
  // sampling pipeline's prompt index, the negative prompt being the null class).
  void set_text_states(const float* states, int entries) {
    text_ = states;
    text_entries_ = entries;
    ++text_generation_;  // cross-attention's keys and values are projected again on the next run
  }
  bool takes_text() const { return takes_text_; }

  // Bytes of resident weights (packed codes, scales, fp32 layers, biases, norms, caches), and
  // the same broken down by what holds them (resident_bytes.h's categories).
  size_t weight_bytes() const { return weight_bytes_; }
  const ResidentBytes& resident() const { return resident_; }
  QGemmIsa isa() const { return isa_; }
  int in_channels() const { return in_channels_; }
  int out_channels() const { return out_channels_; }
  int height() const { return input_.h; }
  int width() const { return input_.w; }
  // Seconds per op kind over the runs since the last reset, for profiles.
  std::vector<std::pair<std::string, double>> profile() const;
  // The same per op ("name [kind]"), in plan order.
  std::vector<std::pair<std::string, double>> profile_ops() const;
  void set_profiling(bool on);

 private:
  friend class PlanBuilder;
  void reserve(int n);
  void count(const char* what, size_t bytes);
  void uncount(const char* what, size_t bytes);
  void run_chunks(const float* x, const int64_t* tokens, int n, int t, int step, const int64_t* labels, float* out);
  void run_chunk(const float* x, const int64_t* tokens, int n, int t, int step, const int64_t* labels, float* out);

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
  ResidentBytes resident_;
  bool profiling_ = false;
  bool takes_text_ = false;
  int token_length_ = 0;     // text encoders: the ids per sequence
  bool output_rows_ = false;  // a sequence output, copied out as (length, width) rows
  const float* text_ = nullptr;
  int text_entries_ = 0;
  uint64_t text_generation_ = 0;
  std::vector<double> op_seconds_;
};

}  // namespace qdm
