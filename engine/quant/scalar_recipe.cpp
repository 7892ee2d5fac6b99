#include "engine/quant/scalar_recipe.h"

namespace qdm {

QuantizeResult quantize_scalar(const DiffusionModel& model, const RecipeOptions& o, const RecipeEnvironment&,
                               const QuantizeCallback& progress) {
  const RecipeInfo& r = recipe_info(o.recipe);
  QuantizeResult result;
  const CalibrationSet calib = begin_quantization(model, o, progress, result);
  QuantizedUNet& q = *result.model;
  weight_ranges(q, r.min_max_weights, progress, result.timings);
  if (r.feature_cache) q.cache_temporal_features(model.unet, result.timesteps);
  activation_ranges(q, calib, o.batch, r.per_step_tables, progress, result.timings);
  if (!r.reconstruction) return result;

  ReconOptions recon = o.recon;
  if (r.temporal && !r.feature_cache) reconstruct_temporal_stage(q, model, result.timesteps, recon, progress, result.timings);
  recon.with_time_proj = !r.temporal;                                   // TFMQ: the TIB stays frozen
  if (r.per_step_tables || q.spec.act_bits == 0) recon.act_iters = 0;   // TFMQ keeps its FSC tables
  reconstruct_on_calibration(q, model, calib, o.recon_step_stride, recon, progress, result.timings);
  return result;
}

}  // namespace qdm
