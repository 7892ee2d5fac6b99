// Calibration data from the model's own sampling trajectory: the UNet inputs x_t of every
// step, all steps collected in one sampling pass per batch.
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <vector>

#include "engine/model/unet_2d.h"
#include "engine/quant/quant_model.h"
#include "engine/sampling/tensor_sampling.h"

namespace qdm {

struct CalibrationSet {
  std::vector<int> timesteps;      // step i of the schedule visits timesteps[i]
  std::vector<at::Tensor> inputs;  // per step: (n, C, H, W) x_t
  std::vector<at::Tensor> eps;     // per step: the fp32 model's noise prediction at those x_t
  // Class-conditional models: trajectory i's label (n), spread over every class and the null
  // class; text models: rows of the UNet's prompt table, the empty prompt's among them;
  // undefined otherwise.
  at::Tensor labels;
  // Rows [begin, begin + count) of every step's inputs with their labels.
  at::Tensor labels_of(int64_t begin, int64_t count) const {
    return labels.defined() ? labels.narrow(0, begin, count) : at::Tensor();
  }
  int64_t samples() const { return inputs.empty() ? 0 : inputs[0].size(0); }
};

using CalibProgress = std::function<void(int done, int total)>;

CalibrationSet collect_calibration(UNet2DModel unet, const NoiseSchedule& schedule, const SamplerOptions& sampler,
                                   int samples, uint64_t seed, int batch = 64, const CalibProgress& progress = nullptr);

// Trajectory labels of a model that takes labels: every user label (class, or prompt row) and
// the null one in turn.
at::Tensor calibration_labels(const UNet2DModelImpl& unet, int samples);

// Runs the quantized UNet in observe mode over every step's inputs, recording activation
// ranges per step.
void observe_activations(QuantizedUNet& model, const CalibrationSet& calib, int batch = 64,
                         const CalibProgress& progress = nullptr);

}  // namespace qdm
