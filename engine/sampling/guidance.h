// Class conditioning at sampling time: a model's noise predictor takes per-image class labels,
// and classifier-free guidance mixes its conditional and unconditional (null-class)
// predictions, eps = eps(x, null) + g (eps(x, c) - eps(x, null)), in one UNet call on a batch
// of 2N. Guidance 1 is the conditional prediction alone (one call on N).
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <optional>
#include <vector>

#include "engine/sampling/samplers.h"

namespace qdm {

// Noise predictor of a loaded model: x (N, C, H, W), t, step index, labels (N) int64 or
// undefined for an unconditional model -> eps (N, C, H, W).
using ModelDenoiser = std::function<at::Tensor(const at::Tensor& x, int t, int step, const at::Tensor& labels)>;

// A sampler Denoiser for one batch: `labels` (N) int64, or undefined for an unconditional
// model (then guidance must be 1). Guidance other than 1 needs the null class.
Denoiser guided_denoiser(ModelDenoiser model, at::Tensor labels, std::optional<int> null_class, double guidance);

// An unconditional model's ModelDenoiser from a plain Denoiser (labels must be undefined).
ModelDenoiser unconditional(Denoiser denoise);

}  // namespace qdm
