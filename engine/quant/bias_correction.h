// Eps bias correction, the recipes' last stage (RecipeOptions::bias_samples > 0): the quantized
// model's mean noise-prediction error per step of its schedule, measured on the fp32 model's own
// trajectories, kept with the artifact and subtracted at sampling (engine/sampling/eps_bias.h).
// On the shipped model it removes the unguided samples' drift between classes that quantization
// causes (TFMQ W4A8, DPM-Solver++(2M) N = 10: FID 98.8 -> 92.7; bench/results/quant/experiments/dpm10).
#pragma once

#include <functional>
#include <optional>

#include "engine/quant/recipe.h"
#include "engine/sampling/eps_bias.h"
#include "engine/sampling/tensor_sampling.h"
#include "format/noise_schedule.h"

namespace qdm {

// `samples` trajectories of `fp` (null-class images, or unconditional ones when null_class is
// empty), seeds seed, seed + 1, ..., over `sampler`'s schedule; at every step both models predict
// on the same x_t and the map is the mean of q - fp over the images. `progress(done, total)` in
// images, false to cancel (QuantizeCancelled).
EpsBias measure_eps_bias(const NoiseSchedule& schedule, const ModelDenoiser& fp, const ModelDenoiser& q,
                         const SamplerOptions& sampler, int64_t channels, int64_t size, std::optional<int> null_class,
                         int samples, uint64_t seed, int batch, const std::function<bool(int, int)>& progress = nullptr);

// The seed of the eps bias's first trajectory: calib_seed + 1,000,000 (apart from the calibration
// trajectories and the evaluation's seeds 0..).
inline uint64_t eps_bias_seed(uint64_t calib_seed) { return calib_seed + 1000000; }

// The stage: result.eps_bias of result.model (on the integer execution plan, which serves it, or
// the simulation where the plan does not support the model) over result's schedule, on
// options.bias_samples trajectories from seed options.calib_seed + 1,000,000 (apart from the
// calibration trajectories and the evaluation's seeds 0..).
void correct_eps_bias(const DiffusionModel& model, const RecipeOptions& options, QuantizeResult& result,
                      const QuantizeCallback& progress);

// An artifact's eps bias against `model` (its source) on its own kernels, over its schedule, on
// `samples` trajectories from eps_bias_seed of its calibration seed.
struct LoadedArtifact;
EpsBias measure_artifact_eps_bias(const DiffusionModel& model, LoadedArtifact& artifact, int samples, int batch,
                                  const std::function<bool(int, int)>& progress = nullptr);

// The stage on an existing artifact (one quantized before the correction existed, or to re-measure
// it with more trajectories): its eps bias against `model`, its source (checked by weights
// sha256), on its own kernels, written with the artifact's other tensors to `out_path` (which may
// be `artifact_path`). Throws std::invalid_argument for another model's artifact.
void correct_artifact(const DiffusionModel& model, const std::string& artifact_path, const std::string& out_path,
                      int samples, int batch, const std::function<bool(int, int)>& progress = nullptr);

}  // namespace qdm
