// Fine-tuning against the fp32 model (FinetuneOptions, format/quantize_options.h): a recipe's
// stage after its weights and before the eps bias when options.finetune.iters > 0, or a pass
// over an existing artifact (qdm finetune).
//
// Every integer code stays as the recipe chose it; Adam moves what is continuous:
//   scalar layers   each output channel's weight scale (w = s (code - z)), as a factor on it
//   vq layers       each row's scale (a factor) and the codebooks, whose entries stay integers
//                   within each codebook's bound (straight-through rounding), so the M-term sums
//                   still fit int8 and the integer kernels serve the result unchanged
//   everything fp32 biases, norms, fp32 layers (0.1x the learning rate: absolute steps)
// Activation tables stay (their rounding passes gradients straight through). The loss is the mean
// squared error between the quantized and the fp32 noise predictions on the x_t of fp32 sampling
// trajectories over the artifact's schedule, one step and `batch` trajectories per iteration
// (labels as calibration spreads them: every class and the null class). The held-out error is
// measured `evals` times; the parameters are left as they were at its lowest, the start
// included, so fine-tuning never raises it.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/quant/calibration.h"
#include "engine/quant/recipe.h"

namespace qdm {

struct FinetuneReport {
  double holdout_before = 0, holdout_after = 0;  // mean squared eps error on the held-out trajectories
  int best_iter = 0;                             // the kept parameters' iteration (0: the start)
  int params = 0;                                // scalars trained
  nlohmann::json to_json() const;
};

// (iteration, iterations, held-out error of the last evaluation); false cancels (QuantizeCancelled).
using FinetuneProgress = std::function<bool(int, int, double)>;

// Fine-tunes `q` (a simulation: fake weights on their grids, AdaRound finished) towards the
// trajectories' fp32 predictions. Both sets are over q's schedule.
FinetuneReport finetune_quantized(QuantizedUNet& q, const CalibrationSet& train, const CalibrationSet& holdout,
                                  const FinetuneOptions& o, const FinetuneProgress& progress = nullptr);

// The recipe stage: trajectories of the fp32 model over result's schedule from seed
// options.calib_seed + 2,000,000 (apart from calibration, the eps bias and the evaluation's
// seeds), then finetune_quantized on result.model; report["finetune"], timings["finetune"].
void finetune_stage(const DiffusionModel& model, const RecipeOptions& options, QuantizeResult& result,
                    const QuantizeCallback& progress);

// The stage on an existing artifact quantized from `model` (checked by weights sha256), written
// to `out_path` (may be `artifact_path`) with the options under its recipe's "finetune". An eps
// bias in the artifact was measured on the weights before: it is measured again on as many
// trajectories. Throws std::invalid_argument for another model's artifact.
FinetuneReport finetune_artifact(const DiffusionModel& model, const std::string& artifact_path, const std::string& out_path,
                                 const FinetuneOptions& o, int batch, const QuantizeCallback& progress = nullptr);

}  // namespace qdm
