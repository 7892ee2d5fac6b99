#include "engine/quant/recipe.h"

#include <chrono>

#include "engine/model/unet_2d.h"
#include "engine/quant/uniform_quant.h"

namespace qdm {
namespace {

double since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// A private copy of the fp32 UNet to install quantizers on, so the source model stays usable.
UNet2DModel clone_unet(const DiffusionModel& model) {
  UNet2DModel copy(model.config);
  at::NoGradGuard no_grad;
  auto src = model.unet->named_parameters();
  for (auto& p : copy->named_parameters()) p.value().copy_(src[p.key()]);
  auto src_buf = model.unet->named_buffers();
  for (auto& b : copy->named_buffers()) b.value().copy_(src_buf[b.key()]);
  copy->eval();
  return copy;
}

}  // namespace

nlohmann::json RecipeOptions::to_json() const {
  return {{"recipe", recipe},
          {"spec", spec.to_json()},
          {"sampler", sampler_name(sampler.kind)},
          {"steps", sampler.steps},
          {"eta", sampler.eta},
          {"spacing", spacing_name(sampler.spacing)},
          {"calib_samples", calib_samples},
          {"calib_seed", calib_seed}};
}

std::vector<std::string> recipe_names() { return {"rtn"}; }

QuantizeResult quantize_model(const DiffusionModel& model, const RecipeOptions& o, const QuantizeCallback& progress) {
  const auto names = recipe_names();
  if (std::find(names.begin(), names.end(), o.recipe) == names.end())
    throw std::invalid_argument("unknown recipe '" + o.recipe + "'; this build has: rtn");
  if (o.calib_samples < 1) throw std::invalid_argument("calib_samples must be >= 1");
  auto report = [&](const std::string& stage, int done, int total, double loss = 0) {
    if (progress && !progress({stage, done, total, loss})) throw QuantizeCancelled();
  };

  QuantizeResult result;
  const NoiseSchedule schedule(model.scheduler);
  result.timesteps = sampler_timesteps(schedule, o.sampler);
  QuantSpec spec = o.spec;
  spec.steps = static_cast<int>(result.timesteps.size());

  auto t0 = std::chrono::steady_clock::now();
  const CalibrationSet calib =
      collect_calibration(model.unet, schedule, o.sampler, o.calib_samples, o.calib_seed, o.batch,
                          [&](int done, int total) { report("calibration data", done, total); });
  result.timings["calibration_data"] = since(t0);

  result.model = std::make_unique<QuantizedUNet>(clone_unet(model), spec);
  QuantizedUNet& q = *result.model;

  t0 = std::chrono::steady_clock::now();
  int i = 0;
  for (auto& layer : q.layers) {
    layer->set_weight_quant(minmax_weight_params(layer->fp_weight().detach(), spec.weight_bits));
    report("weights", ++i, static_cast<int>(q.layers.size()));
  }
  result.timings["weights"] = since(t0);

  if (spec.act_bits > 0) {
    t0 = std::chrono::steady_clock::now();
    observe_activations(q, calib, o.batch, [&](int done, int total) { report("activation ranges", done, total); });
    for (auto& layer : q.layers)
      if (layer->quant_input) layer->act.finalize_minmax_shared();
    for (auto& a : q.attention)
      for (ActQuantizer* aq : {&a->q, &a->k, &a->v}) aq->finalize_minmax_shared();
    result.timings["activations"] = since(t0);
  }
  q.set_act_mode(ActQuantizer::Mode::kQuantize);
  return result;
}

}  // namespace qdm
