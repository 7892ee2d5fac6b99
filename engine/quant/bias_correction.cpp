#include "engine/quant/bias_correction.h"

#include <ATen/core/grad_mode.h>

#include <stdexcept>
#include <unordered_map>

#include "engine/artifact/artifact.h"
#include "engine/runtime/loaded_model.h"
#include "engine/sampling/pipeline.h"

namespace qdm {

EpsBias measure_eps_bias(const NoiseSchedule& schedule, const ModelDenoiser& fp, const ModelDenoiser& q,
                         const SamplerOptions& sampler, int64_t channels, int64_t size, std::optional<int> null_class,
                         int samples, uint64_t seed, int batch, const std::function<bool(int, int)>& progress) {
  if (samples < 1) throw std::invalid_argument("the eps bias needs at least one trajectory");
  at::NoGradGuard no_grad;
  EpsBias bias;
  bias.timesteps = sampler_timesteps(schedule, sampler);
  std::unordered_map<int, size_t> row;
  for (size_t i = 0; i < bias.timesteps.size(); ++i) row[bias.timesteps[i]] = i;
  const auto steps = static_cast<int64_t>(bias.timesteps.size());
  at::Tensor sum = at::zeros({steps, channels, size, size}, at::kDouble);
  std::vector<int64_t> count(static_cast<size_t>(steps), 0);

  SampleRequest req;
  req.num_images = samples;
  req.seed = seed;
  req.batch_size = batch;
  req.sampler = sampler;
  req.null_class = null_class;
  if (null_class) req.class_labels.assign(static_cast<size_t>(samples), *null_class);
  sample_images(schedule, [&](const at::Tensor& x, int t, int step, const at::Tensor& labels) {
    const at::Tensor ef = fp(x, t, step, labels);
    const auto it = row.find(t);
    if (it == row.end()) throw std::logic_error("eps bias: timestep outside the schedule");
    const auto r = static_cast<int64_t>(it->second);
    sum[r] += (q(x, t, step, labels) - ef).to(at::kDouble).sum(0).cpu();
    count[it->second] += x.size(0);
    return ef;
  }, channels, size, req, [&](const SampleProgress& p) {
    return !progress || progress(p.images_done + p.batch_images * p.step / std::max(1, p.steps), samples);
  });
  for (int64_t r = 0; r < steps; ++r)
    if (count[static_cast<size_t>(r)] > 0) sum[r] /= static_cast<double>(count[static_cast<size_t>(r)]);
  return make_eps_bias(std::move(bias.timesteps), sum);
}

void correct_eps_bias(const DiffusionModel& model, const RecipeOptions& o, QuantizeResult& result,
                      const QuantizeCallback& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  EpsBias bias = measure_eps_bias(NoiseSchedule(model.scheduler), fp32_denoiser(model.unet),
                                  quantized_denoiser(*result.model, result.timesteps), result.sampler, model.config.in_channels,
                                  model.config.sample_size, model.unet->null_label(), o.bias_samples,
                                  eps_bias_seed(o.calib_seed), o.batch, [&](int done, int total) {
                                    report_stage(progress, "eps bias", done, total);
                                    return true;
                                  });
  if (bias.timesteps != result.timesteps) throw std::logic_error("eps bias: the schedule differs from the artifact's");
  result.eps_bias = std::make_shared<const EpsBias>(std::move(bias));
  result.timings["eps_bias"] = seconds_since(t0);
}

EpsBias measure_artifact_eps_bias(const DiffusionModel& model, LoadedArtifact& a, int samples, int batch,
                                  const std::function<bool(int, int)>& progress) {
  const uint64_t calib_seed = a.info.recipe.value("calib_seed", RecipeOptions{}.calib_seed);
  return measure_eps_bias(NoiseSchedule(a.info.scheduler), fp32_denoiser(model.unet), quantized_denoiser(*a.model, a.info.timesteps),
                          a.info.sampler, model.config.in_channels, model.config.sample_size, model.unet->null_label(), samples,
                          eps_bias_seed(calib_seed), batch, progress);
}

void correct_artifact(const DiffusionModel& source, const std::string& artifact_path, const std::string& out_path,
                      int samples, int batch, const std::function<bool(int, int)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  LoadedArtifact a = load_artifact(artifact_path);
  if (a.info.source_sha256 != source.weights_sha256)
    throw std::invalid_argument("the artifact was not quantized from this model (its source weights' sha256 differs)");
  DiffusionModel model = source;
  use_artifact_prompts(model, a);  // a pipeline: its calibration prompts' table
  const EpsBias bias = measure_artifact_eps_bias(model, a, samples, batch, progress);
  add_eps_bias(artifact_path, out_path, bias, samples, seconds_since(t0));
}

}  // namespace qdm
