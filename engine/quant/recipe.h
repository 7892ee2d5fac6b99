// A quantization recipe: a named, documented set of options that turns a model and its own
// calibration data into a QuantizedUNet.
//
//   rtn         min-max round-to-nearest for weights (per channel) and activations (per
//               tensor, one range over all steps): the naive baseline.
//   qdiffusion  Q-Diffusion: timestep-aware calibration data, weight ranges by L2.4 search,
//               BRECQ block reconstruction with AdaRound (each resnet's time_emb_proj with
//               its block), then LSQ activation step sizes per block; one activation range
//               for all steps.
//   tfmq        TFMQ-DM: the Temporal Information Block (time embedding + every
//               time_emb_proj) reconstructed alone first (TIAR), then the other blocks with
//               the TIB frozen; per-step activation tables (FSC: per-step ranges refined by
//               an EMA, momentum 0.95, of per-batch min/max).
//   tfmq+cache  tfmq, but the artifact carries the fp32 temporal features of every step
//               of its schedule instead of a quantized TIB (exact; TIAR is not needed).
//   tmpq, vq    engine/quant/tmpq, engine/quant/vq.
// Every recipe ends with fine-tuning against the fp32 model when options.finetune_options().iters > 0
// (engine/quant/finetune.h), then the eps bias correction when options.bias_samples > 0
// (engine/quant/bias_correction.h).
// See ../shared/methods.md for the published algorithms; iteration counts are options.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/model/model_folder.h"
#include "engine/quant/calibration.h"
#include "engine/quant/quant_model.h"
#include "engine/quant/reconstruction.h"
#include "engine/sampling/eps_bias.h"
#include "format/quantize_options.h"
#include "format/recipes.h"

namespace qdm {


struct QuantizeProgress {
  std::string stage;  // "calibration data", "activation ranges", "weights", ...
  int done = 0, total = 0;
  double loss = 0;
};
using QuantizeCallback = std::function<bool(const QuantizeProgress&)>;  // false: cancel

class QuantizeCancelled : public std::runtime_error {
 public:
  QuantizeCancelled() : std::runtime_error("quantization cancelled") {}
};

struct QuantizeResult {
  std::unique_ptr<QuantizedUNet> model;
  std::vector<int> timesteps;
  SamplerOptions sampler;  // the schedule the artifact samples with (a searched one for tmpq)
  nlohmann::json timings;  // seconds per stage
  nlohmann::json report = nlohmann::json::object();  // recipe-specific report fields (tmpq: the search)
  std::vector<uint8_t> figure_png;  // a figure for the report (tmpq: fitness against BitOPs), or empty
  std::shared_ptr<const EpsBias> eps_bias;  // options.bias_samples > 0: the model's eps bias
};

// Runtime inputs of recipes that evaluate images (not options: where things are on this machine).
struct RecipeEnvironment {
  std::string classifier_dir;  // FID-FMNIST (tmpq's final ranking)
  std::string cache_dir;       // reference images and kernel latency tables kept between runs
};

// A private copy of the model's fp32 UNet to install quantizers on.
UNet2DModel clone_unet(const DiffusionModel& model);

// Seconds from t to now: the recipes' stage timings.
inline double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// The stages the recipes compose. Each reports its progress (throwing QuantizeCancelled when the
// callback says stop) and records its seconds in `timings` under the stage's key.
void report_stage(const QuantizeCallback& progress, const std::string& stage, int done, int total, double loss = 0);
// The schedule (result.timesteps, result.sampler), the calibration trajectories, and
// result.model: a frozen clone of the model with quantizers for one table entry per step.
CalibrationSet begin_quantization(const DiffusionModel& model, const RecipeOptions& options, const QuantizeCallback& progress,
                                  QuantizeResult& result);
// Every layer's scalar weight quantizer at its bits: min-max (rtn) or MSE-searched ranges.
void weight_ranges(QuantizedUNet& q, bool minmax, const QuantizeCallback& progress, nlohmann::json& timings);
// Activation tables (when the spec quantizes activations) from the calibration data: per step,
// each from an MSE search refined by EMA (FSC), or one min-max range for all steps.
void activation_ranges(QuantizedUNet& q, const CalibrationSet& calib, int batch, bool per_step, const QuantizeCallback& progress,
                       nlohmann::json& timings);
// TFMQ-DM's TIAR: the temporal information block reconstructed alone over the schedule's steps.
void reconstruct_temporal_stage(QuantizedUNet& q, const DiffusionModel& model, const std::vector<int>& timesteps,
                                const ReconOptions& recon, const QuantizeCallback& progress, nlohmann::json& timings);
// Block reconstruction (AdaRound, then LSQ when recon.act_iters > 0) on every step_stride-th step
// of the calibration data.
void reconstruct_on_calibration(QuantizedUNet& q, const DiffusionModel& model, const CalibrationSet& calib, int step_stride,
                                const ReconOptions& recon, const QuantizeCallback& progress, nlohmann::json& timings);

// The recipe's row (engine/quant/recipe_table.h) run on `model`, then fine-tuning and the eps
// bias correction when the options ask. Throws std::invalid_argument for an unknown recipe or
// bad options, QuantizeCancelled.
QuantizeResult quantize_model(const DiffusionModel& model, const RecipeOptions& options,
                              const QuantizeCallback& progress = nullptr, const RecipeEnvironment& env = {});

}  // namespace qdm
