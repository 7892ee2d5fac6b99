#include "engine/quant/calibration.h"

#include <ATen/core/grad_mode.h>

#include "engine/runtime/loaded_model.h"

namespace qdm {

at::Tensor calibration_labels(const UNet2DModelImpl& unet, int samples) {
  if (!unet.takes_labels()) return {};
  const std::vector<int> user = unet.user_labels();
  std::vector<int64_t> cycle(user.begin(), user.end());
  if (const std::optional<int> null = unet.null_label()) cycle.push_back(*null);
  if (cycle.empty()) throw std::invalid_argument("calibration needs integer class labels (not \"identity\" embeddings)");
  std::vector<int64_t> labels;
  for (int i = 0; i < samples; ++i) labels.push_back(cycle[static_cast<size_t>(i) % cycle.size()]);
  return at::tensor(labels, at::kLong);
}

CalibrationSet collect_calibration(UNet2DModel unet, const NoiseSchedule& schedule, const SamplerOptions& sampler,
                                   int samples, uint64_t seed, int batch, const CalibProgress& progress) {
  at::NoGradGuard no_grad;
  CalibrationSet calib;
  calib.timesteps = sampler_timesteps(schedule, sampler);
  const int steps = static_cast<int>(calib.timesteps.size());
  std::vector<std::vector<at::Tensor>> per_step(static_cast<size_t>(steps)), per_step_eps(per_step.size());
  const int64_t channels = unet->config().in_channels, size = unet->config().sample_size;
  calib.labels = calibration_labels(*unet, samples);
  const ModelDenoiser fp32 = fp32_denoiser(unet);
  for (int done = 0; done < samples;) {
    const int n = std::min(batch, samples - done);
    std::vector<uint64_t> seeds;
    for (int i = 0; i < n; ++i) seeds.push_back(seed + static_cast<uint64_t>(done + i));
    Denoiser record = [&](const at::Tensor& x, int t, int step) {
      per_step[static_cast<size_t>(step)].push_back(x.clone());
      at::Tensor eps = fp32(x, t, step, calib.labels_of(done, n));
      per_step_eps[static_cast<size_t>(step)].push_back(eps.clone());
      return eps;
    };
    run_sampler(schedule, sampler, record, seeds, channels, size, size,
                [&](int step, int total) {
                  if (progress) progress(done * total + step * n, samples * total);  // image-steps
                  return true;
                });
    done += n;
  }
  for (auto& xs : per_step) calib.inputs.push_back(at::cat(xs, 0));
  for (auto& es : per_step_eps) calib.eps.push_back(at::cat(es, 0));
  return calib;
}

void observe_activations(QuantizedUNet& model, const CalibrationSet& calib, int batch, const CalibProgress& progress) {
  at::NoGradGuard no_grad;
  model.set_act_mode(ActQuantizer::Mode::kObserve);
  const int steps = static_cast<int>(calib.inputs.size());
  for (int s = 0; s < steps; ++s) {
    const at::Tensor& xs = calib.inputs[static_cast<size_t>(s)];
    for (int64_t i = 0; i < xs.size(0); i += batch)
    {
      const int64_t n = std::min<int64_t>(batch, xs.size(0) - i);
      model.forward(xs.narrow(0, i, n), calib.timesteps[static_cast<size_t>(s)], s, calib.labels_of(i, n));
    }
    if (progress) progress(s + 1, steps);
  }
}

}  // namespace qdm
