// A per-tensor activation quantizer with one (scale, zero point) per sampling step (TFMQ-DM's
// FSC tables) or one shared entry. In observe mode it records per-step ranges; in quantize
// mode it fake-quantizes with the entry of the current step.
#pragma once

#include <ATen/ATen.h>

#include <memory>
#include <vector>

namespace qdm {

// The sampling step the UNet is being called for; shared by every quantizer of a model.
struct StepContext {
  int step = 0;
};

// The range [lo', hi'] = alpha [lo, hi] (alpha = 1, 0.99, ..., 0.21) whose quantization of x
// has the least squared error, from a 2048-bin histogram of x (bits-bit asymmetric grid).
std::pair<float, float> mse_range(const at::Tensor& x, int bits);

class ActQuantizer {
 public:
  enum class Mode { kOff, kObserve, kQuantize };

  ActQuantizer(int bits, int steps, bool unsigned_range = false);

  at::Tensor operator()(const at::Tensor& x, int step);

  Mode mode = Mode::kOff;
  int bits;
  bool fixed_unit_range;  // softmax outputs: [0, 1], nothing to calibrate

  // Observed per-step extremes (size = steps) and how many batches each saw.
  std::vector<float> min_seen, max_seen;
  // EMA of per-batch min/max per step (FSC's refinement), momentum 0.95. With mse_init (FSC,
  // the tfmq recipes) a step's EMA starts from the MSE-best range of its first 16 samples;
  // otherwise from its first batch's min/max.
  std::vector<float> ema_min, ema_max;
  bool mse_init = false;
  std::vector<int> batches_seen;

  // Tables: size 1 (shared) or one entry per step.
  std::vector<float> scale, zero_point;

  int steps() const { return static_cast<int>(min_seen.size()); }
  // Sets one shared entry from the range over every step.
  void finalize_minmax_shared();
  // Sets one entry per step from that step's EMA range (steps never observed take the shared range).
  void finalize_per_step();
  void set_table(std::vector<float> scale, std::vector<float> zero_point);

  // LSQ: learn the step size of a shared (one-entry) table by gradient, rounding through a
  // straight-through estimator. finish_lsq() writes the learned value back to the table.
  void begin_lsq();
  void finish_lsq();
  at::Tensor learned_scale;  // (1), requires grad while learning
};

}  // namespace qdm
