// Class conditioning at sampling time: a model's noise predictor takes per-image class labels,
// and classifier-free guidance mixes its conditional and unconditional (null-class)
// predictions, eps = eps(x, null) + g (eps(x, c) - eps(x, null)), in one model call on a batch
// of 2N. Guidance 1 is the conditional prediction alone (one call on N). Torch-free.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "engine/sampling/samplers.h"

namespace qdm {

// Noise predictor of a loaded model: n images of the model's image size, their labels (null for
// an unconditional model), t, step index -> eps.
using ModelFn = std::function<void(const float* x, int n, int t, int step, const int64_t* labels, float* eps)>;

// A sampler DenoiseFn for one batch: `labels` one per image, or empty for an unconditional model
// (then guidance must be 1). Guidance other than 1 needs the null class.
DenoiseFn guided_denoiser(ModelFn model, std::vector<int64_t> labels, std::optional<int> null_class, double guidance,
                          int64_t image_size);

}  // namespace qdm
