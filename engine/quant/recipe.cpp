#include "engine/quant/recipe.h"

#include <chrono>

#include "engine/model/unet_2d.h"
#include "engine/quant/bias_correction.h"
#include "engine/quant/finetune.h"
#include "engine/quant/recipe_table.h"
#include "engine/quant/uniform_quant.h"

namespace qdm {
namespace {

// Block reconstruction's progress as the job's stage "reconstruction: <block>".
ReconProgress reconstruction_progress(const QuantizeCallback& progress) {
  return [&progress](const std::string& block, int index, int total, double loss) {
    return !progress || progress({"reconstruction: " + block, index, total, loss});
  };
}

}  // namespace

// A private copy of the fp32 UNet to install quantizers on, so the source model stays usable.
UNet2DModel clone_unet(const DiffusionModel& model) {
  UNet2DModel copy(model.config);
  at::NoGradGuard no_grad;
  auto src = model.unet->named_parameters();
  for (auto& p : copy->named_parameters()) p.value().copy_(src[p.key()]);
  auto src_buf = model.unet->named_buffers();
  for (auto& b : copy->named_buffers()) b.value().copy_(src_buf[b.key()]);
  copy->set_prompt_states(model.unet->prompt_states(), model.unet->null_label());
  copy->eval();
  return copy;
}

void report_stage(const QuantizeCallback& progress, const std::string& stage, int done, int total, double loss) {
  if (progress && !progress({stage, done, total, loss})) throw QuantizeCancelled();
}

CalibrationSet begin_quantization(const DiffusionModel& model, const RecipeOptions& o, const QuantizeCallback& progress,
                                  QuantizeResult& result) {
  const NoiseSchedule schedule(model.scheduler);
  result.timesteps = sampler_timesteps(schedule, o.sampler);
  result.sampler = o.sampler;
  QuantSpec spec = o.spec;
  spec.steps = static_cast<int>(result.timesteps.size());
  const auto t0 = std::chrono::steady_clock::now();
  CalibrationSet calib =
      collect_calibration(model.unet, schedule, o.sampler, o.calib_samples, o.calib_seed, o.batch,
                          [&](int done, int total) { report_stage(progress, "calibration data", done, total); });
  result.timings["calibration_data"] = seconds_since(t0);
  result.model = std::make_unique<QuantizedUNet>(clone_unet(model), spec);
  for (auto& p : result.model->unet->parameters()) p.set_requires_grad(false);
  return calib;
}

void weight_ranges(QuantizedUNet& q, bool minmax, const QuantizeCallback& progress, nlohmann::json& timings) {
  const auto t0 = std::chrono::steady_clock::now();
  int i = 0;
  for (auto& layer : q.layers) {
    const at::Tensor w = layer->fp_weight().detach();
    layer->set_weight_quant(minmax ? minmax_weight_params(w, layer->weight_bits) : mse_weight_params(w, layer->weight_bits));
    report_stage(progress, "weight ranges", ++i, static_cast<int>(q.layers.size()));
  }
  timings["weight_ranges"] = seconds_since(t0);
}

void activation_ranges(QuantizedUNet& q, const CalibrationSet& calib, int batch, bool per_step, const QuantizeCallback& progress,
                       nlohmann::json& timings) {
  if (q.spec.act_bits > 0) {
    const auto t0 = std::chrono::steady_clock::now();
    // The calibrated quantizers: quantized layer inputs and attention's q, k, v.
    std::vector<ActQuantizer*> acts;
    for (auto& layer : q.layers)
      if (layer->quant_input) acts.push_back(&layer->act);
    for (auto& a : q.attention) acts.insert(acts.end(), {&a->q, &a->k, &a->v});
    for (ActQuantizer* a : acts) a->mse_init = per_step;  // FSC: each step's range starts from an MSE search
    observe_activations(q, calib, batch, [&](int done, int total) { report_stage(progress, "activation ranges", done, total); });
    for (ActQuantizer* a : acts) per_step ? a->finalize_per_step() : a->finalize_minmax_shared();
    timings["activation_ranges"] = seconds_since(t0);
  }
  q.set_act_mode(ActQuantizer::Mode::kQuantize);
}

void reconstruct_temporal_stage(QuantizedUNet& q, const DiffusionModel& model, const std::vector<int>& timesteps,
                                const ReconOptions& recon, const QuantizeCallback& progress, nlohmann::json& timings) {
  const auto t0 = std::chrono::steady_clock::now();
  reconstruct_temporal_block(q, model.unet, timesteps, recon, reconstruction_progress(progress));
  timings["tiar"] = seconds_since(t0);
}

void reconstruct_on_calibration(QuantizedUNet& q, const DiffusionModel& model, const CalibrationSet& calib, int step_stride,
                                const ReconOptions& recon, const QuantizeCallback& progress, nlohmann::json& timings) {
  std::vector<ReconGroup> groups;
  for (size_t s = 0; s < calib.inputs.size(); s += static_cast<size_t>(step_stride))
    groups.push_back({static_cast<int>(s), calib.timesteps[s], calib.inputs[s], calib.labels});
  const auto t0 = std::chrono::steady_clock::now();
  reconstruct_blocks(q, model.unet, groups, recon, reconstruction_progress(progress));
  timings["block_reconstruction"] = seconds_since(t0);
  q.set_act_mode(ActQuantizer::Mode::kQuantize);
}

QuantizeResult quantize_model(const DiffusionModel& model, const RecipeOptions& o, const QuantizeCallback& progress,
                              const RecipeEnvironment& env) {
  o.validate();
  QuantizeResult result = recipe_row(o.recipe).quantize(model, o, env, progress);
  if (o.finetune_options().iters > 0) finetune_stage(model, o, result, progress);
  if (o.bias_samples > 0) correct_eps_bias(model, o, result, progress);
  return result;
}

}  // namespace qdm
