// The operations of an execution plan: fused kernels over the plan's buffers, each one
// parallel region on the plan's thread pool, no allocation and no LibTorch in a step.
//
// Activations are channels-last fp32 rows (a Value: a column slice of a buffer, so a
// concatenation is two slices of one buffer). Convolution inputs are u8 codes in padded
// channels-last images (a Codes buffer) written by the op before them (group norm + SiLU +
// quantize, or quantize, optionally upsampled), whose activation table is the convolution's.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "engine/kernels/fused.h"
#include "engine/kernels/qconv.h"
#include "engine/kernels/qgemm.h"
#include "engine/kernels/vq_decode.h"
#include "engine/runtime/thread_pool.h"

namespace qdm::plan {

// A column slice [offset, offset + c) of buffer `buffer`, whose rows are ld floats; h x w pixels
// per image (1 x 1 for per-image vectors such as time embeddings).
struct Value {
  int buffer = -1;
  int offset = 0, c = 0, ld = 0;
  int h = 1, w = 1;
  int64_t pixels() const { return static_cast<int64_t>(h) * w; }
};

// An activation table: one entry, or one per sampling step.
struct Table {
  std::vector<float> scale, zero;
  int bits = 8;
  ActQuant at(int step) const;
};

// What one run of the plan works on.
struct Context {
  int n = 0;     // images
  int step = 0;  // the sampling step (selects table entries)
  int t = 0;     // the training timestep
  const int64_t* labels = nullptr;  // n class labels (text models: rows of `text`), or null
  const int64_t* tokens = nullptr;  // text encoders: n x length token ids
  // Text models: per-request text states, `text_entries` entries of (length, dim) each; image i
  // reads entry labels[i].
  const float* text = nullptr;
  int text_entries = 0;
  uint64_t text_generation = 0;  // changes whenever the table does (set_text_states)
  ThreadPool* pool = nullptr;
  std::vector<float*> buffers;      // fp32, capacity images each
  std::vector<uint8_t*> codes;      // padded u8 images, capacity images each
  float* at(const Value& v, int image) const {
    return buffers[static_cast<size_t>(v.buffer)] + image * v.pixels() * v.ld + v.offset;
  }
};

class Op {
 public:
  virtual ~Op() = default;
  virtual void run(Context& ctx) = 0;
  virtual const char* kind() const = 0;
  std::string name;  // the model's module, for profiles
};

// Where a producer of convolution input puts its codes.
struct CodesTarget {
  int buffer = -1;
  PaddedShape shape;
  const Table* table = nullptr;
};

// After a layer: out = (out + residual) / factor, or out += feature[image] (a per-image row).
struct Epilogue {
  Value residual;  // buffer -1: none
  float factor = 1.0f;
  Value feature;   // buffer -1: none; h = w = 1
};

std::unique_ptr<Op> group_norm_op(Value in, int groups, double eps, std::vector<float> gamma, std::vector<float> beta,
                                  bool silu, Value out_f32, CodesTarget out_codes, QGemmIsa isa);
std::unique_ptr<Op> quantize_op(Value in, bool upsample, CodesTarget out);
std::unique_ptr<Op> int_conv_op(CodesTarget in, int kernel, int stride, PackedWeights weights, std::vector<float> bias,
                                QGemmIsa isa, bool lanes, Value out, Epilogue epilogue);
// A 3x3 stride-1 convolution of the 2x-upsampled image `in` (its low-resolution codes, padding
// 1) as four 2x2 phase convolutions on the lane kernel (upsample_fold.h): equal to the
// upsampled int_conv_op bit for bit with 2.25x fewer multiply-adds. Needs
// qconv_available(isa, C) and upsample_fold_fits(weights, C); no epilogue.
std::unique_ptr<Op> upsampled_conv_op(CodesTarget in, PackedWeights weights, std::vector<float> bias, QGemmIsa isa, Value out);
// Linear layers over rows (pixels): input fp32 rows quantized with `table`.
std::unique_ptr<Op> int_linear_op(Value in, const Table* table, PackedWeights weights, std::vector<float> bias,
                                  QGemmIsa isa, Value out, Epilogue epilogue);
// The same layers with vector-quantized weights: a tile of output channels decoded per task
// (engine/kernels/vq_decode.h), never the whole matrix; results equal the int ops' on the
// decoded weights bit for bit.
std::unique_ptr<Op> vq_conv_op(CodesTarget in, int kernel, int stride, std::shared_ptr<const VqWeights> weights,
                               std::vector<float> bias, QGemmIsa isa, bool lanes, Value out, Epilogue epilogue);
std::unique_ptr<Op> vq_linear_op(Value in, const Table* table, std::shared_ptr<const VqWeights> weights,
                                 std::vector<float> bias, QGemmIsa isa, Value out, Epilogue epilogue);
// The weights of a layer with an fp32 input, (k*k*C_in, C_out) in (ky, kx, c) order: fp32, or
// u8 codes with per-output-channel zero points and scales (kept layers at keep_bits).
struct F32Weights {
  std::vector<float> values;  // fp32 weights, or empty when codes
  std::vector<uint8_t> codes;
  std::vector<float> zero, scale;
  size_t bytes() const { return values.size() * 4 + codes.size() + (zero.size() + scale.size()) * 4; }
};
// Zero padding `pad`. fp32 weights run on oneDNN where the build has it, per image and per
// `parts` bands of output rows (the plan's threads: an image's result is the same at every
// batch size); codes and the small direct shapes (conv_in, conv_out) on gemm_f32.
std::unique_ptr<Op> f32_conv_op(Value in, int kernel, int stride, int pad, F32Weights weights,
                                std::vector<float> bias, Value out, Epilogue epilogue, int parts = 1);
std::unique_ptr<Op> upsample_op(Value in, Value out);  // nearest 2x, fp32
std::unique_ptr<Op> silu_op(Value in, Value out);
std::unique_ptr<Op> copy_op(Value in, Value out);
// softmax(q k^T * scale) v per (image, head) with q, k, v and the probabilities quantized.
std::unique_ptr<Op> attention_op(Value q, Value k, Value v, int heads, const Table* tq, const Table* tk,
                                 const Table* tv, const Table* tp, QGemmIsa isa, Value out);
// The same in fp32 (an unquantized model), the products through gemm_f32; k and v may be
// longer than q (cross-attention); causal: query i attends to keys 0..i only (CLIP's mask).
std::unique_ptr<Op> attention_f32_op(Value q, Value k, Value v, int heads, bool causal, QGemmIsa isa, Value out);
// A text encoder's input: out[image][p] = table[context token p of the image].
std::unique_ptr<Op> token_embedding_op(std::vector<float> table, int dim, Value out);
// out[p] = in[p] + table[p], for the sequence's positions.
std::unique_ptr<Op> position_embedding_op(std::vector<float> table, Value in, Value out);
// Layer norm over each row's channels (transformer blocks): (x - mean) / sqrt(var + eps) * g + b.
std::unique_ptr<Op> layer_norm_op(Value in, std::vector<float> gamma, std::vector<float> beta, double eps, Value out);
// Exact (erf) GELU, or CLIP's quick GELU x * sigmoid(1.702 x).
std::unique_ptr<Op> gelu_op(Value in, bool quick, Value out);
// GEGLU after its projection: rows of 2C -> a * gelu(g) for [a, g].
std::unique_ptr<Op> geglu_op(Value in, Value out);
// A text model's states for each image: entry labels[i] of the context's text table.
std::unique_ptr<Op> text_states_op(Value out);
// A linear layer on a text model's states (fp32 weights (D, N), as f32_conv_op's): every entry of
// the request's table projected once per text generation, each image's rows copied per run.
std::unique_ptr<Op> text_projection_op(F32Weights weights, std::vector<float> bias, Value out);
// out = (in * alpha + beta) / divisor (e.g. center_input_sample: x * 2 - 1).
std::unique_ptr<Op> affine_op(Value in, float alpha, float beta, float divisor, Value out);
// What an index op reads: the call's timestep, or each image's class label.
enum class Index { kTimestep, kClassLabel };
// The sinusoidal projection of the index (diffusers' get_timestep_embedding).
std::unique_ptr<Op> timestep_proj_op(int dim, bool flip_sin_to_cos, double freq_shift, Index index, Value out);
// [sin, cos](2 pi log(index) w) (time_embedding_type "fourier").
std::unique_ptr<Op> fourier_proj_op(std::vector<float> w, Index index, Value out);
// out[image] = table[index(image)]: a class embedding table, or a learned time embedding.
std::unique_ptr<Op> embedding_op(std::vector<float> table, int dim, Index index, Value out);
// out = a + b (b of a's shape, or one row per image broadcast over a's pixels).
std::unique_ptr<Op> add_op(Value a, Value b, Value out);
// out = h * (1 + f[:C]) + f[C:], f one row of 2C per image.
std::unique_ptr<Op> scale_shift_op(Value h, Value f, Value out);
// out = in / t.
std::unique_ptr<Op> divide_by_timestep_op(Value in, Value out);
// in with zero rows and columns added at the bottom and right (out's size).
std::unique_ptr<Op> pad_bottom_right_op(Value in, Value out);
// out[image] = cache[step][label(image) or 0] for a tfmq+cache artifact's resnet feature; the
// f16 variant holds IEEE half bits (a cache made at F16 precision: half the resident bytes).
std::unique_ptr<Op> feature_cache_op(std::vector<float> cache, int rows_per_step, Value out);
std::unique_ptr<Op> feature_cache_f16_op(std::vector<uint16_t> cache, int rows_per_step, Value out);

}  // namespace qdm::plan
